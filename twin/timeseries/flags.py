"""Quality flags of the time-series store: one ``uint8`` bit field per value, OR-ed by every step that touches it.

A value's flags travel with it as the non-index coordinate ``quality`` of a DataArray (same dims as the data), so
cleaning filters stay pure ``DataArray -> DataArray`` functions and xarray carries the flags through selections.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

OK = np.uint8(0)
MISSING = np.uint8(1)  # no reading for this slot (the value is NaN)
FILLED = np.uint8(2)  # value estimated by gap filling
CLIPPED = np.uint8(4)  # value was outside [lo, hi] and set to the bound (or NaN)
RESET = np.uint8(8)  # cumulative register went backwards (counter reset / rollover / meter exchange)
SUSPECT = np.uint8(16)  # plausibility check failed (spike, stuck value, negative interval energy, ...)
RESAMPLED = np.uint8(32)  # value aggregated from several readings or from an incomplete interval
HELD = np.uint8(64)  # deadband: value repeated from the last stored change (store-on-change)
CONFLICT = np.uint8(128)  # two different readings arrived for this slot; the first one kept

NAMES: dict[str, np.uint8] = {
    "missing": MISSING,
    "filled": FILLED,
    "clipped": CLIPPED,
    "reset": RESET,
    "suspect": SUSPECT,
    "resampled": RESAMPLED,
    "held": HELD,
    "conflict": CONFLICT,
}


def quality_of(da: xr.DataArray) -> xr.DataArray:
    """The ``quality`` coordinate of ``da``, or MISSING where NaN and OK elsewhere when ``da`` has none."""
    if "quality" in da.coords:
        return da.coords["quality"].reset_coords(drop=True)
    return xr.where(da.isnull(), MISSING, OK).astype(np.uint8)


def with_quality(da: xr.DataArray, quality: xr.DataArray | np.ndarray) -> xr.DataArray:
    """``da`` with its ``quality`` coordinate replaced (same dims as ``da``)."""
    values = quality.data if isinstance(quality, xr.DataArray) else quality
    return da.assign_coords(quality=(da.dims, np.asarray(values, dtype=np.uint8)))


def describe(bits: int) -> list[str]:
    """Names of the flags set in ``bits`` (e.g. ``[ 'missing', 'filled' ]``)."""
    return [name for name, bit in NAMES.items() if int(bits) & int(bit)]
