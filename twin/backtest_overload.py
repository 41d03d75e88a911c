"""Overload detection in a backtest: forecast members → AC power flow → alarms per asset-hour vs the actual.

The truth is the AC power flow on the actual profiles: an asset-hour is overloaded when its loading exceeds
``limit_pct`` at any step of the hour. The prediction runs the same power flow on the members of
:func:`twin.overload.cross_members` (as ``gridtwin predict`` does): each load quantile (P10/P50/P90, storage
following the loads) paired with each generation quantile, weighted 0.3/0.4/0.3 per family. ``p_exceed`` is the
weighted share of members above the limit; an asset-hour is alarmed when ``p_exceed >= p_alarm`` at any step.

Scores, over all protected assets and test hours (micro-averaged): precision, recall, and for each overload
event (a run of overloaded hours of one asset) whether it was alarmed and its lead time (event start minus the
issue time of the forecast that first alarmed it, all forecasts being issued at 00:00 for the next 24 h).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import solvers
from twin.backtest import Backtest
from twin.grid import Grid
from twin.overload import cross_members, quantile_weights


def _members(bt: Backtest) -> list[tuple[float, dict[str, xr.DataArray]]]:
    """(weight, power-flow inputs) per member: :func:`twin.overload.cross_members` of the model's forecasts."""
    fc = {var: m["model"].astype(np.float64) for var, m in bt.forecasts.items()}
    fc["load_q_mvar"] = fc["load_p_mw"] * bt.q_ratio
    if "sgen_p_mw" not in fc:
        w = quantile_weights(fc["load_p_mw"]["quantile"].values)
        return [(wi, {k: v.isel(quantile=i, drop=True) for k, v in fc.items()}) for i, wi in enumerate(w)]
    fc["sgen_p_mw"] = fc["sgen_p_mw"].clip(min=0.0)
    members, weights = cross_members(fc)
    return [(w, {k: v.isel(sample=i, drop=True) for k, v in members.items()}) for i, w in enumerate(weights)]


def _loading(model: solvers.PFModel, inputs: dict[str, xr.DataArray], times: pd.DatetimeIndex) -> xr.DataArray:
    res = solvers.run_pf_timeseries(model, **inputs)
    if not bool(res["converged"].all()):
        bad = times[~res["converged"].values][0]
        raise RuntimeError(f"power flow did not converge at {bad}; the forecast member is implausible there.")
    return res["loading_pct"].astype(np.float32)


def detect(
    grid: Grid, bt: Backtest, *, limit_pct: float = 100.0, p_alarm: float = 0.5, assets: Any = None
) -> dict[str, Any]:
    """Actual vs predicted overloads per asset-hour (see the module docstring).

    Returns
    -------
    dict
        ``actual_loading`` and ``p_exceed`` (time × branch), ``hourly`` (DataFrame per asset: actual/alarmed/
        true-positive hours), ``events`` (one row per actual overload event: asset, start, hours, detected,
        lead_h), ``scores`` (precision, recall, f1, events detected, median/min lead, hours) and ``seconds``.
    """
    t0 = time.perf_counter()
    model = solvers.compile_grid(grid)
    times = pd.DatetimeIndex(bt.actual["time"].values)
    act = bt.actual
    actual_inputs = {v: act[v] for v in ("load_p_mw", "load_q_mvar", "sgen_p_mw", "storage_p_mw") if v in act}
    actual = _loading(model, actual_inputs, times)
    seconds = {"actual power flow": time.perf_counter() - t0}
    t1 = time.perf_counter()
    p_exceed = xr.zeros_like(actual)
    for weight, inputs in _members(bt):
        p_exceed = p_exceed + weight * (_loading(model, inputs, times) > limit_pct)
    seconds["member power flows"] = time.perf_counter() - t1
    branches = actual["branch"].values if assets is None else np.asarray(list(assets))
    hour_act = (actual.sel(branch=branches) > limit_pct).resample(time="1h").max()
    hour_alarm = (p_exceed.sel(branch=branches) >= p_alarm).resample(time="1h").max()
    result = _score(hour_act.to_pandas(), hour_alarm.to_pandas())
    return {"actual_loading": actual, "p_exceed": p_exceed, **result, "seconds": seconds}


def _events(flags: pd.DataFrame) -> pd.DataFrame:
    """Runs of True per column → asset, start, hours."""
    rows = []
    for asset in flags.columns:
        f = flags[asset].to_numpy().astype(np.int8)
        edges = np.diff(np.concatenate([[0], f, [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        rows += [(asset, flags.index[s], e - s, s, e) for s, e in zip(starts, ends, strict=True)]
    return pd.DataFrame(rows, columns=["asset", "start", "hours", "i0", "i1"])


def _score(actual: pd.DataFrame, alarm: pd.DataFrame) -> dict[str, Any]:
    a, p = actual.to_numpy(bool), alarm.to_numpy(bool)
    tp, fp, fn = int((a & p).sum()), int((~a & p).sum()), int((a & ~p).sum())
    events = _events(actual)
    detected, lead = [], []
    for row in events.itertuples():
        hit = np.flatnonzero(p[row.i0 : row.i1, actual.columns.get_loc(row.asset)])
        detected.append(hit.size > 0)
        issue = row.start.normalize()  # forecasts are issued at 00:00 for the next 24 h
        lead.append((row.start - issue) / pd.Timedelta("1h") if hit.size else np.nan)
    events = events.drop(columns=["i0", "i1"]).assign(detected=detected, lead_h=lead)
    hourly = pd.DataFrame(
        {"actual_h": a.sum(axis=0), "alarmed_h": p.sum(axis=0), "hit_h": (a & p).sum(axis=0)}, index=actual.columns
    )
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    scores = {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if tp else 0.0,
        "overloaded_asset_hours": tp + fn,
        "alarmed_asset_hours": tp + fp,
        "events": len(events),
        "events_detected": int(events["detected"].sum()) if len(events) else 0,
        "median_lead_h": float(np.nanmedian(events["lead_h"])) if events["detected"].any() else float("nan"),
    }
    return {"hourly": hourly[(hourly != 0).any(axis=1)], "events": events, "scores": scores}
