"""``plan_shedding``: forecast → linearised model → HiGHS → AC re-check loop → :class:`ControlPlan`.

The AC power flow is both the operating point of the linearisation (loading, flows and voltages at the forecast)
and the judge of the plan: after each solve the curtailed forecast is run through
:func:`solvers.run_pf_timeseries`; every protected (asset, step) still above its limit gets its linear limit
tightened by the observed excess (or its row added when it was screened out) and the model is solved again,
up to ``max_iter`` times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from solvers.compile import compile_grid
from solvers.model import REF, PFModel
from solvers.powerflow import run_pf_timeseries
from solvers.shedding.build import build_model
from solvers.shedding.data import (
    FAMILIES,
    BaseCase,
    Devices,
    RowBlock,
    SheddingData,
    assemble_rows,
    build_data,
    build_devices,
    build_payback,
    cost_weights,
    loading_rows,
    voltage_rows,
)
from solvers.shedding.highs import HighsResult, solve_highs
from solvers.shedding.linearise import Sensitivity, compute_sensitivity
from solvers.shedding.plan import ControlPlan
from solvers.shedding.problem import (
    Forecast,
    curtailed_values,
    protected_branches,
    read_forecast,
    select_devices,
    summarise,
)

if TYPE_CHECKING:
    from twin.grid import Grid

__all__ = ["plan_shedding", "prepare_data"]

VmLimits = tuple[float, float] | None
Entries = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]

SCREEN = 0.7  # loading rows are created where the AC loading reaches 70 % of the limit
VM_BAND_PU = 0.02  # voltage rows where the AC voltage is within 0.02 pu of a limit
TIGHTEN_PCT = 0.01  # extra tightening per violated (asset, step), % points
TOL_PCT = 1e-3  # loading above the limit by less than this counts as holding


@dataclass
class _Rows:
    """Screened rows: (branch idx, step) and (bus idx, step) with their accumulated tightening."""

    branch: dict[tuple[int, int], float]
    bus: dict[tuple[int, int], float]


def _run_ac(model: PFModel, fc: Forecast, values: dict[str, tuple[NDArray, NDArray]]) -> BaseCase:
    coords = {"time": fc.time}
    das = {}
    for fam, (p, q) in values.items():
        ids = getattr(model, fam).ids
        das[f"{fam}_p_mw"] = xr.DataArray(p, dims=("time", fam), coords={**coords, fam: ids})
        das[f"{fam}_q_mvar"] = xr.DataArray(q, dims=("time", fam), coords={**coords, fam: ids})
    res = run_pf_timeseries(
        model,
        das["load_p_mw"],
        das["load_q_mvar"],
        das["sgen_p_mw"],
        das["sgen_q_mvar"],
        das["storage_p_mw"] if len(model.storage.ids) else None,
    )
    first = np.full(model.n_bus, -1, dtype=np.int64)
    gbi = model.grid_bus_idx
    ok = np.flatnonzero(gbi >= 0)
    first[gbi[ok][::-1]] = ok[::-1]
    vm = res["vm_pu"].to_numpy()[:, np.maximum(first, 0)]
    vm = np.where(first >= 0, vm, 1.0)
    return BaseCase(
        loading_pct=np.nan_to_num(res["loading_pct"].to_numpy()),
        p_from_mw=np.nan_to_num(res["p_from_mw"].to_numpy()),
        q_from_mvar=np.nan_to_num(res["q_from_mvar"].to_numpy()),
        vm_pu=vm,
    )


def _screen(base: BaseCase, protected: NDArray[np.int64], limit: float, vm_limits: VmLimits, model: PFModel) -> _Rows:
    t, k = np.nonzero(base.loading_pct[:, protected] >= SCREEN * limit)
    rows = _Rows({(int(protected[j]), int(s)): 0.0 for s, j in zip(t, k, strict=True)}, {})
    if vm_limits is not None:
        lo, hi = vm_limits
        vm = base.vm_pu
        near = (vm > hi - VM_BAND_PU) | (vm < lo + VM_BAND_PU)
        near[:, model.bus_type == REF] = False
        rows.bus = {(int(b), int(s)): 0.0 for s, b in zip(*np.nonzero(near), strict=True)}
    return rows


def _entries(cols: list[Devices], fn: Callable[[Devices], Entries]) -> Entries:
    """Row entries of every column family (curtailment, pay-back), numbered one after the other."""
    rows, pairs, coefs, offset = [], [], [], 0
    for dev in cols:
        r, p, c = fn(dev)
        rows.append(r)
        pairs.append(p + offset)
        coefs.append(c)
        offset += dev.n_pair
    return np.concatenate(rows), np.concatenate(pairs), np.concatenate(coefs)


def _assemble(
    model: PFModel,
    sens: Sensitivity,
    base: BaseCase,
    cols: list[Devices],
    rows: _Rows,
    limit: float,
    vm_limits: VmLimits,
    dt_h: float,
) -> RowBlock:
    blocks = []
    if rows.branch:
        key = np.array(sorted(rows.branch), dtype=np.int64).reshape(-1, 2)
        off = np.array([rows.branch[(b, t)] for b, t in key.tolist()])
        br, t = key[:, 0], key[:, 1]
        entries = _entries(cols, lambda d: loading_rows(sens, base, d, br, t))
        blocks.append(("loading", model.branch_ids[br], t, entries, base.loading_pct[t, br], limit - off, 1))
    if rows.bus and sens.path is not None and vm_limits is not None:
        key = np.array(sorted(rows.bus), dtype=np.int64).reshape(-1, 2)
        off = np.array([rows.bus[(b, t)] for b, t in key.tolist()])
        bus, t = key[:, 0], key[:, 1]
        entries = _entries(cols, lambda d: voltage_rows(sens, base, d, bus, t, model.base_mva))
        names = _bus_names(model)[bus]
        vm0 = base.vm_pu[t, bus]
        blocks.append(("vm_max", names, t, entries, vm0, vm_limits[1] - off, 1))
        blocks.append(("vm_min", names, t, entries, vm0, vm_limits[0] + off, -1))
    col_cost = np.concatenate([d.weight[d.pair_device] * dt_h for d in cols])
    return assemble_rows(blocks, col_cost)


def _bus_names(model: PFModel) -> NDArray[np.object_]:
    names = np.array([f"bus@{i}" for i in range(model.n_bus)], dtype=object)
    gbi = model.grid_bus_idx
    ok = np.flatnonzero(gbi >= 0)[::-1]
    names[gbi[ok]] = model.grid_bus_ids[ok]
    return names


def _prune(dev: Devices, rows: RowBlock, *, whole_devices: bool) -> tuple[Devices, RowBlock]:
    """Keep only pairs that appear in some row (the others cost energy and relieve nothing: they stay at 0).

    With ``whole_devices`` (discrete mode: min on-time links a device's steps) every pair of a device that
    appears in some row is kept.
    """
    n = dev.n_pair
    used = np.zeros(n, dtype=bool)
    used[rows.pair[rows.pair < n]] = True
    if whole_devices:
        used = np.isin(dev.pair_device, np.unique(dev.pair_device[used]))
    new = np.cumsum(used) - 1
    keep = np.flatnonzero(used)
    pair_pos = np.where(dev.pair_pos >= 0, np.where(used[np.maximum(dev.pair_pos, 0)], new[dev.pair_pos], -1), -1)
    d2 = Devices(
        dev.ids,
        dev.kind,
        dev.elem_pos,
        dev.bus_idx,
        dev.weight,
        dev.pair_device[keep],
        dev.pair_time[keep],
        dev.ub_mw[keep],
        dev.effect_p[keep],
        dev.effect_q[keep],
        pair_pos.astype(np.int64),
    )
    col = np.where(rows.pair < n, new[np.minimum(rows.pair, n - 1)], len(keep) + rows.pair - n)  # pay-back after
    r2 = RowBlock(**{**{f: getattr(rows, f) for f in RowBlock.__slots__}, "pair": col.astype(np.int64)})
    return d2, r2


def _solve(data: SheddingData, time_limit_s: float | None) -> tuple[HighsResult, NDArray[np.float64], dict[str, float]]:
    t0 = time.perf_counter()
    m = build_model(data)
    t1 = time.perf_counter()
    res = solve_highs(m, time_limit_s=time_limit_s)
    name = "shed_on" if data.discrete else "shed_mw"
    x = res.x.get(name, np.zeros(data.devices.n_pair))
    x = np.zeros(data.devices.n_pair) if len(x) != data.devices.n_pair else np.nan_to_num(x)
    if data.discrete:
        x = np.round(x) * data.devices.ub_mw
    x = np.clip(x, 0.0, data.devices.ub_mw)
    return res, x, {"build_s": t1 - t0, **res.timings}


def _check(
    ac: BaseCase,
    protected: NDArray[np.int64],
    limit: float,
    rows: _Rows,
    slack_rows: set[tuple[int, int]],
    vm_limits: VmLimits,
) -> list[tuple[int, int]]:
    """Tighten violated rows in place; return the violated (branch, step) pairs that are not known-infeasible."""
    t, k = np.nonzero(ac.loading_pct[:, protected] > limit + TOL_PCT)
    over = []
    for s, j in zip(t.tolist(), k.tolist(), strict=True):
        key = (int(protected[j]), s)
        if key in slack_rows:
            continue
        over.append(key)
        excess = ac.loading_pct[s, key[0]] - limit
        rows.branch[key] = rows.branch.get(key, 0.0) + excess + TIGHTEN_PCT
    if vm_limits is not None:
        lo, hi = vm_limits
        bad = np.argwhere((ac.vm_pu > hi + 1e-6) | (ac.vm_pu < lo - 1e-6))
        for s, b in bad.tolist():
            if (b, s) not in slack_rows:
                excess = max(ac.vm_pu[s, b] - hi, lo - ac.vm_pu[s, b])
                rows.bus[(b, s)] = rows.bus.get((b, s), 0.0) + excess + 1e-4
    return over


def plan_shedding(
    grid: Grid,
    profiles: xr.Dataset,
    *,
    controllable: pd.DataFrame | None = None,
    assets: Iterable[str] | None = None,
    margin: float = 0.0,
    cost: pd.Series | None = None,
    critical: Iterable[str] = (),
    discrete: bool = False,
    min_on_steps: int = 1,
    rebound: float = 0.0,
    linearisation: str = "auto",
    max_iter: int = 5,
    time_limit_s: float | None = None,
    progress: bool = False,
    vm_limits_pu: tuple[float, float] | None = None,
) -> ControlPlan:
    """Plan the least (cost-weighted) curtailment that keeps protected assets within their thermal limits.

    Parameters
    ----------
    grid : Grid
    profiles : xarray.Dataset
        Forecast injections over the horizon (``load_p_mw``, ``load_q_mvar`` on (time, load), ``sgen_p_mw``,
        optional ``sgen_q_mvar``, ``storage_p_mw``), MW / Mvar, regular ``time``.
    controllable : DataFrame, optional
        ``MultiLayerGraph.controllable_now()`` (index element id, ``element_kind``, ``controller``, optional
        ``gateway``). Devices not listed are never curtailed. ``None``: every load, sgen and storage.
    assets : iterable of str, optional
        Branch ids to protect (default every line and transformer).
    margin : float
        Share of the rating kept free (0.05 → loading limit 95 %).
    cost : Series, optional
        Cost per MWh curtailed, by element id (default 1).
    critical : iterable of str
        Element ids that are never curtailed.
    discrete : bool
        Binary on/off per device and step (a MILP) instead of continuous curtailment.
    min_on_steps : int
        Discrete mode: a device switched off stays off at least this many steps.
    rebound : float
        Share (0–1) of the energy shed from heating loads that is paid back later within the horizon (extra
        consumption up to the device's rated ``p_mw``, only after it was shed). Heating loads:
        ``controllable["heating"]`` when that column exists, else load ids starting with ``"hp/"``.
    linearisation : {"auto", "lindistflow", "ptdf"}
        ``"auto"``: LinDistFlow for radial grids, PTDF for meshed ones.
    max_iter : int
        Maximum number of solve + AC re-check rounds.
    time_limit_s : float, optional
        HiGHS time limit per solve, s.
    progress : bool
        Log one line per iteration (logger ``solvers.shedding``).
    vm_limits_pu : (float, float), optional
        Bus voltage limits (pu) enforced with LinDistFlow on radial grids; off by default.

    Returns
    -------
    ControlPlan
        Never raises for an infeasible case: the residual overload and its reason are in the plan.
    """
    if not 0.0 <= rebound <= 1.0:
        raise ValueError(f"rebound={rebound} must lie in [0, 1] (share of shed heating energy paid back later)")
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin={margin} must lie in [0, 1) (share of the rating kept free)")
    t_start = time.perf_counter()
    model = compile_grid(grid)
    fc = read_forecast(model, profiles)
    table, chosen = select_devices(grid, model, controllable, critical)
    weights = {f: cost_weights(getattr(model, f).ids[chosen[f]], cost) for f in FAMILIES}
    dev_all = build_devices(model, fc.values, chosen, weights)
    protected = protected_branches(model, assets)
    sens = compute_sensitivity(model, linearisation)
    limit = 100.0 * (1.0 - margin)
    base = _run_ac(model, fc, fc.values)
    rows = _screen(base, protected, limit, vm_limits_pu, model)
    payback = _payback(model, fc, dev_all, controllable) if rebound > 0 else None
    return _iterate(
        model, fc, table, dev_all, protected, sens, base, rows, limit, vm_limits_pu,
        discrete=discrete, min_on_steps=min_on_steps, max_iter=max_iter, time_limit_s=time_limit_s,
        progress=progress, t_start=t_start, payback=payback, rebound=rebound,
    )  # fmt: skip


def _payback(model: PFModel, fc: Forecast, dev: Devices, controllable: pd.DataFrame | None) -> Devices | None:
    """Pay-back pairs of heating loads: ``controllable['heating']`` when given, else load ids starting "hp/"."""
    ids = pd.Index(dev.ids.astype(str))
    if controllable is not None and "heating" in controllable.columns:
        heating = ids.isin(controllable.index[controllable["heating"].astype(bool)].astype(str))
    else:
        heating = ids.str.startswith("hp/")
    heating &= dev.kind == "load"
    if not heating.any():
        return None
    e = model.load
    pos = np.where(dev.kind == "load", dev.elem_pos, 0)
    p, q = (v[:, pos] for v in fc.values["load"])
    with np.errstate(divide="ignore", invalid="ignore"):
        nominal = np.where(e.p_mw[pos] != 0, e.q_mvar[pos] / e.p_mw[pos], 0.0)
        q_per_p = np.where(p != 0, q / p, nominal[None, :])
    return build_payback(dev, p, np.asarray(heating), e.p_mw[pos], q_per_p, e.scaling[pos])


def _iterate(
    model: PFModel,
    fc: Forecast,
    table: pd.DataFrame,
    dev_all: Devices,
    protected: NDArray[np.int64],
    sens: Sensitivity,
    base: BaseCase,
    rows: _Rows,
    limit: float,
    vm_limits: VmLimits,
    **opt: Any,
) -> ControlPlan:
    """Solve, re-check with AC, tighten; build the plan from the last round."""
    import logging

    log = logging.getLogger("solvers.shedding")
    iterations, timings = [], {"build_s": 0.0, "standard_form_s": 0.0, "pass_model_s": 0.0, "solve_s": 0.0, "ac_s": 0.0}
    x_dev = np.zeros((len(fc.time), len(dev_all.ids)))
    pb_dev = np.zeros_like(x_dev)
    pay = opt["payback"]
    cols = [dev_all] if pay is None else [dev_all, pay]
    res, block, ac, slack_rows = None, None, base, set()
    for it in range(1, max(1, opt["max_iter"]) + 1):
        block = _assemble(model, sens, base, cols, rows, limit, vm_limits, fc.dt_h)
        dev, block = _prune(dev_all, block, whole_devices=opt["discrete"])
        data = build_data(
            dev, block, fc.dt_h, discrete=opt["discrete"], min_on_steps=opt["min_on_steps"], payback=pay,
            rebound=opt["rebound"],
        )  # fmt: skip
        res, x, tm = _solve(data, opt["time_limit_s"])
        for k, v in tm.items():
            timings[k] = timings.get(k, 0.0) + v
        x_dev = np.zeros_like(x_dev)
        x_dev[dev.pair_time, dev.pair_device] = x
        if pay is not None:
            pb = res.x.get("payback_mw", np.zeros(0))
            pb_dev = np.zeros_like(x_dev)
            if len(pb) == pay.n_pair:
                pb_dev[pay.pair_time, pay.pair_device] = np.clip(np.nan_to_num(pb), 0.0, pay.ub_mw)
        t0 = time.perf_counter()
        ac = _run_ac(model, fc, curtailed_values(model, fc.values, dev_all, x_dev - pb_dev))
        timings["ac_s"] += time.perf_counter() - t0
        slack = res.x.get("slack", np.zeros(block.n_row))
        slack_rows = _slack_keys(block, slack, model)
        over = _check(ac, protected, limit, rows, slack_rows, vm_limits)
        worst = float(ac.loading_pct[:, protected].max(initial=0.0))
        names = sorted({str(model.branch_ids[b]) for b, _ in over})
        iterations.append(
            {"iteration": it, "max_loading_pct": worst, "assets_over": names, "rows": int(block.n_row),
             "pairs": int(dev.n_pair), "status": res.status}
        )  # fmt: skip
        if opt["progress"]:
            log.info("iteration %d: max loading %.2f %%, %d (asset, step) over", it, worst, len(over))
        if not over:
            break
    timings["total_s"] = time.perf_counter() - opt["t_start"]
    return summarise(
        model, fc, table, dev_all, x_dev, res, block, ac, protected, limit, sens, iterations,
        {"linearisation": sens.method, "limit_pct": limit, "timings": timings, "discrete": opt["discrete"],
         "rebound": opt["rebound"]},
        pb_dev if pay is not None else None,
    )  # fmt: skip


def _slack_keys(block: RowBlock, slack: NDArray[np.float64], model: PFModel) -> set[tuple[int, int]]:
    """(branch idx, step) / (bus idx, step) of rows whose slack is used (not enough controllable power)."""
    if len(slack) != block.n_row:
        return set()
    used = np.flatnonzero(slack > 1e-7)
    pos = {str(b): i for i, b in enumerate(model.branch_ids)}
    bus = {str(b): i for i, b in enumerate(_bus_names(model))}
    out = set()
    for r in used.tolist():
        table = pos if block.kind[r] == "loading" else bus
        out.add((table[str(block.entity[r])], int(block.time[r])))
    return out


def prepare_data(grid: Grid, profiles: xr.Dataset, *, margin: float = 0.0, discrete: bool = False) -> SheddingData:
    """The first-round :class:`SheddingData` of :func:`plan_shedding` (every device controllable): for benchmarks."""
    model = compile_grid(grid)
    fc = read_forecast(model, profiles)
    _, chosen = select_devices(grid, model, None, ())
    weights = {f: cost_weights(getattr(model, f).ids[chosen[f]], None) for f in FAMILIES}
    dev = build_devices(model, fc.values, chosen, weights)
    protected = protected_branches(model, None)
    sens = compute_sensitivity(model, "auto")
    limit = 100.0 * (1.0 - margin)
    base = _run_ac(model, fc, fc.values)
    rows = _screen(base, protected, limit, None, model)
    block = _assemble(model, sens, base, [dev], rows, limit, None, fc.dt_h)
    dev, block = _prune(dev, block, whole_devices=discrete)
    return build_data(dev, block, fc.dt_h, discrete=discrete)
