"""Store-on-change (deadband) filtering of set-point and measurement series, and its inverse.

:func:`deadband` keeps a reading only when it differs from the last kept one by more than the band; the readings in
between are flagged ``HELD`` and either dropped to NaN ("sparse", what a store-on-change logger stores) or replaced
by the held value ("hold", what a SCADA display shows). :func:`expand_deadband` turns sparse series back into held
ones, so ``expand_deadband(deadband(x, w))`` is within ``w`` of ``x`` wherever ``x`` has a reading.

The recurrence (the band is centred on the last *kept* value) is a numba kernel over plain arrays.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from numba import njit
from numpy.typing import NDArray

from twin.timeseries import flags
from twin.timeseries.clean_block import last_valid_row, read_block, write_block

DEADBAND_MODES = ("sparse", "hold")


@njit(cache=True)
def _deadband_kernel(
    values: NDArray[np.float64], width: float, relative: bool, hold: bool
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:  # pragma: no cover - compiled; NUMBA_DISABLE_JIT covers it
    """Deadband of each column of a ``(time, series)`` array; returns the output values and the held mask."""
    n_time, n_series = values.shape
    out = np.empty_like(values)
    held = np.zeros(values.shape, dtype=np.bool_)
    last = np.zeros(n_series)
    have = np.zeros(n_series, dtype=np.bool_)
    for t in range(n_time):
        for j in range(n_series):
            x = values[t, j]
            if np.isnan(x):
                out[t, j] = x
                continue
            band = width * abs(last[j]) if relative else width
            if have[j] and abs(x - last[j]) <= band:
                held[t, j] = True
                out[t, j] = last[j] if hold else np.nan
            else:
                out[t, j] = x
                last[j] = x
                have[j] = True
    return out, held


def deadband(da: xr.DataArray, width: float, *, relative: bool = False, mode: str = "sparse") -> xr.DataArray:
    """Store-on-change filter: keep a value only when it leaves the band around the last kept value.

    Parameters
    ----------
    da : DataArray
        Values with a ``time`` dim, in any unit; NaN (missing) slots are passed through and do not move the band.
    width : float
        Half-width of the band, in the unit of ``da`` (or as a fraction of the last kept value when ``relative``).
        A value is kept when ``|x - last_kept| > width``.
    relative : bool
        Read ``width`` as a fraction of ``|last_kept|`` (e.g. 0.01 for 1 %).
    mode : {"sparse", "hold"}
        Held values become NaN ("sparse") or the last kept value ("hold"); both are flagged ``HELD``.

    Returns
    -------
    DataArray
        The filtered values; the first reading of each series is always kept. The filter is idempotent.
    """
    if mode not in DEADBAND_MODES:
        raise ValueError(f"deadband: mode={mode!r}; use one of {DEADBAND_MODES}")
    if not (np.isfinite(width) and width >= 0):
        raise ValueError(f"deadband: width={width!r} must be a finite number >= 0 (unit of the data)")
    block = read_block(da, "deadband")
    values, held = _deadband_kernel(np.ascontiguousarray(block.values), float(width), bool(relative), mode == "hold")
    quality = block.quality | np.where(held, flags.HELD, 0).astype(np.uint8)
    return write_block(block, values, quality)


def expand_deadband(da: xr.DataArray) -> xr.DataArray:
    """Reconstruct held values of a sparse deadband series: each NaN flagged ``HELD`` takes the last value before it.

    NaN slots without ``HELD`` (missing readings) stay NaN; held slots before any kept value stay NaN.
    """
    block = read_block(da, "expand_deadband")
    values, quality = block.values, block.quality
    rows, cols = np.nonzero(np.isnan(values) & ((quality & flags.HELD) != 0))
    out = values.copy()
    if rows.size:
        src = last_valid_row(values)[rows, cols]
        out[rows, cols] = np.where(src >= 0, values[np.maximum(src, 0), cols], np.nan)
    return write_block(block, out, quality)
