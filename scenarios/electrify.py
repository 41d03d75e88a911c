"""Electrify today's grids: add EV chargers and heat pumps as new loads with synthetic profiles.

Rules (all deterministic for a given ``seed``):

- **Who gets devices.** Every in-service load stands for ``max(1, round(p_mw / 2 kW))`` households
  (``p_mw`` = its rated power in the grid table; 2 kW ≈ after-diversity peak per household). This one
  rule serves LV and MV: a SimBench LV load is a building connection, often of several households
  (1-LV-rural1: 13 loads, 80 kW rated, 199 MWh/a → 40 households, 5 MWh/a each), and an MV load is the
  aggregate of a whole LV grid (1-MV-urban: 139 loads, 49.7 MW → about 25,000 households). Each
  household has an EV (heat pump) with probability ``ev_share`` (``hp_share``), so a load gets
  ``Binomial(households, share)`` units behind one new load ``ev/<load id>`` (``hp/<load id>``) at its
  bus; loads that draw 0 units get none.
- **EV placement** (``ev_placement``): ``random`` as above; ``largest_loads`` or ``feeder_end`` place
  ``round(share × households)`` chargers deterministically, filling the loads one after the other (every
  household of a load before the next load) in the order of rated ``p_mw`` (largest first) or of the
  electrical distance from the supply (``ext_grid`` buses; line length over in-service lines and transformers
  whose switches are closed; farthest first; unreachable loads last).
- **EV sessions** (:class:`EvSessions`, defaults in brackets): one session per charger and day. Arrival ~
  N(``arrival_mean_h`` [18:00], ``arrival_std_h`` [1.5 h]); departure = the first time after arrival whose
  clock time is drawn from N(``departure_mean_h`` [07:00], ``departure_std_h`` [1 h]), and at the latest the
  next session's arrival (one car per charger). Energy = ``kwh_per_session`` or daily distance ~
  Gamma(shape 2, mean ``km_per_day`` [40 km]) × ``kwh_per_km`` [0.18]. ``rule`` ``immediate``: charge at
  ``ev_kw`` from arrival until done; ``spread``: constant power energy / parking time until departure. A
  session gets at most ``ev_kw`` × parking time; the rest is counted as unserved (``ev_unserved_kwh``
  attribute), never dropped silently. The energy of a session is placed exactly (fractional first and last
  15-min steps); the previous day's sessions (charging into the first morning) are included, sessions that
  end after the last time step are truncated there.
- **Heat pumps.** Thermal demand = ``hp_kw_th`` × max(0, 15 °C − T) / (15 °C − (−12 °C)) (−12 °C
  design temperature); COP(T) = ``cop`` × (1 + 0.025/K × (T − 7 °C)), at least 1 (``cop`` is the
  A7/W35 rating, so COP falls in the cold); electric power = thermal / COP, capped at
  ``hp_kw_th / cop × 1.5``.
- **Temperature.** When none is given, :func:`synthesize_temperature` (German 2016-like model).
- Reactive power of all new devices: power factor 0.98 inductive (q = 0.203 p).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray
from scipy.signal import lfilter
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from twin.grid import Grid

__all__ = [
    "EvSessions",
    "draw_ev_sessions",
    "electrify",
    "feeder_distance_km",
    "heat_pump_p_kw",
    "synthesize_temperature",
]

_HOUSEHOLD_PEAK_MW = 0.002
_KM_SHAPE = 2.0
_SWITCH_KM = 1e-6  # length of a closed bus-bus switch or transformer in the distance graph (0 = no edge there)
_T_HEAT_C, _T_DESIGN_C, _T_COP_RATED_C, _COP_SLOPE_PER_K = 15.0, -12.0, 7.0, 0.025
_Q_PER_P = float(np.tan(np.arccos(0.98)))
_DAY = pd.Timedelta("1D")
Placement = Literal["random", "largest_loads", "feeder_end"]


@dataclass(frozen=True)
class EvSessions:
    """How EV users charge (see the module docstring): clock times in hours after midnight, energies in kWh.

    ``kwh_per_session`` (fixed energy) replaces the distance model (``km_per_day`` × ``kwh_per_km``) when given.
    ``rule``: ``"immediate"`` (full power from arrival) or ``"spread"`` (constant power until departure).
    """

    arrival_mean_h: float = 18.0
    arrival_std_h: float = 1.5
    departure_mean_h: float = 7.0
    departure_std_h: float = 1.0
    kwh_per_session: float | None = None
    km_per_day: float = 40.0
    kwh_per_km: float = 0.18
    rule: Literal["immediate", "spread"] = "immediate"

    def __post_init__(self) -> None:
        for name in ("arrival_mean_h", "departure_mean_h"):
            if not 0.0 <= getattr(self, name) < 24.0:
                raise ValueError(f"{name}={getattr(self, name)} must be a clock time in [0, 24) h")
        for name in ("arrival_std_h", "departure_std_h"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0 h")
        for name in ("kwh_per_session", "km_per_day", "kwh_per_km"):
            value = getattr(self, name)
            if value is not None and not value > 0.0:
                raise ValueError(f"{name}={value} must be positive")
        if self.rule not in ("immediate", "spread"):
            raise ValueError(f"rule={self.rule!r}: use 'immediate' or 'spread'")


def synthesize_temperature(time: pd.DatetimeIndex | xr.DataArray, seed: int = 0) -> xr.DataArray:
    """Return a synthetic German (2016-like) outdoor temperature series.

    T = 9.5 − 10 cos(2π (day of year − 15) / 365.25)  (seasonal: coldest mid-January, −0.5 °C; July 19.5 °C)
      − 4 cos(2π (hour − 3) / 24)                      (daily: minimum 03:00, maximum 15:00, ±4 K)
      + AR(1) weather noise                            (stationary std 4 K, correlation time 3 days).
    Winter nights reach about −10 °C (−0.5 − 4 − 1.5 × 4).

    Parameters
    ----------
    time : DatetimeIndex or DataArray of datetime64
        Time stamps (regular spacing).
    seed : int
        Random seed of the weather noise.

    Returns
    -------
    xarray.DataArray
        ``temperature_degc`` on ``time``, °C.
    """
    t = pd.DatetimeIndex(np.asarray(time))
    dt_h = _step_hours(t)
    doy = t.dayofyear.to_numpy() + t.hour.to_numpy() / 24.0
    hour = t.hour.to_numpy() + t.minute.to_numpy() / 60.0
    seasonal = 9.5 - 10.0 * np.cos(2 * np.pi * (doy - 15.0) / 365.25)
    daily = -4.0 * np.cos(2 * np.pi * (hour - 3.0) / 24.0)
    phi = np.exp(-dt_h / (3 * 24.0))
    shocks = np.random.default_rng(seed).standard_normal(len(t)) * 4.0 * np.sqrt(1 - phi**2)
    shocks[0] *= 1.0 / np.sqrt(1 - phi**2)  # start from the stationary distribution
    noise = lfilter([1.0], [1.0, -phi], shocks)
    return xr.DataArray(
        seasonal + daily + noise,
        dims="time",
        coords={"time": t},
        name="temperature_degc",
        attrs={"units": "degC", "model": "synthetic German 2016 (seasonal + daily + AR(1))"},
    )


def heat_pump_p_kw(temperature_degc: NDArray[np.float64], hp_kw_th: float, cop: float) -> NDArray[np.float64]:
    """Return the electric power of one heat pump, kW, for outdoor temperatures in °C (see module docstring)."""
    temp = np.asarray(temperature_degc, dtype=np.float64)
    thermal = hp_kw_th * np.maximum(0.0, _T_HEAT_C - temp) / (_T_HEAT_C - _T_DESIGN_C)
    cop_t = np.maximum(1.0, cop * (1.0 + _COP_SLOPE_PER_K * (temp - _T_COP_RATED_C)))
    return np.minimum(thermal / cop_t, hp_kw_th / cop * 1.5)


def electrify(
    grid: Grid,
    profiles: xr.Dataset,
    *,
    ev_share: float = 0.3,
    ev_kw: float = 11.0,
    hp_share: float = 0.3,
    hp_kw_th: float = 8.0,
    cop: float = 3.0,
    temperature: xr.DataArray | NDArray[np.float64] | None = None,
    seed: int = 0,
    ev_sessions: EvSessions | None = None,
    ev_placement: Placement = "random",
) -> tuple[Grid, xr.Dataset]:
    """Add EV chargers and heat pumps to a grid and its load profiles.

    Parameters
    ----------
    grid : Grid
        Today's grid; not modified.
    profiles : xarray.Dataset
        ``load_p_mw`` and ``load_q_mvar`` on ``(time, load)`` (MW / Mvar, e.g. from
        ``twin.read_simbench_profiles``); other variables are passed through.
    ev_share, hp_share : float
        Share of households (0–1) with an EV / a heat pump.
    ev_kw : float
        Charging power per EV, kW.
    hp_kw_th : float
        Thermal rating of a heat pump at the −12 °C design temperature, kW.
    cop : float
        Rated COP at 7 °C outdoor temperature.
    temperature : DataArray on ``time`` or 1-D array, optional
        Outdoor temperature, °C, one value per time step; synthetic (:func:`synthesize_temperature`) if omitted.
    seed : int
        Random seed; equal seeds give equal results.
    ev_sessions : EvSessions, optional
        Arrival, departure, energy and charging rule of the EV sessions (default: ``EvSessions()``).
    ev_placement : {"random", "largest_loads", "feeder_end"}
        Which households get the EVs (module docstring).

    Returns
    -------
    (Grid, xarray.Dataset)
        The grid with new loads ``ev/<load id>`` and ``hp/<load id>`` (``p_mw`` = their rated power)
        and the profiles with their columns added to ``load_p_mw``/``load_q_mvar``, plus
        ``temperature_degc`` (time) and ``n_units`` (load: EVs or heat pumps behind each new load); attrs
        ``ev_unserved_kwh`` (energy the sessions asked for but could not get before departure, kWh) and
        ``ev_sessions_short`` (how many such sessions).
    """
    _check_inputs(grid, profiles, ev_share, ev_kw, hp_share, hp_kw_th, cop)
    sessions = ev_sessions or EvSessions()
    time = pd.DatetimeIndex(profiles["time"].to_numpy())
    seq = np.random.SeedSequence(seed)
    rng_pick, rng_ev, seed_temp = (np.random.default_rng(s) for s in seq.spawn(3))
    temp = _temperature(temperature, time, int(seed_temp.integers(2**31)))
    ev_units = _units_per_load(grid, ev_share, rng_pick, ev_placement)
    hp_units = _units_per_load(grid, hp_share, rng_pick)
    table = draw_ev_sessions(time, ev_units.to_numpy(), ev_kw, sessions, rng_ev)
    ev_p = _ev_power_mw(time, table, len(ev_units))
    hp_p = np.outer(heat_pump_p_kw(temp.to_numpy(), hp_kw_th, cop) / 1000.0, hp_units.to_numpy())
    rated_mw = np.concatenate([ev_units.to_numpy() * ev_kw, hp_units.to_numpy() * hp_kw_th / cop * 1.5]) / 1000.0
    out, ds = _add_loads(grid, profiles, ev_units, hp_units, np.hstack([ev_p, hp_p]), rated_mw)
    ds["temperature_degc"] = temp
    short = table["energy_kwh"] - table["delivered_kwh"] > 1e-9
    ds.attrs.update(
        {
            "electrify": f"ev_share={ev_share}, ev_kw={ev_kw}, hp_share={hp_share}, seed={seed}, "
            f"ev_placement={ev_placement}, ev_sessions={sessions}",
            "ev_unserved_kwh": float((table["energy_kwh"] - table["delivered_kwh"]).sum()),
            "ev_sessions_short": int(short.sum()),
        }
    )
    return out, ds


def _add_loads(
    grid: Grid,
    profiles: xr.Dataset,
    ev_units: pd.Series,
    hp_units: pd.Series,
    p_mw: NDArray[np.float64],
    rated_mw: NDArray[np.float64],
) -> tuple[Grid, xr.Dataset]:
    """Grid and profiles with the loads ``ev/<id>`` and ``hp/<id>`` (profiles ``p_mw``: time × device) added."""
    ev_ids = [f"ev/{i}" for i in ev_units.index]
    hp_ids = [f"hp/{i}" for i in hp_units.index]
    new_ids = ev_ids + hp_ids
    time = profiles["time"].to_numpy()
    out = grid.copy()
    buses = grid.tables["load"]["bus"]
    out.add(
        "load",
        pd.DataFrame(
            {
                "name": new_ids,
                "bus": np.concatenate([buses.loc[ev_units.index], buses.loc[hp_units.index]]),
                "p_mw": rated_mw,
                "q_mvar": rated_mw * _Q_PER_P,
            }
        ),
        ids=new_ids,
    )
    p_new = xr.DataArray(p_mw, dims=("time", "load"), coords={"time": time, "load": new_ids})
    ds = profiles.reindex(load=np.concatenate([profiles["load"].to_numpy(), new_ids]))  # other vars: NaN for new
    ds["load_p_mw"] = xr.concat([profiles["load_p_mw"], p_new], dim="load").assign_attrs(units="MW")
    ds["load_q_mvar"] = xr.concat([profiles["load_q_mvar"], p_new * _Q_PER_P], dim="load").assign_attrs(units="Mvar")
    ds["n_units"] = xr.DataArray(np.concatenate([ev_units, hp_units]), dims="new_load", coords={"new_load": new_ids})
    return out, ds


def _check_inputs(
    grid: Grid, profiles: xr.Dataset, ev_share: float, ev_kw: float, hp_share: float, hp_kw_th: float, cop: float
) -> None:
    """Raise ``ValueError`` naming the bad argument, load id or variable."""
    for name, share in (("ev_share", ev_share), ("hp_share", hp_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name}={share} must lie in [0, 1] (a share of households)")
    for name, value in (("ev_kw", ev_kw), ("hp_kw_th", hp_kw_th), ("cop", cop)):
        if not value > 0.0:
            raise ValueError(f"{name}={value} must be positive")
    for var in ("load_p_mw", "load_q_mvar"):
        if var not in profiles or profiles[var].dims != ("time", "load"):
            raise ValueError(f"profiles need {var!r} on dims ('time', 'load'); got {list(profiles.data_vars)}")
    missing = pd.Index(grid.tables["load"].index).difference(pd.Index(profiles["load"].to_numpy()))
    if len(missing):
        raise ValueError(
            f"profiles lack load ids {missing[:5].tolist()} of grid {grid.name!r}; pass profiles of this grid"
        )
    taken = [i for i in grid.tables["load"].index if str(i).startswith(("ev/", "hp/"))]
    if taken:
        raise ValueError(f"grid already has electrified loads {taken[:5]}; electrify today's grid only once")
    _step_hours(pd.DatetimeIndex(profiles["time"].to_numpy()))


def _step_hours(time: pd.DatetimeIndex) -> float:
    """Return the regular step of ``time`` in hours (raise ``ValueError`` if irregular)."""
    steps = np.diff(time.asi8)
    if len(time) < 2 or (steps != steps[0]).any() or steps[0] <= 0:
        raise ValueError("profiles need a regular, increasing 'time' axis with at least 2 steps")
    return float(steps[0]) / 3.6e12


def _temperature(
    temperature: xr.DataArray | NDArray[np.float64] | None, time: pd.DatetimeIndex, seed: int
) -> xr.DataArray:
    """Return the temperature on ``time`` (given or synthetic), °C."""
    if temperature is None:
        return synthesize_temperature(time, seed)
    values = np.asarray(temperature, dtype=np.float64)
    if (
        isinstance(temperature, xr.DataArray)
        and "time" in temperature.dims
        and not pd.DatetimeIndex(temperature["time"].to_numpy()).equals(time)
    ):
        raise ValueError("temperature 'time' coordinate differs from the profiles' 'time'; align it first")
    if values.shape != (len(time),) or not np.isfinite(values).all():
        raise ValueError(f"temperature needs {len(time)} finite values (one per time step); got shape {values.shape}")
    return xr.DataArray(values, dims="time", coords={"time": time}, name="temperature_degc", attrs={"units": "degC"})


def _units_per_load(grid: Grid, share: float, rng: np.random.Generator, placement: Placement = "random") -> pd.Series:
    """Return devices per load id (only loads with at least one), placed as in the module docstring."""
    loads = grid.tables["load"]
    loads = loads[loads["in_service"]]
    households = np.maximum(1, np.round(loads["p_mw"].to_numpy() / _HOUSEHOLD_PEAK_MW)).astype(np.int64)
    if placement == "random":
        counts = pd.Series(rng.binomial(households, share), index=loads.index)
        return counts[counts > 0]
    if placement == "largest_loads":
        key = loads["p_mw"].to_numpy()
    elif placement == "feeder_end":
        dist = feeder_distance_km(grid).reindex(loads["bus"].to_numpy()).to_numpy()
        key = np.where(np.isfinite(dist), dist, -1.0)  # unreachable loads last
    else:
        raise ValueError(f"placement={placement!r}: use 'random', 'largest_loads' or 'feeder_end'")
    order = np.argsort(-key, kind="stable")  # ties: the grid's load order
    n = round(share * households.sum())
    before = np.cumsum(households[order]) - households[order]
    counts = np.zeros(len(loads), dtype=np.int64)
    counts[order] = np.clip(n - before, 0, households[order])
    out = pd.Series(counts, index=loads.index)
    return out[out > 0]


def feeder_distance_km(grid: Grid) -> pd.Series:
    """Electrical distance of every bus from the supply, km (``inf`` where no ``ext_grid`` bus reaches it).

    Edges: in-service lines (their ``length_km``), two- and three-winding transformers, and closed bus-bus
    switches; a line or transformer with an open switch is cut. Supply: the buses of in-service ``ext_grid`` elements.
    """
    tables = grid.tables
    buses = pd.Index(tables["bus"].index)
    sw = tables["switch"]
    sw_open = sw[~sw["closed"].astype(bool)]
    rows, cols, km = [], [], []
    edges = (("line", "l", "from_bus", "to_bus"), ("trafo", "t", "hv_bus", "lv_bus"))
    edges += (("trafo3w", "t3", "hv_bus", "mv_bus"), ("trafo3w", "t3", "hv_bus", "lv_bus"))
    for name, et, a, b in edges:
        df = tables[name]
        cut = sw_open.loc[sw_open["et"] == et, "element"]
        df = df[df["in_service"].astype(bool) & ~df.index.isin(cut)]
        rows.append(df[a].to_numpy())
        cols.append(df[b].to_numpy())
        km.append(df["length_km"].to_numpy(float) if name == "line" else np.full(len(df), _SWITCH_KM))
    closed_bb = sw[(sw["et"] == "b") & sw["closed"].astype(bool)]
    rows.append(closed_bb["bus"].to_numpy())
    cols.append(closed_bb["element"].to_numpy())
    km.append(np.full(len(closed_bb), _SWITCH_KM))
    i, j = buses.get_indexer(np.concatenate(rows)), buses.get_indexer(np.concatenate(cols))
    weight = np.maximum(np.concatenate(km), _SWITCH_KM)
    graph = coo_matrix((weight, (i, j)), shape=(len(buses), len(buses))).tocsr()
    ext = tables["ext_grid"]
    sources = buses.get_indexer(ext.loc[ext["in_service"].astype(bool), "bus"].to_numpy())
    if not len(sources):
        raise ValueError(f"grid {grid.name!r} has no in-service ext_grid: 'feeder_end' needs a supply point")
    dist = dijkstra(graph, directed=False, indices=sources, min_only=True)
    return pd.Series(dist, index=buses, name="distance_km")


def draw_ev_sessions(
    time: pd.DatetimeIndex,
    units: NDArray[np.int64],
    ev_kw: float,
    sessions: EvSessions,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Draw one charging session per EV and day (module docstring), from the day before ``time[0]`` on.

    Parameters
    ----------
    time : DatetimeIndex
        Regular time steps.
    units : array of int
        EVs behind each device (new load).
    ev_kw : float
        Charger power, kW.
    sessions : EvSessions
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        One row per session: ``device`` (position), ``arrival_h`` / ``departure_h`` / ``end_h`` (hours after
        ``time[0]``; ``end_h``: charging ends), ``energy_kwh`` (asked for), ``delivered_kwh``, ``power_kw``.
    """
    day0 = time[0].floor("D") - _DAY
    n_days = int((time[-1].floor("D") - day0) / _DAY) + 1
    device = np.repeat(np.arange(len(units)), units)
    shape = (len(device), n_days)
    day_h = (day0 - time[0]) / pd.Timedelta("1h") + 24.0 * np.arange(n_days)
    arrival = day_h + rng.normal(sessions.arrival_mean_h, sessions.arrival_std_h, shape)
    departure = day_h + rng.normal(sessions.departure_mean_h, sessions.departure_std_h, shape)
    departure += 24.0 * np.where(departure <= arrival, np.floor((arrival - departure) / 24.0) + 1.0, 0.0)
    departure[:, :-1] = np.minimum(departure[:, :-1], arrival[:, 1:])  # one car per charger
    parked_h = np.maximum(departure - arrival, 0.0)
    if sessions.kwh_per_session is not None:
        energy = np.full(shape, sessions.kwh_per_session)
    else:
        energy = rng.gamma(_KM_SHAPE, sessions.km_per_day / _KM_SHAPE, shape) * sessions.kwh_per_km
    delivered = np.minimum(energy, ev_kw * parked_h)
    if sessions.rule == "immediate":
        power, end = np.full(shape, ev_kw), arrival + delivered / ev_kw
    else:
        power = np.divide(delivered, parked_h, out=np.zeros(shape), where=parked_h > 0)
        end = departure
    cols = {"arrival_h": arrival, "departure_h": departure, "end_h": end, "energy_kwh": energy}
    cols |= {"delivered_kwh": delivered, "power_kw": power}
    return pd.DataFrame({"device": np.repeat(device, n_days)} | {k: v.ravel() for k, v in cols.items()})


def _ev_power_mw(time: pd.DatetimeIndex, table: pd.DataFrame, n_devices: int) -> NDArray[np.float64]:
    """Charging power (time, device), MW, of the sessions in ``table`` (:func:`draw_ev_sessions`).

    Each session is a box of height ``power_kw`` from arrival to its end; the step energies come from a
    difference array (fractional first and last steps) summed with one ``bincount`` and a cumulative sum.
    """
    n_t, dt_h = len(time), _step_hours(time)
    dev = table["device"].to_numpy()
    power = table["power_kw"].to_numpy()
    diff = np.zeros(n_devices * (n_t + 2))
    for col, sign in (("arrival_h", 1.0), ("end_h", -1.0)):
        edge = np.clip(table[col].to_numpy() / dt_h, 0.0, n_t)
        whole = np.floor(edge).astype(np.int64)
        frac = edge - whole
        base = dev * (n_t + 2) + whole
        diff += sign * np.bincount(base, power * (1.0 - frac), minlength=diff.size)
        diff += sign * np.bincount(base + 1, power * frac, minlength=diff.size)
    kw = np.cumsum(diff.reshape(n_devices, n_t + 2), axis=1)[:, :n_t]
    return np.ascontiguousarray(kw.T) / 1000.0


def _ev_profiles_mw(
    time: pd.DatetimeIndex,
    units: NDArray[np.int64],
    ev_kw: float,
    rng: np.random.Generator,
    sessions: EvSessions | None = None,
) -> NDArray[np.float64]:
    """Charging power (time, device), MW, of ``units[d]`` EVs behind device ``d`` (sessions drawn with ``rng``)."""
    table = draw_ev_sessions(time, units, ev_kw, sessions or EvSessions(), rng)
    return _ev_power_mw(time, table, len(units))
