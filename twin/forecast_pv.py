"""Day-ahead PV (static generator) forecasts from clear-sky irradiance and each generator's recent clear-sky index.

Series are DataArrays on ``(time, sgen)`` with a regular time axis (e.g. SimBench's 15-minute ``sgen_p_mw``, MW).
Forecasts are DataArrays on ``(quantile, time, sgen)`` in the unit of the history.

:class:`PVForecast` divides each generator's output over the last ``days`` days by a reference irradiance (pvlib's
clear-sky GHI at the site, or the user's own irradiance series) to get a clear-sky index (MW per W/m²), takes the
empirical quantiles of that index per time of day (pooling the neighbouring ``slot_window`` time steps on each
side) and multiplies them by the reference irradiance at the target times. Like every model in
:mod:`twin.forecast`, a forecast issued at ``start`` only sees history strictly before ``start``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pvlib
import xarray as xr

from twin.forecast import ForecastError, _check_series, _cut, _Forecaster, _target_times, unique_columns

ROSS_K_M2_PER_W = 0.03
"""Ross coefficient (K per W/m²): module temperature ≈ air temperature + k · irradiance."""


def compute_clearsky_ghi(
    time: pd.DatetimeIndex, latitude: float = 51.0, longitude: float = 10.0, tz: str = "UTC"
) -> xr.DataArray:
    """Return pvlib's Ineichen clear-sky global horizontal irradiance (W/m²) at a site.

    Parameters
    ----------
    time : DatetimeIndex
        Time stamps, tz-naive, read as wall-clock times in ``tz`` (use a fixed-offset zone such as
        ``"Etc/GMT-1"`` for CET without daylight saving).
    latitude, longitude : float
        Site position (degrees north, degrees east); central Germany by default.
    tz : str
        Time zone of ``time``.

    Returns
    -------
    xarray.DataArray
        ``(time,)`` clear-sky GHI in W/m² on the given (tz-naive) time stamps.
    """
    idx = pd.DatetimeIndex(time)
    site = pvlib.location.Location(latitude, longitude, tz=tz)
    ghi = site.get_clearsky(idx.tz_localize(tz), model="ineichen")["ghi"].to_numpy()
    return xr.DataArray(ghi, dims="time", coords={"time": idx}, attrs={"units": "W/m2"})


class PVForecast(_Forecaster):
    """Clear-sky-index forecast of PV output with empirical quantiles, per generator.

    Parameters
    ----------
    quantiles : sequence of float
        Quantiles to forecast, each in (0, 1).
    latitude, longitude : float
        Site position (degrees), used for the clear-sky irradiance.
    tz : str
        Time zone of the (tz-naive) time stamps, see :func:`compute_clearsky_ghi`.
    days : int
        Days of history before the issue time whose clear-sky index is used.
    slot_window : int
        Time steps pooled on each side of a target's time of day (2 at 15 min: ±30 min).
    min_ghi_w_per_m2 : float
        Reference irradiance (W/m²) below which a past time step is not used for the index (dawn, dusk, night).
    temp_coeff_per_k : float
        Power temperature coefficient (1/K), used only when ``temperature`` is passed.
    """

    kind = "pv_clearsky_index"

    def __init__(
        self,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        latitude: float = 51.0,
        longitude: float = 10.0,
        tz: str = "UTC",
        days: int = 7,
        slot_window: int = 2,
        min_ghi_w_per_m2: float = 20.0,
        temp_coeff_per_k: float = -0.004,
    ) -> None:
        self.quantiles = tuple(float(q) for q in quantiles)
        if not all(0 < q < 1 for q in self.quantiles):
            raise ForecastError(f"quantiles must lie in (0, 1), got {self.quantiles}.")
        if days < 1 or slot_window < 0:
            raise ForecastError(f"days must be >= 1 and slot_window >= 0, got {days} and {slot_window}.")
        self.latitude, self.longitude, self.tz = float(latitude), float(longitude), tz
        self.days, self.slot_window = int(days), int(slot_window)
        self.min_ghi_w_per_m2 = float(min_ghi_w_per_m2)
        self.temp_coeff_per_k = float(temp_coeff_per_k)

    def fit(self, history: xr.DataArray) -> PVForecast:
        """Check ``history``; the index is taken from the most recent days at each ``predict``."""
        _check_series(history, dim="sgen")
        return self

    def predict(
        self,
        history: xr.DataArray,
        start: Any,
        horizon: str | pd.Timedelta = "48h",
        irradiance: xr.DataArray | None = None,
        temperature: xr.DataArray | None = None,
    ) -> xr.DataArray:
        """Forecast ``horizon`` from the issue time ``start`` using history before ``start`` only.

        Parameters
        ----------
        history : DataArray ``(time, sgen)``
            Past generator output (any unit, e.g. MW).
        start : date-like
            Issue time; the first target time.
        horizon : str or Timedelta
            Forecast length.
        irradiance : DataArray ``(time,)``, optional
            Measured/forecast GHI (W/m²) covering the last ``days`` days and the targets; replaces clear-sky GHI.
        temperature : DataArray ``(time,)``, optional
            Air temperature (°C) on the same times; derates the reference by ``temp_coeff_per_k``.

        Returns
        -------
        xarray.DataArray
            ``(quantile, time, sgen)`` in the history's unit.
        """
        times = _target_times(history, start, horizon, dim="sgen")
        step = times[1] - times[0] if len(times) > 1 else _check_series(history, dim="sgen")
        past = _cut(history, times[0], dim="sgen")
        past = past.sel(time=past["time"] >= np.datetime64(times[0] - pd.Timedelta(days=self.days)))
        past_times = pd.DatetimeIndex(past["time"].values)
        # generators whose recent output is a positive multiple of another's share its index, scaled (exact)
        reps, inverse, scale = unique_columns(past.values)
        values = past.values[:, reps]
        ref_past = self._reference(past_times, irradiance, temperature)
        lit = np.broadcast_to(ref_past[:, None] >= self.min_ghi_w_per_m2, values.shape)
        ratio = np.divide(values, ref_past[:, None], out=np.full(values.shape, np.nan), where=lit)
        n_slots = int(pd.Timedelta("1D") / step)
        index = self._index_quantiles(ratio, _slot(past_times, step), n_slots, past["sgen"].values[reps])
        pred = index[:, _slot(times, step), :] * self._reference(times, irradiance, temperature)[None, :, None]
        pred = pred[:, :, inverse] * scale
        return self._wrap(np.sort(pred, axis=0), times, history, dim="sgen")

    def _reference(
        self, times: pd.DatetimeIndex, irradiance: xr.DataArray | None, temperature: xr.DataArray | None
    ) -> np.ndarray:
        """Reference irradiance (W/m²) on ``times``: the user's GHI or clear-sky GHI, temperature-derated."""
        if irradiance is None:
            ref = compute_clearsky_ghi(times, self.latitude, self.longitude, self.tz).values
        else:
            ref = _covering(irradiance, times, "irradiance")
        if temperature is not None:
            t_module = _covering(temperature, times, "temperature") + ROSS_K_M2_PER_W * ref
            ref = ref * (1.0 + self.temp_coeff_per_k * (t_module - 25.0))
        return ref

    def _index_quantiles(self, ratio: np.ndarray, slot: np.ndarray, n_slots: int, ids: np.ndarray) -> np.ndarray:
        """``(quantile, slot, sgen)`` quantiles of the clear-sky index, pooled over ±``slot_window`` slots."""
        shifts = np.arange(-self.slot_window, self.slot_window + 1)
        # Sample k of slot s: every past row whose slot is within the window of s.
        near = (slot[:, None] - np.arange(n_slots)[None, :] + shifts[:, None, None]) % n_slots == 0
        hit = near.any(axis=0)  # (row, slot)
        pooled = np.where(hit[:, :, None], ratio[:, None, :], np.nan)  # (row, slot, sgen)
        overall = np.full((len(self.quantiles), ratio.shape[1]), np.nan)
        known = np.isfinite(ratio).any(axis=0)
        if not known.all():
            bad = str(ids[np.flatnonzero(~known)[0]])
            raise ForecastError(
                f"sgen {bad!r} has no value in daylight (reference >= {self.min_ghi_w_per_m2} W/m²) in the last "
                f"{self.days} days before the issue time; pass more history or raise days."
            )
        overall[:] = np.nanquantile(ratio, self.quantiles, axis=0)
        with warnings.catch_warnings():  # night slots have no sample: filled with the overall quantiles below
            warnings.simplefilter("ignore", RuntimeWarning)
            by_slot = np.nanquantile(pooled, self.quantiles, axis=0)
        return np.where(np.isnan(by_slot), overall[:, None, :], by_slot)


def is_pv(p: np.ndarray, times: pd.DatetimeIndex) -> np.ndarray:
    """Generators that produce (next to) nothing while clear-sky irradiance is 0: under 3 % of their energy at night.

    The margin absorbs dawn and dusk, where a profile's time stamps and the clear-sky model's may differ by an hour
    (SimBench's PV profiles start before pvlib's sunrise at 51° N, 10° E in UTC).
    """
    night = compute_clearsky_ghi(times).values <= 0
    total = np.abs(p).sum(axis=0)
    return (np.abs(p[night]).sum(axis=0) <= 0.03 * total) & (total > 0)


def _slot(times: pd.DatetimeIndex, step: pd.Timedelta) -> np.ndarray:
    """Time-of-day slot of each time stamp (0 at midnight)."""
    return np.asarray((times - times.normalize()) // step, dtype=np.int64)


def _covering(series: xr.DataArray, times: pd.DatetimeIndex, name: str) -> np.ndarray:
    """Values of a ``(time,)`` series on ``times``; error naming the first time stamp it does not cover."""
    if series.dims != ("time",):
        raise ForecastError(f"{name} must have the single dim (time,), got {series.dims}.")
    values = series.reindex(time=times).values.astype(np.float64)
    if np.isnan(values).any():
        raise ForecastError(
            f"{name} has no value at {times[np.isnan(values)][0]}; pass a series covering the last days of "
            "history and every target time."
        )
    return values
