"""Overload prediction: forecast members → one batched AC power flow → risk per transformer and line.

A forecast is a set of members along a leading dim, ``quantile`` (e.g. 0.1/0.5/0.9) or ``sample``: DataArrays
``(member, time, load)`` for load P (and optionally Q, static generator and storage P). All members × time steps
are solved in **one** ``solvers.run_pf_timeseries`` call on one compiled model, then per branch and step:

- ``expected_loading_pct``: the P50 member (quantiles) or the mean over samples;
- ``p_exceed``: probability that loading exceeds ``limit_pct`` — the share of samples above it; for quantile
  forecasts with static generators, the weighted share of the load × generation members of :func:`cross_members`;
  for quantile members of loads only, ``1 − F(limit)`` with ``F`` piecewise linear through (loading at q, q) and
  0 / 1 outside the lowest / highest member (conservative below P10: a limit under the P10 loading counts as
  certain);
- ``first_exceed``: the first step with ``p_exceed ≥ p_alarm``, and its lead time from the issue time.

:func:`drivers` ranks the loads behind an overload by batched finite differences: the worst step is repeated once
per load with that load raised by ``delta``, all in one batched power flow, giving d(loading)/dP per load; the
driver score is that sensitivity × the load's power (percentage points of loading it accounts for).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

import solvers
from twin.grid import Grid

INPUTS = ("load_p_mw", "load_q_mvar", "sgen_p_mw", "storage_p_mw")


@dataclass
class OverloadPrediction:
    """Result of :func:`predict_overloads`: per-step risk (``risk``) and the ranked at-risk assets (``ranking``)."""

    risk: xr.Dataset
    ranking: pd.DataFrame
    results: xr.Dataset


def _member_dim(da: xr.DataArray) -> str:
    for dim in ("quantile", "sample"):
        if dim in da.dims:
            return dim
    raise ValueError(f"forecast {da.name!r} has dims {da.dims}; give members along 'quantile' or 'sample'")


def _stack(forecasts: dict[str, xr.DataArray], member: str) -> tuple[dict[str, xr.DataArray], pd.Index, pd.Index]:
    """(member, time, element) → (time=member×time steps, element) with a synthetic regular time axis."""
    first = next(iter(forecasts.values()))
    members, times = first[member].to_index(), first["time"].to_index()
    steps = pd.date_range("2000-01-01", periods=len(members) * len(times), freq="15min")
    out = {}
    for name, da in forecasts.items():
        if da.sizes[member] != len(members) or da.sizes["time"] != len(times):
            raise ValueError(f"forecast {name!r}: members/time differ from {first.name!r}'s")
        element = next(d for d in da.dims if d not in (member, "time"))
        flat = da.transpose(member, "time", element).to_numpy().reshape(len(steps), -1)
        out[name] = xr.DataArray(flat, dims=("time", element), coords={"time": steps, element: da[element].values})
    return out, members, times


def predict_overloads(
    grid: Grid,
    forecasts: dict[str, xr.DataArray],
    *,
    limit_pct: float = 100.0,
    p_alarm: float = 0.5,
    issued: pd.Timestamp | None = None,
) -> OverloadPrediction:
    """Risk of overload per branch and step from forecast members (see the module docstring).

    ``forecasts`` maps names of :data:`INPUTS` to DataArrays ``(quantile|sample, time, element)``; elements not
    given keep their Grid values. ``issued`` (default: the first forecast step) is where lead times count from.
    """
    unknown = set(forecasts) - set(INPUTS)
    if unknown:
        raise ValueError(f"unknown forecast inputs {sorted(unknown)}; use {INPUTS}")
    member = _member_dim(next(iter(forecasts.values())))
    weights = None
    if member == "quantile" and "sgen_p_mw" in forecasts:
        forecasts, weights = cross_members(forecasts)
        member = "sample"
    stacked, members, times = _stack(forecasts, member)
    model = solvers.compile_grid(grid)
    res = solvers.run_pf_timeseries(model, **stacked)
    branch = res["branch"].values
    loading = res["loading_pct"].to_numpy().reshape(len(members), len(times), len(branch))
    if member == "quantile":
        q = members.to_numpy(dtype=float)
        order = np.argsort(q)
        expected = loading[int(np.argmin(np.abs(q - 0.5)))]
        p_exceed = _exceed_from_quantiles(loading[order], q[order], limit_pct)
    elif weights is not None:  # load quantile × generation quantile members
        expected = loading[int(np.argmax(weights))]
        p_exceed = np.tensordot(weights, loading > limit_pct, axes=1)
    else:
        expected = np.nanmean(loading, axis=0)
        p_exceed = (loading > limit_pct).mean(axis=0)
    coords = {"time": times, "branch": branch, "branch_kind": ("branch", res["branch_kind"].values)}
    risk = xr.Dataset(
        {
            "expected_loading_pct": (("time", "branch"), expected),
            "p_exceed": (("time", "branch"), p_exceed),
            "loading_pct": ((member, "time", "branch"), loading),
            "member_weight": ((member,), _member_weights(members, member, weights)),
        },
        coords={member: members, **coords},
        attrs={"limit_pct": limit_pct, "p_alarm": p_alarm},
    )
    issued = times[0] if issued is None else pd.Timestamp(issued)
    return OverloadPrediction(risk, _ranking(risk, issued, p_alarm), res)


def _member_weights(members: pd.Index, member: str, weights: np.ndarray | None) -> np.ndarray:
    if weights is not None:
        return weights
    if member == "quantile":
        return quantile_weights(members.to_numpy(dtype=float))
    return np.full(len(members), 1.0 / len(members))


def quantile_weights(q: np.ndarray) -> np.ndarray:
    """Probability mass of each quantile level: bins split halfway between levels (0.1/0.5/0.9 → 0.3/0.4/0.3)."""
    q = np.asarray(q, dtype=float)
    edges = np.concatenate([[0.0], (q[1:] + q[:-1]) / 2, [1.0]])
    return np.diff(edges)


def cross_members(forecasts: dict[str, xr.DataArray]) -> tuple[dict[str, xr.DataArray], np.ndarray]:
    """Quantile forecasts → members ``sample`` = load quantile × generation quantile, with their probabilities.

    Loads (P and Q) and storage take one quantile level, static generators another, independently: a PV-driven
    reverse-flow overload needs high generation with low load, a load-driven one the opposite, and pairing equal
    levels (all P90 together) would miss one of them. Weights: :func:`quantile_weights` per family, multiplied.
    The member with the largest weight is the median of both.
    """
    q = forecasts["sgen_p_mw"]["quantile"].values
    w = quantile_weights(q)
    out: dict[str, list[xr.DataArray]] = {name: [] for name in forecasts}
    weights, labels = [], []
    for i, ql in enumerate(q):
        for j, qg in enumerate(q):
            for name, da in forecasts.items():
                level = qg if name == "sgen_p_mw" else ql
                out[name].append(da.sel(quantile=level, drop=True))
            weights.append(w[i] * w[j])
            labels.append(f"load {ql:g} / gen {qg:g}")
    members = {name: xr.concat(parts, dim=pd.Index(labels, name="sample")) for name, parts in out.items()}
    return members, np.array(weights)


def _exceed_from_quantiles(loading: np.ndarray, q: np.ndarray, limit: float) -> np.ndarray:
    """1 − F(limit) per (time, branch), F piecewise linear through (loading_k, q_k), 0 below / 1 above."""
    lo = np.minimum.accumulate(loading[::-1], axis=0)[::-1]  # enforce monotone loadings across quantile levels
    below = (lo <= limit).sum(axis=0)  # how many members are at or under the limit
    k = np.clip(below - 1, 0, len(q) - 1)
    k1 = np.clip(below, 0, len(q) - 1)
    x0 = np.take_along_axis(lo, k[None], 0)[0]
    x1 = np.take_along_axis(lo, k1[None], 0)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(x1 > x0, (limit - x0) / (x1 - x0), 0.0)
    cdf = np.where(below == 0, 0.0, np.where(below == len(q), 1.0, q[k] + frac * (q[k1] - q[k])))
    return np.where(np.isnan(loading).any(axis=0), np.nan, 1.0 - cdf)


def _ranking(risk: xr.Dataset, issued: pd.Timestamp, p_alarm: float) -> pd.DataFrame:
    p = risk["p_exceed"].to_numpy()
    alarm = p >= p_alarm
    at_risk = alarm.any(axis=0)
    times = risk["time"].to_index()
    first = np.where(at_risk, alarm.argmax(axis=0), -1)
    step_h = (times[1] - times[0]) / pd.Timedelta("1h") if len(times) > 1 else 0.25
    rows = pd.DataFrame(
        {
            "kind": risk["branch_kind"].values,
            "max_p_exceed": np.nanmax(np.where(np.isnan(p), -1, p), axis=0),
            "max_expected_loading_pct": np.nanmax(risk["expected_loading_pct"].to_numpy(), axis=0),
            "first_exceed": [times[i] if i >= 0 else pd.NaT for i in first],
            "hours_at_risk": alarm.sum(axis=0) * step_h,
        },
        index=pd.Index(risk["branch"].values, name="branch"),
    )
    rows = rows[at_risk]
    rows["lead_time"] = rows["first_exceed"] - issued
    return rows.sort_values(
        ["first_exceed", "max_p_exceed", "max_expected_loading_pct"], ascending=[True, False, False]
    )


def drivers(
    grid: Grid,
    injections: dict[str, xr.DataArray],
    branch_id: str,
    at: pd.Timestamp,
    *,
    delta_mw: float = 1e-3,
    top: int = 10,
) -> pd.DataFrame:
    """The loads and generators that drive ``branch_id``'s loading at step ``at`` (batched finite differences).

    ``injections`` are ``(time, element)`` inputs as for ``solvers.run_pf_timeseries`` (e.g. the P50 member). Every
    element with a P input (``load_p_mw``, ``sgen_p_mw``, ``storage_p_mw``) is raised by ``delta_mw`` in its own
    step of one batched power flow (loads keep their power factor). Returns the ``top`` elements by |score|:
    ``sensitivity_pct_per_mw`` (d loading / d P) and ``score_pct`` (sensitivity × the element's P: the loading
    points it accounts for; PV feed-in that overloads a transformer has a large positive score).
    """
    base = {k: v.sel(time=[at]) for k, v in injections.items()}
    names = [k for k in ("load_p_mw", "sgen_p_mw", "storage_p_mw") if k in base]
    sizes = [base[k].shape[1] for k in names]
    n = sum(sizes)
    steps = pd.date_range("2000-01-01", periods=n + 1, freq="15min")
    batch = {
        k: xr.DataArray(
            np.repeat(v.to_numpy(), n + 1, axis=0), dims=v.dims, coords={"time": steps, v.dims[1]: v[v.dims[1]].values}
        )
        for k, v in base.items()
    }
    offset = 0
    for name, size in zip(names, sizes, strict=True):
        bump = np.zeros((n + 1, size))
        bump[offset + 1 + np.arange(size), np.arange(size)] = delta_mw
        batch[name] = batch[name] + bump
        if name == "load_p_mw" and "load_q_mvar" in batch:  # keep each load's power factor
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.nan_to_num(base["load_q_mvar"].to_numpy() / base["load_p_mw"].to_numpy())
            batch["load_q_mvar"] = batch["load_q_mvar"] + bump * ratio
        offset += size
    res = solvers.run_pf_timeseries(solvers.compile_grid(grid), **batch)
    loading = res["loading_pct"].sel(branch=branch_id).to_numpy()
    sens = (loading[1:] - loading[0]) / delta_mw
    p = np.concatenate([base[k].to_numpy()[0] for k in names])
    ids = np.concatenate([base[k][base[k].dims[1]].values.astype(object) for k in names])
    kinds = np.repeat([k.split("_")[0] for k in names], sizes)
    out = pd.DataFrame(
        {"kind": kinds, "sensitivity_pct_per_mw": sens, "p_mw": p, "score_pct": sens * p},
        index=pd.Index(ids, name="element"),
    )
    return out.reindex(out["score_pct"].abs().sort_values(ascending=False, kind="stable").index).head(top)
