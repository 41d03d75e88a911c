"""Year-long rolling-origin day-ahead backtest: load, PV and storage forecasts, then overload detection.

Every test day is forecast at its 00:00 for the next 24 h from the ``train_days`` days before it only (nothing at
or after the issue time is seen). Families and models:

- loads (``load_p_mw``): :class:`twin.forecast.QuantileGBT` across all loads, refitted every ``refit_days`` days,
  with a temperature input when the profiles carry one (electrified grids: heat pumps follow the temperature);
  the temperature the model sees for the target day is a *forecast*: the actual plus AR(1) noise of
  ``temperature_error_k`` standard deviation (day-ahead weather forecasts miss by 1-2 K);
- static generators (``sgen_p_mw``): :class:`twin.forecast_pv.PVForecast` (clear-sky index) for generators that
  produce nothing at night, day-naive with error bands for the others (wind, biomass, CHP);
- storage (``storage_p_mw``): day-naive with error bands;
- reactive power of loads: the P forecast times each load's Q/P ratio fitted on the training window.

Every family is scored (:func:`twin.forecast.scores`) against day-naive and week-naive forecasts with error bands.

Series that are exact positive multiples of one another over the window a forecast sees (SimBench assigns one
profile to many loads) are forecast once and scaled: every model here is scale-equivariant (features are
normalised by each series' mean, naive and clear-sky-index forecasts scale linearly), so a fitted model's
forecasts are exactly those it would give each copy. The load model is fitted on the distinct series, each
weighted by the number of loads it stands for. This makes a year of 1-MV-urban forecasts minutes, not hours.

Overload detection (:mod:`twin.backtest_overload`) runs the AC power flow on the actual profiles and on 9
forecast members (load quantile × generation quantile) and compares per asset and hour.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from threadpoolctl import threadpool_limits

from twin.forecast import DAY, ForecastError, QuantileGBT, SeasonalNaive, scores, unique_columns
from twin.forecast_pv import PVForecast, is_pv

QUANTILES = (0.1, 0.5, 0.9)
FAMILIES = {"load_p_mw": "load", "sgen_p_mw": "sgen", "storage_p_mw": "storage"}
MODELS = ("model", "naive_1D", "naive_7D")


@dataclass
class Backtest:
    """Forecasts over the test days and their scores.

    ``forecasts[var][model]``: ``(quantile, time, element)`` float32 arrays over the test days for each family
    variable and ``model`` in :data:`MODELS`; ``actual``: the input profiles over the test days; ``scores``: one
    row per (family, model); ``seconds``: time per stage.
    """

    code: str
    issue_days: pd.DatetimeIndex
    actual: xr.Dataset
    forecasts: dict[str, dict[str, xr.DataArray]]
    q_ratio: xr.DataArray
    scores: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)


def synthetic_irradiance_forecast(
    pv_p_mw: xr.DataArray, error: float = 0.3, hours: float = 6.0, seed: int = 0
) -> xr.DataArray:
    """A stand-in for archived day-ahead irradiance forecasts (W/m²) when the profiles come without weather.

    The "measured" irradiance is the fleet's normalised PV output (sum over generators, 1000 W/m² at its peak),
    the forecast is that times ``exp(error · z)``, ``z`` an AR(1) standard normal with a ``hours`` correlation
    time: a multiplicative error of ``error`` (0.3 ≈ the 25-40 % hourly nRMSE of day-ahead NWP irradiance in
    central Europe). It is derived from the actual output, so results with it are only as honest as ``error``:
    report them next to the history-only results.
    """
    fleet = pv_p_mw.sum(pv_p_mw.dims[1]).clip(min=0.0)
    ghi = fleet / float(fleet.max()) * 1000.0
    z = _ar1(ghi.size, 1.0, ghi, hours, seed)
    return (ghi * np.exp(error * z)).assign_attrs(units="W/m2", model=f"synthetic NWP, error={error}")


def _ar1(n: int, std: float, like: xr.DataArray, hours: float, seed: int) -> np.ndarray:
    """AR(1) noise with standard deviation ``std`` and correlation time ``hours`` on ``like``'s time axis."""
    from scipy.signal import lfilter

    step_h = (like["time"].values[1] - like["time"].values[0]) / np.timedelta64(1, "h")
    phi = np.exp(-step_h / hours)
    shocks = np.random.default_rng(seed).standard_normal(n) * std * np.sqrt(1 - phi**2)
    shocks[0] = shocks[0] / np.sqrt(1 - phi**2)  # start from the stationary distribution
    return lfilter([1.0], [1.0, -phi], shocks)


def _forecast_temperature(temp: xr.DataArray, error_k: float, seed: int) -> xr.DataArray:
    """A day-ahead temperature forecast: the actual plus AR(1) noise (std ``error_k``, 12 h correlation)."""
    return temp + _ar1(temp.size, error_k, temp, 12.0, seed)


class _Family:
    """Rolling forecasts of one family (loads, generators or storage), deduplicated per window."""

    def __init__(self, var: str, data: xr.DataArray, test: pd.DatetimeIndex, learned: Any) -> None:
        self.var, self.dim = var, FAMILIES[var]
        self.data = data.rename({self.dim: "load"}).transpose("time", "load")
        self.learned = learned  # a model with fit/predict, or None for the naive-only families
        self.predict_kw: dict[str, Any] = {}  # fixed keyword arguments of the learned model's predict
        self.naive = {"naive_1D": SeasonalNaive("1D", QUANTILES), "naive_7D": SeasonalNaive("7D", QUANTILES)}
        n = len(test)
        self.out = {m: np.full((len(QUANTILES), n, data.sizes[self.dim]), np.nan, np.float32) for m in MODELS}
        self.actual = self.data.sel(time=test).values  # for the online recalibration (past test days only)
        self.raw = np.full_like(self.out["model"], np.nan)  # the learned model's forecasts before recalibration
        self.recalibrate_days = 0

    def step(self, issue: pd.Timestamp, rows: slice, train_days: int, refit: bool, **kwargs: Any) -> None:
        window = self.data.sel(time=slice(issue - train_days * DAY, issue - pd.Timedelta(1, "ns")))
        reps, inverse, scale = unique_columns(window.values)
        hist = window.isel(load=reps)
        models: dict[str, Any] = dict(self.naive)
        if self.learned is not None:
            if refit or not getattr(self.learned, "models_", True):
                fit_kw = dict(kwargs.get("fit", {}))
                if isinstance(self.learned, PVForecast):
                    seen = hist.rename(load="sgen")
                else:  # each distinct series weighs as many loads as it stands for
                    seen, fit_kw["weights"] = hist, np.bincount(inverse, minlength=len(reps)).astype(np.float64)
                with threadpool_limits(limits=1, user_api="openmp"):
                    self.learned.fit(seen, **fit_kw)
            models["model"] = self.learned
        for name, mdl in models.items():
            seen = hist.rename(load="sgen") if isinstance(mdl, PVForecast) else hist
            kw = {**self.predict_kw, **kwargs.get("predict", {})} if name == "model" else {}
            pred = mdl.predict(seen, issue, "24h", **kw)
            self.out[name][:, rows, :] = pred.values[:, :, inverse] * scale
        if self.learned is None:
            self.out["model"][:, rows, :] = self.out["naive_1D"][:, rows, :]
        elif self.recalibrate_days:
            self._recalibrate(rows)

    def _recalibrate(self, rows: slice) -> None:
        """Shift the outer quantiles by the quantile of the model's own errors over the last recalibrate_days.

        Adaptive conformal calibration: for level ``q`` the offset is the ``q``-quantile of ``actual − forecast_q``
        (in units of each series' mean) over test days already past, so a share ``q`` of recent actuals lay below
        the shifted quantile. Only errors of forecasts issued before ``rows`` are used.
        """
        per_day = rows.stop - rows.start
        lo = max(0, rows.start - self.recalibrate_days * per_day)
        if rows.start - lo < per_day:  # no past test day yet
            self.raw[:, rows] = self.out["model"][:, rows]
            return
        act = self.actual[lo : rows.start]
        scale = np.abs(act).mean(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        fc = self.out["model"]
        self.raw[:, rows] = fc[:, rows]
        for i, q in enumerate(QUANTILES):
            if q == 0.5:
                continue
            err = (act - self.raw[i, lo : rows.start]) / scale
            fc[i, rows] = self.raw[i, rows] + np.float32(np.nanquantile(err, q)) * scale.astype(np.float32)
        fc[:, rows] = np.sort(fc[:, rows], axis=0)


def _pv_family(data: xr.DataArray, test: pd.DatetimeIndex) -> tuple[_Family, _Family | None]:
    """Split generators into PV (clear-sky-index model) and the rest (day-naive)."""
    pv = is_pv(data.values, pd.DatetimeIndex(data["time"].values))
    pv_fam = _Family("sgen_p_mw", data.isel(sgen=np.flatnonzero(pv)), test, PVForecast(QUANTILES)) if pv.any() else None
    other = data.isel(sgen=np.flatnonzero(~pv))
    other_fam = _Family("sgen_p_mw", other, test, None) if other.sizes["sgen"] else None
    return pv_fam, other_fam


def run_forecasts(
    profiles: xr.Dataset,
    *,
    code: str = "",
    start: Any = None,
    days: int | None = None,
    train_days: int = 28,
    refit_days: int = 7,
    temperature_error_k: float = 1.5,
    irradiance: xr.DataArray | float | None = None,
    recalibrate_days: int = 14,
    seed: int = 0,
    progress: bool = False,
) -> Backtest:
    """Rolling-origin day-ahead forecasts of every family over the test days (see the module docstring).

    Parameters
    ----------
    profiles : xarray.Dataset
        ``load_p_mw``, ``load_q_mvar`` and optionally ``sgen_p_mw``, ``storage_p_mw`` and ``temperature_degc``
        on a regular ``time`` axis (e.g. from :func:`twin.read_simbench_profiles`, optionally electrified).
    start : date-like, optional
        First issue day; default the first midnight with ``train_days`` of history plus the models' warm-up.
    days : int, optional
        Number of test days; default every whole day until the end of ``profiles``.
    train_days : int
        Days of history each forecast (and each fit) sees.
    refit_days : int
        The learned load model is refitted every ``refit_days`` days.
    temperature_error_k : float
        Standard deviation (K) of the day-ahead temperature forecast error (profiles with ``temperature_degc``).
    irradiance : DataArray ``(time,)`` or float, optional
        Day-ahead irradiance forecasts (W/m², archived forecasts covering history and test days) for the PV model;
        a float ``e`` builds :func:`synthetic_irradiance_forecast` with error ``e``; None: clear-sky only.
    recalibrate_days : int
        Shift the learned models' P10/P90 by the quantiles of their own errors over this many past test days
        (adaptive conformal calibration; 0 turns it off and keeps the fit-time calibration only).
    """
    t0 = time.perf_counter()
    times = pd.DatetimeIndex(profiles["time"].values)
    step = times[1] - times[0]
    start = (times[0] + (train_days + 1) * DAY).normalize() if start is None else pd.Timestamp(start)
    if start - train_days * DAY < times[0]:
        raise ForecastError(f"start {start} leaves fewer than train_days={train_days} days of history before it.")
    last = (times[-1] + step).normalize()
    days = int((last - start) / DAY) if days is None else int(days)
    if days < 1 or start + days * DAY > times[-1] + step:
        raise ForecastError(f"profiles end at {times[-1]}; {days} test days from {start} do not fit.")
    issue_days = pd.date_range(start, periods=days, freq="D")
    test = pd.date_range(start, start + days * DAY - step, freq=step)
    temp = profiles.get("temperature_degc")
    fc_temp = None if temp is None else _forecast_temperature(temp, temperature_error_k, seed)
    fams: dict[str, list[_Family]] = {
        "load_p_mw": [_Family("load_p_mw", profiles["load_p_mw"], test, QuantileGBT(QUANTILES, max_iter=100))]
    }
    if "sgen_p_mw" in profiles:
        fams["sgen_p_mw"] = [f for f in _pv_family(profiles["sgen_p_mw"], test) if f is not None]
        pv = next((f for f in fams["sgen_p_mw"] if f.learned is not None), None)
        if pv is not None and irradiance is not None:
            if not isinstance(irradiance, xr.DataArray):
                irradiance = synthetic_irradiance_forecast(pv.data, float(irradiance), seed=seed)
            pv.predict_kw["irradiance"] = irradiance
    if "storage_p_mw" in profiles:
        fams["storage_p_mw"] = [_Family("storage_p_mw", profiles["storage_p_mw"], test, None)]
    for parts in fams.values():
        for fam in parts:
            fam.recalibrate_days = recalibrate_days
    seconds = {"prepare": time.perf_counter() - t0, "forecast": 0.0}
    t1 = time.perf_counter()
    per_day = int(DAY / step)
    for d, issue in enumerate(_progress(issue_days, progress, "day-ahead forecasts")):
        rows = slice(d * per_day, (d + 1) * per_day)
        kw: dict[str, Any] = {}
        if temp is not None:  # history: actual temperature; target day: the forecast
            seen = xr.where(temp["time"] < np.datetime64(issue), temp, fc_temp)
            kw = {"fit": {"temperature": temp}, "predict": {"temperature": seen}}
        for var, parts in fams.items():
            for fam in parts:
                fam.step(issue, rows, train_days, d % refit_days == 0, **(kw if var == "load_p_mw" else {}))
    seconds["forecast"] = time.perf_counter() - t1
    forecasts = _assemble(fams, profiles, test)
    actual = profiles.sel(time=test)
    q_ratio = _q_ratio(profiles, issue_days[0], train_days)
    table = _score_table(forecasts, actual)
    return Backtest(code, issue_days, actual, forecasts, q_ratio, table, seconds)


def _progress(items: Any, on: bool, what: str) -> Any:
    if not on:
        return items
    from rich.progress import track

    return track(items, description=what)


def _assemble(
    fams: dict[str, list[_Family]], profiles: xr.Dataset, test: pd.DatetimeIndex
) -> dict[str, dict[str, xr.DataArray]]:
    """Family outputs → DataArrays ``(quantile, time, element)`` in the profiles' element order."""
    out: dict[str, dict[str, xr.DataArray]] = {}
    for var, parts in fams.items():
        dim = FAMILIES[var]
        out[var] = {}
        for m in MODELS:
            pieces = [
                xr.DataArray(
                    f.out[m],
                    dims=("quantile", "time", dim),
                    coords={"quantile": list(QUANTILES), "time": test, dim: f.data["load"].values},
                )
                for f in parts
            ]
            out[var][m] = xr.concat(pieces, dim=dim).reindex({dim: profiles[var][dim].values})
    return out


def _q_ratio(profiles: xr.Dataset, issue: pd.Timestamp, train_days: int) -> xr.DataArray:
    """Per load Q/P ratio (least squares over the first training window): Q forecast = ratio × P forecast."""
    win = profiles.sel(time=slice(issue - train_days * DAY, issue - pd.Timedelta(1, "ns")))
    p, q = win["load_p_mw"].values, win["load_q_mvar"].values
    den = (p * p).sum(axis=0)
    return xr.DataArray(
        np.divide((p * q).sum(axis=0), den, out=np.zeros(den.shape), where=den > 0),
        dims="load",
        coords={"load": profiles["load"].values},
    )


def _score_table(forecasts: dict[str, dict[str, xr.DataArray]], actual: xr.Dataset) -> pd.DataFrame:
    """One row per (family, model): nMAE, pinball per quantile and mean, P10-P90 coverage, skill vs week-naive."""
    rows = []
    for var, models in forecasts.items():
        dim = FAMILIES[var]
        act = actual[var].rename({dim: "load"})
        keep = np.abs(act.values).mean(axis=0) > 0  # all-zero series have no nMAE
        for m, fc in models.items():
            s = scores(fc.rename({dim: "load"}).isel(load=keep).astype(np.float64), act.isel(load=keep))
            rows.append(
                {
                    "family": dim,
                    "model": m,
                    "n_series": int(keep.sum()),
                    "nmae": s["nmae"],
                    **{f"pinball_p{round(q * 100):02d}": v for q, v in s["pinball"].items()},
                    "pinball_mean": float(np.mean(list(s["pinball"].values()))),
                    "coverage_p10_p90": s["coverage_p10_p90"],
                }
            )
    table = pd.DataFrame(rows).set_index(["family", "model"])
    week = table.xs("naive_7D", level="model")
    for col in ("nmae", "pinball_mean"):
        table[f"{col}_vs_week_naive"] = 1.0 - table[col] / week[col].reindex(table.index, level="family")
    return table
