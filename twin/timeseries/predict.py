"""Overload prediction over a store (``gridtwin predict``): history → forecasts → batched power flow → risk.

Reads the store's ``loads`` group (and ``sgens``/``storage`` when present), fits a :class:`twin.forecast.QuantileGBT`
across all loads on the last ``train_days`` (PV generators: clear-sky index over the last 7 days, other generators
and storage: day-naive with error bands), forecasts ``horizon`` from
``issued`` (default: just after the last stored slot), runs :func:`twin.overload.predict_overloads` on the quantile
members, finds the loads driving the first predicted overload (:func:`twin.overload.drivers`), and writes the
``forecasts`` and ``overload`` groups. Each stage is timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from twin.forecast import QuantileGBT, SeasonalNaive
from twin.forecast_pv import PVForecast, is_pv
from twin.overload import OverloadPrediction, drivers, predict_overloads
from twin.timeseries.store import Store, StoreError

if TYPE_CHECKING:
    from twin.grid import Grid


@dataclass
class StorePrediction:
    """What :func:`predict_store` produced, with seconds per stage."""

    prediction: OverloadPrediction
    forecasts: xr.Dataset
    drivers: pd.DataFrame | None
    seconds: dict[str, float] = field(default_factory=dict)


def _history(store: Store, group: str, var: str, dim: str, issued: pd.Timestamp, days: float) -> xr.DataArray:
    da = store.dataset(group)[var]
    da = da.sel(
        time=(da["time"] < np.datetime64(issued)) & (da["time"] >= np.datetime64(issued - pd.Timedelta(days=days)))
    )
    return da.load().rename({dim: "load"}) if dim != "load" else da.load()


def _generator_forecast(
    irradiance: xr.DataArray | None, hist: xr.DataArray, model: QuantileGBT, issued: pd.Timestamp, horizon: str
) -> xr.DataArray:
    """PV (no output at night): clear-sky-index quantiles; other generators: day-naive with error bands."""
    pv = is_pv(hist.values, pd.DatetimeIndex(hist["time"].values))
    parts = []
    if pv.any():
        sel = hist.isel(load=np.flatnonzero(pv)).rename({"load": "sgen"})
        parts.append(PVForecast(model.quantiles).predict(sel, issued, horizon, irradiance=irradiance))
    if (~pv).any():
        naive = SeasonalNaive("1D", model.quantiles).predict(hist.isel(load=np.flatnonzero(~pv)), issued, horizon)
        parts.append(naive.rename({"load": "sgen"}))
    return xr.concat(parts, dim="sgen").reindex(sgen=hist["load"].values)


def predict_store(
    store: Store,
    grid: Grid,
    *,
    horizon: str = "48h",
    issued: pd.Timestamp | str | None = None,
    train_days: float = 28,
    max_iter: int = 100,
    model: QuantileGBT | None = None,
    temperature: xr.DataArray | None = None,
    irradiance: xr.DataArray | None = None,
    write: bool = True,
) -> StorePrediction:
    """Forecast the store's loads and predict overloads over ``horizon`` (see the module docstring).

    ``model``: an already fitted :class:`~twin.forecast.QuantileGBT` (e.g. ``QuantileGBT.load(path)``); fitted here
    on the last ``train_days`` when omitted. ``temperature`` (°C) and ``irradiance`` (GHI, W/m²): ``(time,)``
    series covering the history and the horizon (measured, then forecast), used by the load model (heat pumps,
    air conditioning) and the PV model (instead of clear-sky irradiance).
    """
    if "loads" not in store.groups():
        raise StoreError(f"{store.path} has no 'loads' group: build it from meters (gridtwin clean + derive) first")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    times = store.dataset("loads")["time"].to_index()
    issued = times[-1] + (times[1] - times[0]) if issued is None else pd.Timestamp(issued)
    p_hist = _history(store, "loads", "p_mw", "load", issued, train_days)
    q_hist = _history(store, "loads", "q_mvar", "load", issued, train_days)
    seconds["read history"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    if model is None:
        from threadpoolctl import threadpool_limits

        # scikit-learn's OpenMP threads beside numba's oversubscribe small machines (217 s instead of seconds
        # measured on 2 loaded cores); one thread per fit is the safe default
        with threadpool_limits(limits=1, user_api="openmp"):
            model = QuantileGBT(max_iter=max_iter).fit(p_hist, temperature=temperature)
    seconds["fit"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    p_fc = model.predict(p_hist, issued, horizon, temperature=temperature)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (q_hist.sum("time") / p_hist.sum("time")).fillna(0.0)
    forecasts = {"load_p_mw": p_fc, "load_q_mvar": p_fc * ratio}
    if "sgens" in store.groups():
        forecasts["sgen_p_mw"] = _generator_forecast(
            irradiance, _history(store, "sgens", "p_mw", "sgen", issued, 21), model, issued, horizon
        )
    if "storage" in store.groups():
        hist = _history(store, "storage", "p_mw", "storage", issued, 21)
        forecasts["storage_p_mw"] = (
            SeasonalNaive("1D", model.quantiles).predict(hist, issued, horizon).rename({"load": "storage"})
        )
    seconds["forecast"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    prediction = predict_overloads(grid, forecasts, issued=issued)
    seconds["power flow + risk"] = time.perf_counter() - t3
    t4 = time.perf_counter()
    driver_table = None
    if len(prediction.ranking):
        asset = prediction.ranking.index[0]
        p50 = {k: v.sel(quantile=0.5, method="nearest").drop_vars("quantile") for k, v in forecasts.items()}
        driver_table = drivers(grid, p50, asset, prediction.ranking.loc[asset, "first_exceed"])
    seconds["drivers"] = time.perf_counter() - t4
    out = xr.Dataset(forecasts)
    if write:
        t5 = time.perf_counter()
        store.write_dataset("forecasts", out.assign_attrs(issued=str(issued), model="QuantileGBT"))
        store.write_dataset("overload", prediction.risk.drop_vars("loading_pct").assign_attrs(issued=str(issued)))
        seconds["write"] = time.perf_counter() - t5
    return StorePrediction(prediction, out, driver_table, seconds)
