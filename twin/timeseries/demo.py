"""Embedded demo data: smart-meter and transformer metering synthesised for a SimBench grid, nothing downloaded.

:func:`synthesise` splits every load of a SimBench grid into household meters whose consumption sums to the load's
profile, turns them into cumulative ``A+`` registers (kWh, 3 decimals) with injected defects, and meters every
transformer that supplies loads at its LV side from an AC power flow of the true profiles (losses included), one or
two of them with a non-technical loss. ``DemoData.truth`` lists everything injected. :func:`write_demo_files` writes
it as a head-end would export it (:mod:`twin.timeseries.demo_files`, re-exported here); :func:`iter_readings` streams
large synthetic populations (:func:`synthetic_meters`).

Time conventions (UTC, tz-naive, as in ``docs/design/timeseries.md``): the register read at ``t`` holds the energy
used up to ``t``; readings run from ``start`` to ``start + days`` inclusive (``days × steps/day + 1`` per meter).
Interval quantities (``load_p_mw``, sensor ``p_kw``/``q_kvar``) are labelled at the **end** of their interval, so
``register.diff()`` at ``t`` is the energy of the interval whose average power is labelled ``t``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.signal import lfilter

from twin.io.pandapower import from_pandapower
from twin.timeseries.demo_files import (
    TZ_FILES,  # noqa: F401  (kept as demo.TZ_FILES: the time zone of the demo's files)
    write_demo_files,
    write_line_protocol,
    write_readings_csv,
)
from twin.topology import find_islands

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from twin.grid import Grid

__all__ = [
    "DEFAULT",
    "DEFAULT_DEFECTS",
    "Defects",
    "DemoData",
    "iter_readings",
    "supplying_trafos",
    "synthesise",
    "synthetic_meters",
    "write_demo_files",
    "write_line_protocol",
    "write_readings_csv",
]

# Smallest SimBench grid with the whole LV level modelled below its MV feeders: 90 MV/LV transformers, 5,367 LV loads
# (≈13,500 meters with households=(1, 4)), 5,479 buses. The 1-MVLV-<type>-<lv grid> codes hold one MV/LV transformer
# only; the semiurb/urban/comm "all" grids are 1.1-2× larger.
DEFAULT = "1-MVLV-rural-all-0-sw"
DEFAULT_START = pd.Timestamp("2016-01-04")  # a winter Monday in the SimBench profile year
PROFILE = pd.Timedelta("15min")  # resolution of the SimBench profiles
PROFILE_STEPS = 35_136  # 15-min steps in the SimBench year (2016)
ROLLOVER_KWH = 100_000.0  # a 5-digit register wraps here


@dataclass(frozen=True)
class Defects:
    """How many of each defect :func:`synthesise` injects, each on its own meters.

    Parameters
    ----------
    resets, exchanges, rollovers : int
        Meters whose register restarts at 0 / at a new meter's reading (0-30 kWh) / wraps at 100,000 kWh.
    stuck : int
        Meters whose register freezes from some time to the end of the window.
    dead : int
        Meters that send nothing for 1-3 days (at most a third of the window), then the true register again.
    gap_share : float
        Share of the meters with one short gap (1-8 missing readings, never the first or last one).
    duplicates : int
        Rows sent twice (on meters without other defects); the first one with another value (a conflict).
    """

    resets: int = 3
    exchanges: int = 2
    rollovers: int = 1
    stuck: int = 2
    dead: int = 2
    gap_share: float = 0.02
    duplicates: int = 6


DEFAULT_DEFECTS = Defects()


@dataclass(frozen=True)
class DemoData:
    """What :func:`synthesise` returns.

    Attributes
    ----------
    grid : Grid
        The grid as the twin knows it (no trace of the non-technical losses).
    meters : DataFrame
        Meters table (``docs/design/timeseries.md``), index ``meter``.
    readings : DataFrame
        Readings of ``"A+"`` (cumulative import register, kWh), defects included, ordered by meter and time.
    sensors : DataFrame
        Readings of the transformer metering: device = transformer id, ``p_kw``/``q_kvar`` (average over the interval
        ending at ``time``, LV side, positive towards the LV grid, ~0.5 % noise).
    truth : dict of str to DataFrame
        What was injected: ``resets`` (meter, time, kind, jump_kwh), ``broken`` (meter, kind, start, end), ``gaps``
        (meter, start, end, missing), ``duplicates`` (meter, time, kind, value), ``ntl`` (trafo, bus, load,
        share_pct, energy_kwh). Times are those of the affected readings, inclusive.
    load_p_mw, load_q_mvar : DataArray (time, load)
        True load profiles, MW / Mvar, averaged over the interval ending at ``time``.
    meta : dict
        ``code``, ``start``, ``days``, ``freq``, ``seed``.
    """

    grid: Grid
    meters: pd.DataFrame
    readings: pd.DataFrame
    sensors: pd.DataFrame
    truth: dict[str, pd.DataFrame]
    load_p_mw: xr.DataArray
    load_q_mvar: xr.DataArray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def defective_meters(self) -> set[str]:
        """Meters with a reset, exchange, roll-over, stuck or dead register (gaps and duplicates excluded)."""
        return set(self.truth["resets"]["meter"]) | set(self.truth["broken"]["meter"])


# -- inputs: a SimBench grid and a window of its profiles ------------------------------------------------------------
@dataclass(frozen=True)
class _SimbenchSource:
    grid: Grid
    rel_p: NDArray[np.float64]  # (PROFILE_STEPS, n_profile + 1) relative profiles; last column = 1 (no profile)
    rel_q: NDArray[np.float64]
    profile_pos: NDArray[np.int64]  # column of each load in rel_*
    p_mw: NDArray[np.float64]
    q_mvar: NDArray[np.float64]


@functools.lru_cache(maxsize=2)
def _simbench_source(code: str) -> _SimbenchSource:
    """Grid and relative load profiles of a SimBench code, read once per process (simbench takes ~3 s)."""
    import simbench as sb

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = sb.get_simbench_net(code)
    except Exception as err:
        raise ValueError(
            f"SimBench could not build {code!r} ({err}); valid codes: simbench.collect_all_simbench_codes(), "
            f"e.g. {DEFAULT!r} or '1-LV-rural1--0-sw'"
        ) from err
    grid = from_pandapower(net, name=code)
    grid.meta.update({"source": "simbench", "code": code})
    if [f"load/{i}" for i in net.load.index] != grid.load.index.tolist():
        raise RuntimeError(f"{code}: the Grid's load ids do not follow SimBench's load order")
    names = net.load["profile"].fillna("").astype(str).to_numpy()
    uniq = sorted(set(names) - {""})
    ones = np.ones((len(net.profiles["load"]), 1))
    rel_p, rel_q = (
        np.hstack([net.profiles["load"][[f"{u}_{s}" for u in uniq]].to_numpy(float), ones]) for s in ("pload", "qload")
    )
    pos = np.array([uniq.index(s) if s else len(uniq) for s in names], dtype=np.int64)
    return _SimbenchSource(
        grid, rel_p, rel_q, pos, net.load["p_mw"].to_numpy(float), net.load["q_mvar"].to_numpy(float)
    )


def _time_axis(start: Any, days: int, freq: str) -> tuple[pd.Timestamp, int, int]:
    """UTC start, 15-min profile steps per reading interval (k) and number of intervals (n)."""
    ts = pd.Timestamp(DEFAULT_START if start is None else start)
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    step = pd.Timedelta(freq)
    k = step / PROFILE
    if step <= pd.Timedelta(0) or k != int(k) or pd.Timedelta("1D") % step:
        raise ValueError(f"freq={freq!r}: use a multiple of 15 minutes that divides a day (15min, 30min, 1h, ...)")
    if ts != ts.floor(PROFILE):
        raise ValueError(f"start={start!r} is not on the 15-minute grid; use e.g. {ts.floor(PROFILE)}")
    if int(days) < 1:
        raise ValueError(f"days={days}: need at least one day")
    return ts, int(k), int(days) * 96 // int(k)


def _profiles(src: _SimbenchSource, start: pd.Timestamp, n15: int) -> tuple[NDArray, NDArray]:
    """(n15, n_load) p / q, MW / Mvar, from the same position as ``start`` in the SimBench year (wrapping)."""
    first = int((start - pd.Timestamp(year=start.year, month=1, day=1)) / PROFILE)
    rows = (first + np.arange(n15)) % PROFILE_STEPS
    return src.rel_p[rows][:, src.profile_pos] * src.p_mw, src.rel_q[rows][:, src.profile_pos] * src.q_mvar


# -- which transformer supplies which load ----------------------------------------------------------------------------
def supplying_trafos(grid: Grid) -> tuple[pd.Series, pd.Index]:
    """Transformer that supplies each load, and the transformers whose metering their meters should add up to.

    Buses joined by in-service lines (not opened by a line switch) and closed bus-bus switches form islands; a load is
    supplied by a transformer when that transformer's LV bus is the only feeder (transformer LV/MV side, external
    grid) of the load's island.

    Parameters
    ----------
    grid : Grid

    Returns
    -------
    trafo_of_load : Series of str
        Load id → trafo id; "" where the island has no single feeding transformer.
    meterable : Index
        Transformers that supply in-service loads and feed no other transformer: their LV-side metering is the sum of
        their loads plus the losses of the LV grid below them.
    """
    bus, sw = grid.bus.index, grid.switch
    opened = set(sw.loc[~sw["closed"] & sw["et"].isin(["l", "t"]), "element"])
    line = grid.line[grid.line["in_service"] & ~grid.line.index.isin(opened)]
    bb = sw[(sw["et"] == "b") & sw["closed"]]
    a = bus.get_indexer(np.concatenate([line["from_bus"].to_numpy(), bb["bus"].to_numpy()]))
    b = bus.get_indexer(np.concatenate([line["to_bus"].to_numpy(), bb["element"].to_numpy()]))
    island = find_islands(len(bus), a, b)

    def isl(ids: pd.Series) -> NDArray[np.int64]:
        return island[bus.get_indexer(ids.to_numpy())]

    tr = grid.trafo[grid.trafo["in_service"] & ~grid.trafo.index.isin(opened)]
    t3 = grid.trafo3w[grid.trafo3w["in_service"]]
    lv = isl(tr["lv_bus"])
    fed = np.concatenate([lv, isl(t3["mv_bus"]), isl(t3["lv_bus"]), isl(grid.ext_grid["bus"])])
    single = np.bincount(fed, minlength=island.max() + 1)[lv] == 1
    owner = np.full(island.max() + 1, "", dtype=object)
    owner[lv[single]] = tr.index[single].to_numpy()
    trafo_of_load = pd.Series(owner[isl(grid.load["bus"])], index=grid.load.index, name="trafo")
    feeds_other = np.isin(lv, np.concatenate([isl(tr["hv_bus"]), isl(t3["hv_bus"])]))
    has_load = tr.index.isin(trafo_of_load[grid.load["in_service"]].unique())
    return trafo_of_load, tr.index[single & ~feeds_other & has_load]


# -- meters and their registers -------------------------------------------------------------------------------------
def _split_loads(rng: np.random.Generator, e_load: NDArray, households: tuple[int, int]) -> tuple[NDArray, NDArray]:
    """Split each load's interval energy (n, L) into household meters (n, M) that sum to it exactly.

    A meter has a size (log-normal) and a slowly varying share (AR(1) noise, ~5 h memory at 15 min), so the meters of
    one load differ in level and shape. Returns each meter's load position and the meters' energy.
    """
    lo, hi = households
    if not 1 <= lo <= hi:
        raise ValueError(f"households={households}: need 1 <= least <= most meters per load")
    counts = rng.integers(lo, hi + 1, e_load.shape[1])
    meter_load = np.repeat(np.arange(e_load.shape[1]), counts)
    z = rng.standard_normal((e_load.shape[0], len(meter_load)), dtype=np.float32)
    w = lfilter(np.float32([0.5 * np.sqrt(1 - 0.95**2)]), np.float32([1.0, -0.95]), z, axis=0)
    np.exp(w, out=w)
    w *= rng.lognormal(0.0, 0.5, len(meter_load)).astype(np.float32)
    share = e_load / np.add.reduceat(w, np.cumsum(counts) - counts, axis=1, dtype=np.float64)
    return meter_load, w * share[:, meter_load]


def _registers(rng: np.random.Generator, energy: NDArray, steps_per_year: float) -> NDArray:
    """(n + 1, M) cumulative registers, kWh, 3 decimals: start (meter age 0.5-12 years × yearly use) plus energy."""
    start = energy.mean(axis=0) * steps_per_year * rng.uniform(0.5, 12.0, energy.shape[1])
    regs = np.empty((energy.shape[0] + 1, energy.shape[1]))
    regs[0] = 0.0
    np.cumsum(energy, axis=0, out=regs[1:])
    regs += start
    return np.round(regs, 3, out=regs)


def _ids(prefix: str, n: int, width: int) -> NDArray[np.object_]:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _filled(n: int, value: str) -> NDArray[np.object_]:
    out = np.empty(n, dtype=object)
    out.fill(value)  # np.full is ~40x slower for object arrays
    return out


def _meters_table(grid: Grid, loads: NDArray, trafo_of_load: pd.Series, interval_min: int) -> pd.DataFrame:
    width = max(6, len(str(len(loads))))
    return pd.DataFrame(
        {
            "customer": _ids("C", len(loads), width - 1),
            "load": loads,
            "bus": grid.load["bus"].reindex(loads).to_numpy(object),
            "trafo": trafo_of_load.reindex(loads).to_numpy(object),
            "interval_min": np.full(len(loads), interval_min, dtype=np.int64),
            "parameters": _filled(len(loads), "A+"),
        },
        index=pd.Index(_ids("M", len(loads), width), name="meter"),
    )


# -- defects --------------------------------------------------------------------------------------------------------
def _restart(regs: NDArray, m: int, kind: str, rng: np.random.Generator) -> tuple[int, float]:
    """Reset, exchange or roll over meter ``m``'s register in place; returns the first changed row and the jump, kWh."""
    n, cum = regs.shape[0] - 1, regs[:, m] - regs[0, m]
    rows = np.flatnonzero(np.diff(cum)[1:-1] > 0.002) + 2  # rows 2..n-1 after an interval with energy
    k = int(rng.choice(rows)) if len(rows) else n // 2
    if kind == "rollover":
        start = np.floor((ROLLOVER_KWH - 0.5 * (cum[k - 1] + cum[k])) * 1000) / 1000
        new = np.round(start + cum, 3)
        regs[:, m] = np.round(np.where(new >= ROLLOVER_KWH, new - ROLLOVER_KWH, new), 3)
        return int(np.argmax(new >= ROLLOVER_KWH)), -ROLLOVER_KWH
    base = 0.0 if kind == "reset" else round(float(rng.uniform(0.0, 30.0)), 3)
    jump = round(base - regs[k - 1, m], 3)
    regs[k:, m] = np.round(regs[k:, m] + jump, 3)
    return k, jump


def _inject_defects(
    regs: NDArray, present: NDArray, times: pd.DatetimeIndex, ids: NDArray, rng: np.random.Generator, d: Defects
) -> tuple[dict[str, pd.DataFrame], NDArray[np.int64]]:
    """Inject ``d`` into ``regs``/``present`` (n + 1, M) in place; returns the truth and the meters left clean."""
    n, m = regs.shape[0] - 1, regs.shape[1]
    kinds = ["reset"] * d.resets + ["exchange"] * d.exchanges + ["rollover"] * d.rollovers
    broken = ["stuck"] * d.stuck + ["dead"] * d.dead
    n_gap = round(d.gap_share * m)
    used = len(kinds) + len(broken) + n_gap
    if used + (d.duplicates > 0) > m or n < 8:
        raise ValueError(f"the defects need {used + 1} meters and 8 intervals; this demo has {m} meters, {n} intervals")
    order = rng.permutation(m)
    resets = [
        (ids[j], times[k], kind, jump)
        for kind, j in zip(kinds, order, strict=False)
        for k, jump in [_restart(regs, j, kind, rng)]
    ]
    per_day = round(n / ((times[-1] - times[0]) / pd.Timedelta("1D")))
    bad = []
    for kind, j in zip(broken, order[len(kinds) :], strict=False):
        if kind == "stuck":
            k = int(rng.integers(1, n // 2 + 1))
            regs[k + 1 :, j] = regs[k, j]
            bad.append((ids[j], kind, times[k + 1], times[n]))
        else:
            dur = min(int(rng.integers(1, 4)) * per_day, n // 3)
            k = int(rng.integers(1, n - dur + 1))
            present[k : k + dur, j] = False
            bad.append((ids[j], kind, times[k], times[k + dur - 1]))
    gaps = []
    for j in order[len(kinds) + len(broken) : used]:
        g = int(rng.integers(1, min(8, n // 4) + 1))
        k = int(rng.integers(1, n - g + 1))
        present[k : k + g, j] = False
        gaps.append((ids[j], times[k], times[k + g - 1], g))
    return _truth_tables(resets, bad, gaps), np.sort(order[used:])


def _truth_tables(resets: list, broken: list, gaps: list) -> dict[str, pd.DataFrame]:
    return {
        "resets": pd.DataFrame(resets, columns=["meter", "time", "kind", "jump_kwh"]),
        "broken": pd.DataFrame(broken, columns=["meter", "kind", "start", "end"]),
        "gaps": pd.DataFrame(gaps, columns=["meter", "start", "end", "missing"]),
    }


def _long_readings(
    ids: NDArray, times: pd.DatetimeIndex, regs: NDArray, present: NDArray, dup_flat: NDArray, conflict_kwh: float
) -> tuple[pd.DataFrame, NDArray]:
    """Meter-major Readings of the present registers; rows ``dup_flat`` (meter × (n + 1) + row) come twice.

    The first duplicate carries ``conflict_kwh`` more. Returns the frame and the values of the duplicates.
    """
    m, n1 = regs.shape[1], regs.shape[0]
    rep = present.T.astype(np.int64).ravel()
    rep[dup_flat] += 1
    value = np.repeat(regs.T.ravel(), rep)
    second = np.cumsum(rep)[dup_flat] - 1
    value[second[:1]] += conflict_kwh
    meter = np.repeat(np.arange(m), rep.reshape(m, n1).sum(axis=1))
    row = np.repeat(np.tile(np.arange(n1), m), rep)
    frame = pd.DataFrame(
        {"device": ids[meter], "parameter": _filled(len(value), "A+"), "time": times.to_numpy()[row], "value": value},
        copy=False,
    )
    return frame, value[second]


def _meter_readings(
    grid: Grid, load_ids: NDArray, e_load: NDArray, trafo_of_load: pd.Series, times: pd.DatetimeIndex, opts: dict
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Meters table, Readings and truth tables of the meters below the loads (interval energy ``e_load``, kWh)."""
    rngs = [np.random.default_rng(s) for s in opts["seeds"]]
    meter_load, energy = _split_loads(rngs[0], e_load, opts["households"])
    step_h = (times[1] - times[0]) / pd.Timedelta("1h")
    regs = _registers(rngs[1], energy, 8784.0 / step_h)
    del energy
    meters = _meters_table(grid, load_ids[meter_load], trafo_of_load, round(step_h * 60))
    ids, n1, d = meters.index.to_numpy(object), regs.shape[0], opts["defects"]
    present = np.ones(regs.shape, dtype=bool)
    if d is None:
        truth, clean, n_dup = _truth_tables([], [], []), np.arange(len(ids)), 0
    else:
        truth, clean = _inject_defects(regs, present, times, ids, rngs[2], d)
        n_dup = min(d.duplicates, len(clean) * n1)
    flat = rngs[2].choice(len(clean) * n1, size=n_dup, replace=False)
    dup = np.sort(clean[flat // n1] * n1 + flat % n1)
    readings, dup_values = _long_readings(ids, times, regs, present, dup, round(float(rngs[2].uniform(0.05, 0.5)), 3))
    kind = ["conflict"] + ["exact"] * (n_dup - 1) if n_dup else []
    truth["duplicates"] = pd.DataFrame(
        {"meter": ids[dup // n1], "time": times[dup % n1], "kind": kind, "value": dup_values}
    )
    return meters, readings, truth


# -- transformer metering -------------------------------------------------------------------------------------------
def _series(x: NDArray, dim: str, ids: Any) -> xr.DataArray:
    """(time, dim) input of run_pf_timeseries (time is a step counter)."""
    return xr.DataArray(x, dims=("time", dim), coords={"time": np.arange(len(x)), dim: np.asarray(ids, dtype=object)})


def _run_metering(
    grid: Grid, p15: NDArray, q15: NDArray, load_ids: NDArray, ntl: pd.DataFrame, sensor: pd.Index
) -> tuple[NDArray, NDArray]:
    """LV-side p / q (kW / kvar, (n15, S)) of the ``sensor`` transformers by AC power flow, a day's steps at a time.

    ``p15``/``q15`` include the unmetered loads ``ntl``; generation and storage are zero (meters register import only).
    """
    from solvers import compile_grid, run_pf_timeseries

    pf_grid = grid.copy()
    if len(ntl):
        pf_grid.add("load", pd.DataFrame({"bus": ntl["bus"].to_numpy(), "p_mw": 0.0}), ids=ntl["load"])
    model, ids = compile_grid(pf_grid), np.concatenate([load_ids, ntl["load"].to_numpy(object)])
    fixed = {c: grid[c].index for c in ("sgen", "storage") if len(grid[c])}
    p_kw, q_kvar = np.empty((len(p15), len(sensor))), np.empty((len(p15), len(sensor)))
    for a in range(0, len(p15), 384):
        b = min(a + 384, len(p15))
        zeros = {f"{c}_p_mw": _series(np.zeros((b - a, len(i))), c, i) for c, i in fixed.items()}
        res = run_pf_timeseries(model, _series(p15[a:b], "load", ids), _series(q15[a:b], "load", ids), **zeros)
        p_kw[a:b] = -1000.0 * res["p_to_mw"].sel(branch=sensor).to_numpy()
        q_kvar[a:b] = -1000.0 * res["q_to_mvar"].sel(branch=sensor).to_numpy()
    return p_kw, q_kvar


def _transformer_sensors(
    grid: Grid,
    p15: NDArray,
    q15: NDArray,
    load_ids: NDArray,
    trafo_of_load: pd.Series,
    meterable: pd.Index,
    times: pd.DatetimeIndex,
    opts: dict,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sensor Readings of the meterable transformers and the NTL truth table (unmetered loads below one or two)."""
    rng = np.random.default_rng(opts["seeds"][3])
    chosen = np.sort(rng.choice(len(meterable), size=min(opts["ntl_trafos"], len(meterable)), replace=False))
    of_load = trafo_of_load.reindex(load_ids).to_numpy()
    rows = []
    for i, t in enumerate(meterable[chosen]):
        below = np.flatnonzero(of_load == t)
        bus = grid.load.at[load_ids[below[rng.integers(len(below))]], "bus"]
        rows.append((t, bus, f"ntl/{i}", round(float(rng.uniform(*opts["ntl_pct"])), 1)))
    ntl = pd.DataFrame(rows, columns=["trafo", "bus", "load", "share_pct"])
    mask = (of_load[None, :] == ntl["trafo"].to_numpy()[:, None]) * ntl["share_pct"].to_numpy()[:, None] / 100.0
    ntl_p, ntl_q = p15 @ mask.T, q15 @ mask.T  # each NTL follows its transformer's metered load
    ntl["energy_kwh"] = ntl_p.sum(axis=0) * 1000.0 * PROFILE.total_seconds() / 3600.0
    p_kw, q_kvar = _run_metering(grid, np.hstack([p15, ntl_p]), np.hstack([q15, ntl_q]), load_ids, ntl, meterable)
    n, s = len(times) - 1, len(meterable)
    both = np.stack([p_kw, q_kvar]).reshape(2, n, -1, s).mean(axis=2)  # 15 min → reading interval
    both *= 1.0 + opts["noise_pct"] / 100.0 * rng.standard_normal(both.shape)
    sensors = pd.DataFrame(
        {
            "device": np.repeat(meterable.to_numpy(object), 2 * n),
            "parameter": np.tile(np.repeat(np.array(["p_kw", "q_kvar"], dtype=object), n), s),
            "time": np.tile(times[1:].to_numpy(), 2 * s),
            "value": np.round(both.transpose(2, 0, 1).ravel(), 3),
        }
    )
    return sensors, ntl


# -- synthesise -----------------------------------------------------------------------------------------------------
def synthesise(
    code: str = DEFAULT,
    *,
    start: Any = None,
    days: int = 14,
    freq: str = "15min",
    seed: int = 0,
    households: tuple[int, int] = (1, 4),
    defects: Defects | None = DEFAULT_DEFECTS,
    ntl_trafos: int = 2,
    ntl_pct: tuple[float, float] = (5.0, 15.0),
    noise_pct: float = 0.5,
) -> DemoData:
    """Synthesise smart-meter readings and transformer metering for a SimBench grid.

    Parameters
    ----------
    code : str
        SimBench code (``simbench.collect_all_simbench_codes()``); default :data:`DEFAULT`.
    start : str or Timestamp, optional
        First reading, UTC (tz-aware values are converted), on the 15-min grid; default 2016-01-04 00:00. The profiles
        come from the same position in the SimBench year.
    days : int
        Length of the window, days.
    freq : str
        Reading interval: a multiple of 15 min that divides a day.
    seed : int
        Same seed, same data.
    households : (int, int)
        Least and most meters per load.
    defects : Defects or None
        Defects to inject; None for clean readings (same registers otherwise).
    ntl_trafos : int
        Meterable transformers (at most all) that get an unmetered load.
    ntl_pct : (float, float)
        Range of an unmetered load, % of its transformer's metered load.
    noise_pct : float
        Standard deviation of the transformer metering noise, % of the value.

    Returns
    -------
    DemoData
    """
    ts, k, n = _time_axis(start, days, freq)
    opts = {
        "seeds": np.random.SeedSequence(seed).spawn(4),  # meters, registers, defects, metering
        "households": households,
        "defects": defects,
        "ntl_trafos": ntl_trafos,
        "ntl_pct": ntl_pct,
        "noise_pct": noise_pct,
    }
    src = _simbench_source(code)
    grid = src.grid.copy()
    live = grid.load["in_service"].to_numpy(bool)
    load_ids = grid.load.index.to_numpy(object)[live]
    p15, q15 = (x[:, live] for x in _profiles(src, ts, n * k))
    p, q = p15.reshape(n, k, -1).mean(axis=1), q15.reshape(n, k, -1).mean(axis=1)
    times = pd.date_range(ts, periods=n + 1, freq=k * PROFILE)
    trafo_of_load, meterable = supplying_trafos(grid)
    meters, readings, truth = _meter_readings(grid, load_ids, p * 250.0 * k, trafo_of_load, times, opts)
    sensors, truth["ntl"] = _transformer_sensors(grid, p15, q15, load_ids, trafo_of_load, meterable, times, opts)

    def profile(x: NDArray, units: str) -> xr.DataArray:
        return xr.DataArray(
            x, dims=("time", "load"), coords={"time": times[1:], "load": load_ids}, attrs={"units": units}
        )

    meta = {"code": code, "start": ts, "days": int(days), "freq": freq, "seed": seed}
    return DemoData(grid, meters, readings, sensors, truth, profile(p, "MW"), profile(q, "Mvar"), meta)


# -- large synthetic populations ------------------------------------------------------------------------------------
def synthetic_meters(n: int, *, trafos: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Meters table of ``n`` 15-min ``A+`` household meters spread over ``trafos`` transformers (default n // 120).

    No grid: ``load`` and ``bus`` are "", transformers are ``T0001``...; every transformer has at least one meter.
    """
    trafos = max(1, n // 120) if trafos is None else int(trafos)
    if not 1 <= trafos <= n:
        raise ValueError(f"n={n}, trafos={trafos}: need at least one meter per transformer and one transformer")
    width = max(6, len(str(n)))
    of = np.sort(np.concatenate([np.arange(trafos), np.random.default_rng(seed).integers(0, trafos, n - trafos)]))
    return pd.DataFrame(
        {
            "customer": _ids("C", n, width - 1),
            "load": _filled(n, ""),
            "bus": _filled(n, ""),
            "trafo": _ids("T", trafos, max(4, len(str(trafos))))[of],
            "interval_min": np.full(n, 15, dtype=np.int64),
            "parameters": _filled(n, "A+"),
        },
        index=pd.Index(_ids("M", n, width), name="meter"),
    )


def _household_shape(per_day: int) -> NDArray[np.float64]:
    """Mean-one daily shape of a household's load (night base, morning and evening peaks), ``per_day`` UTC points."""
    h = (np.arange(per_day) + 0.5) * 24.0 / per_day + 1.0  # ≈ local time in central Europe
    shape = 0.35 + 0.5 * np.exp(-(((h - 7.5) / 1.3) ** 2)) + 0.9 * np.exp(-(((h - 19.5) / 2.2) ** 2))
    return shape / shape.mean()


def iter_readings(
    meters: pd.DataFrame, *, start: Any, days: int, freq: str = "15min", batch_days: int = 7, seed: int = 0
) -> Iterator[pd.DataFrame]:
    """Stream clean ``A+`` registers of many meters as Readings batches (time-major), memory bounded by a batch.

    Reading ``i`` of a meter (at ``start + i × freq``, i = 0 .. days × steps/day - 1) is its start register plus the
    energy of the intervals before. A day's randomness depends on (seed, day) only: the values do not depend on
    ``batch_days``.

    Parameters
    ----------
    meters : DataFrame
        Meters table (index = meter ids), e.g. :func:`synthetic_meters`.
    start : str or Timestamp
        First reading, UTC.
    days : int
    freq : str
        Reading interval; must divide a day.
    batch_days : int
        Days per batch: a batch holds ``len(meters) × batch_days × steps/day`` rows (32 bytes each, plus ~16 bytes
        of temporaries per value while it is built).
    seed : int

    Yields
    ------
    DataFrame
        Readings (``device``, ``parameter`` "A+", ``time``, ``value`` kWh with 3 decimals).
    """
    ts = pd.Timestamp(start)
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    step = pd.Timedelta(freq)
    if step <= pd.Timedelta(0) or pd.Timedelta("1D") % step or days < 1 or batch_days < 1:
        raise ValueError(f"freq={freq!r}, days={days}, batch_days={batch_days}: freq must divide a day, days >= 1")
    per_day, ids = int(pd.Timedelta("1D") / step), meters.index.to_numpy(object)
    rng = np.random.default_rng([seed, 0])
    mean_kw = rng.lognormal(np.log(0.35), 0.45, len(ids))  # ~3,400 kWh a year on average
    register = np.round(mean_kw * 8760.0 * rng.uniform(0.5, 12.0, len(ids)), 3)
    shape = _household_shape(per_day)[:, None] * (mean_kw * (step / pd.Timedelta("1h")))
    for b0 in range(0, days, batch_days):
        nd = min(batch_days, days - b0)
        values = np.empty((nd * per_day + 1, len(ids)))
        values[0] = register
        for d in range(nd):
            noise = np.random.default_rng([seed, 1, b0 + d]).standard_normal((per_day, len(ids)), dtype=np.float32)
            np.exp(0.6 * noise - 0.18, out=noise)
            np.multiply(shape, noise, out=values[1 + d * per_day : 1 + (d + 1) * per_day])
        np.cumsum(values, axis=0, out=values)
        register = values[-1].copy()
        body = np.round(values[:-1], 3).ravel()
        del values
        times = pd.date_range(ts + step * (b0 * per_day), periods=nd * per_day, freq=step)
        yield pd.DataFrame(
            {
                "device": np.tile(ids, nd * per_day),
                "parameter": _filled(body.size, "A+"),
                "time": np.repeat(times.to_numpy(), len(ids)),
                "value": body,
            },
            copy=False,
        )
