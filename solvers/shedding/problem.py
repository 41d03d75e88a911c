"""Inputs and outputs of the shedding problem: forecast matrices, device choice, protected assets, the plan tables."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from solvers.model import PFModel
from solvers.shedding.data import FAMILIES, BaseCase, Devices, RowBlock
from solvers.shedding.highs import HighsResult
from solvers.shedding.linearise import Sensitivity
from solvers.shedding.plan import ControlPlan, split_commands

__all__ = ["Forecast", "curtailed_values", "protected_branches", "read_forecast", "select_devices", "summarise"]

_VARS = {"load": ("load_p_mw", "load_q_mvar"), "sgen": ("sgen_p_mw", "sgen_q_mvar"), "storage": ("storage_p_mw", None)}


@dataclass(frozen=True, slots=True)
class Forecast:
    """Forecast injections per family as (time, element) matrices in the model's element order."""

    time: pd.DatetimeIndex
    dt_h: float
    values: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]


def _matrix(profiles: xr.Dataset, name: str | None, ids: NDArray, default: NDArray, n_t: int) -> NDArray[np.float64]:
    out = np.tile(np.asarray(default, dtype=float), (n_t, 1))
    if name is None or name not in profiles:
        return out
    da = profiles[name]
    dim = next((d for d in da.dims if d != "time"), None)
    if dim is None or da.dims != ("time", dim):
        raise ValueError(f"profiles[{name!r}] must have dims ('time', <element>), got {da.dims}")
    given = pd.Index(np.asarray(da[dim].values).astype(str))
    pos = pd.Index(ids.astype(str)).get_indexer(given)
    if (pos < 0).any():
        raise ValueError(f"profiles[{name!r}]: ids {given[pos < 0][:5].tolist()} are not elements of the grid")
    vals = da.to_numpy().astype(float)
    if not np.isfinite(vals).all():
        t, c = np.argwhere(~np.isfinite(vals))[0]
        raise ValueError(f"profiles[{name!r}] is not finite at step {t}, element {given[c]!r}; fill the gap first")
    out[:, pos] = vals
    return out


def read_forecast(model: PFModel, profiles: xr.Dataset) -> Forecast:
    """Turn the profiles Dataset into per-family (time, element) matrices; elements not given keep Grid values."""
    if "time" not in profiles.dims or profiles.sizes["time"] == 0:
        raise ValueError("profiles need a non-empty 'time' dimension (the forecast horizon)")
    time = pd.DatetimeIndex(profiles["time"].to_numpy())
    steps = np.diff(time.asi8)
    if len(time) > 1 and ((steps != steps[0]).any() or steps[0] <= 0):
        raise ValueError("profiles need a regular, increasing 'time' axis")
    dt_h = float(steps[0]) / 3.6e12 if len(time) > 1 else 0.25
    values = {}
    for fam, (pname, qname) in _VARS.items():
        e = getattr(model, fam)
        p = _matrix(profiles, pname, e.ids, e.p_mw, len(time))
        q = _matrix(profiles, qname, e.ids, e.q_mvar, len(time))
        values[fam] = (p, q)
    return Forecast(time, dt_h, values)


def select_devices(
    grid: object, model: PFModel, controllable: pd.DataFrame | None, critical: Iterable[str]
) -> tuple[pd.DataFrame, dict[str, NDArray[np.int64]]]:
    """Controllable, non-critical, energised devices: a table (controller, gateway) and positions per family."""
    critical = pd.Index([str(c) for c in critical])
    known = pd.Index(np.concatenate([getattr(model, f).ids for f in FAMILIES]).astype(str))
    bad = critical.difference(known)
    if len(bad):
        raise ValueError(f"critical ids {bad[:5].tolist()} are not loads, sgens or storage units of the grid")
    if controllable is None:
        controllable = pd.DataFrame(
            {"element_kind": np.concatenate([np.full(len(getattr(model, f).ids), f) for f in FAMILIES])},
            index=known,
        )
    if "element_kind" not in controllable.columns:
        raise ValueError("controllable needs an 'element_kind' column (as MultiLayerGraph.controllable_now() gives)")
    table = controllable.copy()
    table.index = table.index.astype(str)
    odd = table.index[~table["element_kind"].isin(FAMILIES)]
    if len(odd):
        raise ValueError(
            f"controllable rows {odd[:5].tolist()} have element_kind "
            f"{table.loc[odd[:5], 'element_kind'].tolist()}; only {list(FAMILIES)} can be curtailed"
        )
    for col in ("controller", "gateway"):
        table[col] = table[col].fillna("").astype(str) if col in table else ""
    chosen, rows = {}, []
    for fam in FAMILIES:
        e = getattr(model, fam)
        ids = pd.Index(e.ids.astype(str))
        want = table.index[table["element_kind"].to_numpy() == fam]
        pos = ids.get_indexer(want)
        if (pos < 0).any():
            raise ValueError(f"controllable {fam} ids {want[pos < 0][:5].tolist()} are not in the grid's {fam} table")
        pos = pos[~ids[pos].isin(critical) & e.active[pos]]
        chosen[fam] = np.sort(pos).astype(np.int64)
        rows.append(table.loc[ids[chosen[fam]]])
    out = pd.concat(rows) if rows else table.iloc[:0]
    return out[["element_kind", "controller", "gateway"]], chosen


def protected_branches(model: PFModel, assets: Iterable[str] | None) -> NDArray[np.int64]:
    """Compiled branch positions to protect (default: every active line and transformer)."""
    ids = pd.Index(model.branch_ids.astype(str))
    if assets is None:
        return np.flatnonzero(model.branch_active & np.isin(model.branch_kind, ["line", "trafo", "trafo3w"]))
    want = pd.Index([str(a) for a in assets])
    pos = ids.get_indexer(want)
    if (pos < 0).any():
        raise ValueError(f"assets {want[pos < 0][:5].tolist()} are not branch ids (expected e.g. {ids[:2].tolist()})")
    return np.unique(pos[model.branch_active[pos]]).astype(np.int64)


def curtailed_values(
    model: PFModel, values: dict[str, tuple[NDArray, NDArray]], dev: Devices, x_dev: NDArray[np.float64]
) -> dict[str, tuple[NDArray, NDArray]]:
    """Forecast matrices with the net curtailment (time, device) applied, MW (negative: pay-back).

    Loads and sgens keep their power factor (Q changes by ``x · q/p``, the Grid table's ratio where p = 0);
    storage operation moves towards zero.
    """
    out = {}
    for fam in FAMILIES:
        p, q = (v.copy() for v in values[fam])
        sel = np.flatnonzero(dev.kind == fam)
        if len(sel):
            cols = dev.elem_pos[sel]
            x = x_dev[:, sel]
            if fam == "storage":
                p[:, cols] -= np.sign(p[:, cols]) * x
            else:
                e = getattr(model, fam)
                with np.errstate(divide="ignore", invalid="ignore"):
                    nominal = np.where(e.p_mw[cols] != 0, e.q_mvar[cols] / e.p_mw[cols], 0.0)
                    ratio = np.where(p[:, cols] != 0, q[:, cols] / p[:, cols], nominal[None, :])
                p[:, cols] -= x
                q[:, cols] -= x * ratio
        out[fam] = (p, q)
    return out


def _totals(
    model: PFModel,
    sens: Sensitivity,
    dev: Devices,
    x_dev: NDArray[np.float64],
    protected: NDArray[np.int64],
    dt_h: float,
) -> pd.DataFrame:
    trafos = protected[np.isin(model.branch_kind[protected], ["trafo", "trafo3w"])]
    behind = np.abs(sens.flow[trafos][:, dev.bus_idx].toarray()) > 0.5  # (trafo, device)
    kwh = x_dev.sum(axis=0) * dt_h * 1000.0
    out = {}
    for name, fam in (("shed_kwh", "load"), ("curtailed_kwh", "sgen"), ("storage_kwh", "storage")):
        out[name] = behind @ (kwh * (dev.kind == fam))
    out["devices"] = behind @ (kwh > 1e-9).astype(int)
    return pd.DataFrame(out, index=pd.Index(model.branch_ids[trafos].astype(str), name="asset"))


def _binding(block: RowBlock, res: HighsResult | None, time: pd.DatetimeIndex) -> pd.DataFrame:
    dual = res.row_dual.get("limit_upper", np.zeros(0)) if res is not None else np.zeros(0)
    if len(dual) != block.n_row:
        dual = np.zeros(block.n_row)
    hit = np.flatnonzero(np.abs(dual) > 1e-9)
    return pd.DataFrame(
        {
            "asset": block.entity[hit].astype(str),
            "time": time[block.time[hit]],
            "kind": block.kind[hit].astype(str),
            "shadow_price": -dual[hit] * block.scale[hit],
        }
    )


def _residual(model: PFModel, ac: BaseCase, protected: NDArray, limit: float, time: pd.DatetimeIndex) -> pd.DataFrame:
    load = ac.loading_pct[:, protected]
    t, k = np.nonzero(load > limit + 1e-3)
    br = protected[k]
    s = np.hypot(ac.p_from_mw[t, br], ac.q_from_mvar[t, br])
    over = load[t, k] - limit
    return pd.DataFrame(
        {
            "asset": model.branch_ids[br].astype(str),
            "time": time[t],
            "overload_pct": over,
            "overload_mw": s * over / np.maximum(load[t, k], 1e-9),
        }
    )


def summarise(
    model: PFModel,
    fc: Forecast,
    table: pd.DataFrame,
    dev: Devices,
    x_dev: NDArray[np.float64],
    res: HighsResult | None,
    block: RowBlock,
    ac: BaseCase,
    protected: NDArray[np.int64],
    limit: float,
    sens: Sensitivity,
    iterations: list[dict[str, Any]],
    meta: dict[str, Any],
    pb_dev: NDArray[np.float64] | None = None,
) -> ControlPlan:
    """Build the :class:`ControlPlan` of the last round."""
    dev_table = table.reindex(dev.ids.astype(str))
    commands = split_commands(x_dev, fc.time, dev_table, discrete=bool(meta["discrete"]))
    curt = xr.DataArray(
        x_dev,
        dims=("time", "element"),
        coords={"time": fc.time, "element": dev.ids.astype(object), "element_kind": ("element", dev.kind)},
    )
    residual = _residual(model, ac, protected, limit, fc.time)
    reason = ""
    if len(residual):
        slack = res.x.get("slack", np.zeros(0)) if res is not None else np.zeros(0)
        short = sorted(set(block.entity[np.flatnonzero(slack > 1e-7)].astype(str))) if len(slack) else []
        reason = (
            f"not enough controllable power behind {short[:5]}: every controllable device that relieves them is "
            "fully curtailed (add controllable devices, raise the margin or accept the overload)"
            if short
            else f"the linearisation error was not closed within {len(iterations)} AC re-checks (raise max_iter)"
        )
    return ControlPlan(
        commands=commands,
        curtailment_mw=curt,
        totals=_totals(model, sens, dev, x_dev, protected, fc.dt_h),
        objective=float(res.objective) if res is not None else 0.0,
        status=res.status if res is not None else "not solved",
        mip_gap=float(res.mip_gap) if res is not None else 0.0,
        binding=_binding(block, res, fc.time),
        iterations=iterations,
        residual=residual,
        reason=reason,
        meta={**meta, "n_devices": len(dev.ids), "rows": int(block.n_row)},
        payback_mw=None if pb_dev is None else curt.copy(data=pb_dev),
    )
