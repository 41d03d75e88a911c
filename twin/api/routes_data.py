"""Measurements: latest values, time-series windows, virtual sensors and the latest overload prediction."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from twin.api.auth import require
from twin.api.models import jsonable

router = APIRouter(tags=["data"], dependencies=[Depends(require("read"))])

MAX_IDS = 100
MAX_STEPS = 10_000
LATEST_WINDOW_STEPS = 7 * 96  # the latest value is looked for in the last week of slots
Group = Literal["measurements", "sensors", "loads", "sgens", "storage", "results"]
_IDS = Query(description="comma-separated device ids (for measurements: clear meter ids or stored pseudonyms)")


def _split_ids(ids: str | None) -> list[str] | None:
    if ids is None or not ids.strip():
        return None
    out = [i.strip() for i in ids.split(",") if i.strip()]
    if len(out) > MAX_IDS:
        raise ValueError(f"{len(out)} ids requested; at most {MAX_IDS} per request: split the request")
    return out


def _dataset(site: Any, group: str) -> xr.Dataset:
    if group not in site.groups():
        raise LookupError(f"the store has no group {group!r}; it has {site.groups()}")
    return site.dataset(group)


def _device_dim(da: xr.DataArray, what: str) -> str:
    other = [d for d in da.dims if d != "time"]
    if "time" not in da.dims or len(other) != 1:
        raise LookupError(f"{what} is not a (time, device) series (dims {da.dims})")
    return str(other[0])


def _select_ids(site: Any, group: str, da: xr.DataArray, dim: str, ids: list[str] | None) -> xr.DataArray:
    if ids is None:
        return da
    have = set(da[dim].to_numpy().astype(str))
    hashed = site.store.meter_ids(ids) if group == "measurements" else ids  # clear meter ids → stored pseudonyms
    resolved, missing = [], []
    for clear, stored in zip(ids, hashed, strict=True):
        if clear in have or stored in have:
            resolved.append(clear if clear in have else str(stored))
        else:
            missing.append(clear)
    if missing:
        raise LookupError(
            f"unknown {dim} ids {missing[:10]} in group {group!r}; GET the group without ids to list them"
        )
    return da.sel({dim: resolved})


def _latest(da: xr.DataArray, dim: str) -> dict[str, Any]:
    window = da.isel(time=slice(-LATEST_WINDOW_STEPS, None))
    values = np.asarray(window.values, dtype=float)
    times = window["time"].to_numpy()
    valid = np.isfinite(values)
    last = values.shape[0] - 1 - np.argmax(valid[::-1], axis=0)
    has = valid.any(axis=0)
    cols = np.arange(values.shape[1])
    out = {}
    for i, dev in enumerate(window[dim].to_numpy().astype(str)):
        out[dev] = {"value": values[last[i], cols[i]] if has[i] else None, "time": times[last[i]] if has[i] else None}
    return out


@router.get("/measurements/latest")
def latest(request: Request, group: Group = "measurements", ids: Annotated[str | None, _IDS] = None) -> dict[str, Any]:
    """Last value and its time per device and variable (looked for in the last week of slots)."""
    site = request.app.state.site
    return site.memo(group, ("latest", ids), lambda: _latest_doc(site, group, ids))


def _latest_doc(site: Any, group: str, ids: str | None) -> dict[str, Any]:
    ds = _dataset(site, group)
    wanted = _split_ids(ids)
    variables: dict[str, Any] = {}
    for name, da in ds.data_vars.items():
        if str(name).startswith("quality_") or da.dtype.kind not in "fiu" or da.ndim != 2 or "time" not in da.dims:
            continue
        dim = _device_dim(da, f"{group}/{name}")
        sel = _select_ids(site, group, da, dim, wanted)
        if sel.sizes[dim] > MAX_IDS:
            raise ValueError(f"{group} has {sel.sizes[dim]} devices; ask for at most {MAX_IDS} with ids=a,b,...")
        variables[str(name)] = _latest(sel, dim)
    return jsonable({"group": group, "units": ds.attrs.get("units", {}), "variables": variables})


def _naive_utc(value: dt.datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


@router.get("/timeseries/{group}/{variable}")
def timeseries(
    request: Request,
    group: Group,
    variable: str,
    ids: Annotated[str | None, _IDS] = None,
    start: Annotated[
        dt.datetime | None, Query(description="first time, ISO 8601 (UTC unless an offset is given)")
    ] = None,
    end: Annotated[
        dt.datetime | None, Query(description="last time (inclusive); default: the last stored slot")
    ] = None,
) -> dict[str, Any]:
    """``{time: [...], series: {id: [...]}}`` of one variable; at most 100 ids × 10,000 steps per request.

    Without ``start`` the window is the last 7 days before ``end``."""
    site = request.app.state.site
    ds = _dataset(site, group)
    if variable not in ds.data_vars:
        raise LookupError(f"group {group!r} has no variable {variable!r}; it has {sorted(map(str, ds.data_vars))}")
    da = ds[variable]
    dim = _device_dim(da, f"{group}/{variable}")
    wanted = _split_ids(ids)
    if wanted is None and da.sizes[dim] > MAX_IDS:
        raise ValueError(f"{group} has {da.sizes[dim]} devices; ask for at most {MAX_IDS} with ids=a,b,...")
    lo, hi = _naive_utc(start), _naive_utc(end)
    times = da["time"].to_index()
    hi = times[-1] if hi is None and len(times) else hi
    if lo is None and hi is not None:
        lo = hi - pd.Timedelta(days=7) + site.store.freq
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"start {lo} lies after end {hi}; give start <= end")
    pos = slice(
        times.searchsorted(lo, "left") if lo is not None else 0,
        times.searchsorted(hi, "right") if hi is not None else 0,
    )
    asked = int((hi - lo) / site.store.freq) + 1 if lo is not None and hi is not None else 0
    if max(asked, pos.stop - pos.start) > MAX_STEPS:
        raise ValueError(
            f"{asked} steps of {site.store.attrs.get('freq')} between {lo} and {hi}; at most {MAX_STEPS} per request: "
            "narrow start/end"
        )
    sel = _select_ids(site, group, da.isel(time=pos), dim, wanted)
    values = np.asarray(sel.transpose("time", dim).values, dtype=float)
    series = {dev: values[:, i] for i, dev in enumerate(sel[dim].to_numpy().astype(str))}
    units = ds.attrs.get("units", {})
    unit = da.attrs.get("units", units.get(variable) if isinstance(units, dict) else None)
    return jsonable(
        {"group": group, "variable": variable, "unit": unit, "time": sel["time"].to_numpy(), "series": series}
    )


def _sensors(site: Any) -> list[dict[str, Any]]:
    from twin.timeseries.sensors import virtual_sensors

    vs = virtual_sensors(site.store)
    series = vs.series
    ok = series["complete"] & series["measured_p_kw"].notnull()
    rows = []
    for trafo, summary in vs.summary.iterrows():
        s = series.sel(trafo=trafo)
        good = np.flatnonzero(ok.sel(trafo=trafo).to_numpy())
        last = int(good[-1]) if len(good) else None
        row = {"trafo": trafo, **summary.to_dict(), "time": None}
        for var in ("virtual_p_kw", "measured_p_kw", "losses_kw", "residual_kw", "rel_error"):
            row[var] = None if last is None else float(s[var].values[last])
        if last is not None:
            row["time"] = series["time"].values[last]
        rows.append(row)
    return rows


@router.get("/sensors")
async def sensors(request: Request) -> dict[str, Any]:
    """Virtual sensor per metered transformer: latest sum of its meters against its own metering, and the mismatch
    statistics (median relative error, silent and stuck meters, suspected non-technical losses)."""
    rows = await run_in_threadpool(_sensors, request.app.state.site)
    return jsonable({"sensors": rows})


def _predictions(site: Any) -> dict[str, Any]:
    ds = _dataset(site, "overload")
    p = ds["p_exceed"].transpose("time", "branch")
    expected = ds["expected_loading_pct"].transpose("time", "branch")
    issued = pd.Timestamp(ds.attrs["issued"]) if ds.attrs.get("issued") else None
    limit = float(ds.attrs.get("limit_pct", 100.0))
    times = p["time"].to_index()
    pv = p.values
    over = pv >= 0.5
    first = np.where(over.any(axis=0), np.argmax(over, axis=0), -1)
    kinds = ds["branch_kind"].to_numpy().astype(str) if "branch_kind" in ds.coords else [""] * p.sizes["branch"]
    rows = []
    for i, branch in enumerate(p["branch"].to_numpy().astype(str)):
        when = times[first[i]] if first[i] >= 0 else None
        rows.append(
            {
                "asset": branch,
                "kind": kinds[i],
                "risk": float(np.nanmax(pv[:, i])) if pv.shape[0] else None,
                "max_expected_loading_pct": float(np.nanmax(expected.values[:, i])) if pv.shape[0] else None,
                "first_overload": when,
                "lead_time": None if when is None or issued is None else when - issued,
                "at_risk": bool(first[i] >= 0),
            }
        )
    rows.sort(key=lambda r: -(r["risk"] or 0.0))
    return {
        "issued": issued,
        "limit_pct": limit,
        "start": times[0] if len(times) else None,
        "end": times[-1] if len(times) else None,
        "assets": rows,
    }


@router.get("/predictions")
def predictions(request: Request) -> dict[str, Any]:
    """The latest overload prediction (``gridtwin predict``): per asset the risk (highest probability of exceeding
    the limit), the highest expected loading, the first step with risk ≥ 0.5 and its lead time from the issue."""
    return jsonable(_predictions(request.app.state.site))
