"""Meter blocks for the cleaning filters: a DataArray as a time-major ``(time, series)`` float64 array and its flags.

Every filter in :mod:`twin.timeseries.clean` reads its input with :func:`read_block`, computes new numpy arrays and
writes them back with :func:`write_block` (same time axis) or :func:`write_retimed` (new time axis). All dims other
than ``time`` are flattened into one ``series`` axis, so a filter works alike on ``(time,)``, ``(time, meter)``,
``(meter, time)`` or ``(time, sensor, phase)`` data, and the output has the input's dims in the input's order.

The block's arrays are read-only views of the input: filters build new arrays and never write into the caller's data.
This module also holds the time-axis helpers the filters share: the last/next row holding a value (a forward-fill
recurrence, so a numba kernel over plain arrays) and the time step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from numba import njit
from numpy.typing import NDArray

from twin.timeseries import flags

TIME = "time"


@dataclass(frozen=True)
class Block:
    """One DataArray seen as a time-major 2-D block.

    Attributes
    ----------
    op : str
        Name of the filter using the block (for error messages).
    values : ndarray of float64, shape (n_time, n_series)
        The data, read-only (a view of the input where possible).
    quality : ndarray of uint8, shape (n_time, n_series)
        The flags (:mod:`twin.timeseries.flags`), read-only.
    time_ns : ndarray of int64, shape (n_time,), or None
        The time coordinate in ns since the epoch (UTC), None when the ``time`` dim has no coordinate.
    source : DataArray
        The input transposed to ``time`` first.
    dims : tuple of str
        The input's dims in the input's order.
    """

    op: str
    values: NDArray[np.float64]
    quality: NDArray[np.uint8]
    time_ns: NDArray[np.int64] | None
    source: xr.DataArray
    dims: tuple[str, ...]

    def require_time(self) -> NDArray[np.int64]:
        """The time coordinate in ns; ValueError when the input has none."""
        if self.time_ns is None:
            raise ValueError(
                f"{self.op}: the 'time' dim has no coordinate; assign one with "
                "da.assign_coords(time=pd.date_range(...)) (UTC, tz-naive)"
            )
        return self.time_ns


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def _time_ns(da: xr.DataArray, op: str) -> NDArray[np.int64] | None:
    if TIME not in da.coords:
        return None
    time = da.coords[TIME].values
    if not np.issubdtype(time.dtype, np.datetime64):
        raise ValueError(
            f"{op}: the 'time' coordinate has dtype {time.dtype}; it must be datetime64 (UTC, tz-naive), "
            "e.g. da.assign_coords(time=pd.to_datetime(da.time))"
        )
    ns = time.astype("datetime64[ns]").astype(np.int64)
    bad = np.flatnonzero(np.diff(ns) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"{op}: the time coordinate must be strictly increasing; position {i} ({pd.Timestamp(ns[i])}) "
            f"follows {pd.Timestamp(ns[i - 1])}; sort with da.sortby('time') and drop duplicates first"
        )
    return ns


def read_block(da: xr.DataArray, op: str) -> Block:
    """``da`` as a :class:`Block`; ValueError naming ``op`` when it has no ``time`` dim or non-numeric data."""
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"{op}: expected an xarray.DataArray, got {type(da).__name__}")
    if TIME not in da.dims:
        raise ValueError(
            f"{op}: the DataArray has dims {da.dims} and no 'time' dim; rename its time dim, e.g. da.rename(t='time')"
        )
    if not (np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.bool_)):
        raise ValueError(f"{op}: the data must be numeric (got dtype {da.dtype}); convert with da.astype(float)")
    source = da.transpose(TIME, ...)
    shape = (source.sizes[TIME], int(np.prod(source.shape[1:], dtype=np.int64)))
    values = np.asarray(source.values, dtype=np.float64).reshape(shape)
    quality = np.asarray(flags.quality_of(source).broadcast_like(source).transpose(*source.dims).values, np.uint8)
    return Block(
        op=op,
        values=_read_only(values),
        quality=_read_only(quality.reshape(shape)),
        time_ns=_time_ns(source, op),
        source=source,
        dims=tuple(str(d) for d in da.dims),
    )


def write_block(block: Block, values: np.ndarray, quality: np.ndarray) -> xr.DataArray:
    """A new DataArray like the block's input (coords, attrs, name, dim order) holding ``values`` and ``quality``."""
    shape = block.source.shape
    out = block.source.copy(deep=False, data=np.asarray(values, dtype=np.float64).reshape(shape))
    out.attrs = dict(block.source.attrs)
    out = flags.with_quality(out, np.asarray(quality, dtype=np.uint8).reshape(shape))
    return out.transpose(*block.dims)


def write_retimed(block: Block, time_ns: np.ndarray, values: np.ndarray, quality: np.ndarray) -> xr.DataArray:
    """Like :func:`write_block` on a new time axis; coordinates along ``time`` (other than ``time``) are dropped."""
    src = block.source
    shape = (len(time_ns), *src.shape[1:])
    coords = {name: c for name, c in src.coords.items() if TIME not in c.dims}
    coords[TIME] = np.asarray(time_ns, dtype=np.int64).astype("datetime64[ns]")
    out = xr.DataArray(
        np.asarray(values, dtype=np.float64).reshape(shape),
        dims=src.dims,
        coords=coords,
        name=src.name,
        attrs=dict(src.attrs),
    )
    out = flags.with_quality(out, np.asarray(quality, dtype=np.uint8).reshape(shape))
    return out.transpose(*block.dims)


@njit(cache=True)
def _last_row_kernel(values: NDArray[np.float64]) -> NDArray[np.int32]:  # pragma: no cover - compiled
    """Per cell, the last row at or before it whose value is not NaN (-1 when none)."""
    n_time, n_series = values.shape
    row = np.empty(values.shape, dtype=np.int32)
    for j in range(n_series):
        row[0, j] = -1 if np.isnan(values[0, j]) else 0
    for t in range(1, n_time):
        for j in range(n_series):
            x = values[t, j]
            row[t, j] = row[t - 1, j] if np.isnan(x) else t
    return row


@njit(cache=True)
def _next_row_kernel(values: NDArray[np.float64]) -> NDArray[np.int32]:  # pragma: no cover - compiled
    """Per cell, the first row at or after it whose value is not NaN (n_time when none)."""
    n_time, n_series = values.shape
    row = np.empty(values.shape, dtype=np.int32)
    for j in range(n_series):
        x = values[n_time - 1, j]
        row[n_time - 1, j] = n_time if np.isnan(x) else n_time - 1
    for t in range(n_time - 2, -1, -1):
        for j in range(n_series):
            x = values[t, j]
            row[t, j] = row[t + 1, j] if np.isnan(x) else t
    return row


def last_valid_row(values: NDArray[np.float64]) -> NDArray[np.int32]:
    """Per cell of a ``(time, series)`` array, the last row at or before it holding a value (-1 when none)."""
    if values.shape[0] == 0:
        return np.empty(values.shape, dtype=np.int32)
    return _last_row_kernel(np.ascontiguousarray(values, dtype=np.float64))


def next_valid_row(values: NDArray[np.float64]) -> NDArray[np.int32]:
    """Per cell of a ``(time, series)`` array, the first row at or after it holding a value (n_time when none)."""
    if values.shape[0] == 0:
        return np.empty(values.shape, dtype=np.int32)
    return _next_row_kernel(np.ascontiguousarray(values, dtype=np.float64))


def time_step_ns(block: Block, freq: str | pd.Timedelta | None = None) -> int:
    """The block's time step in ns: ``freq`` when given, else the gcd of the time axis's differences.

    Raises ValueError when the axis has fewer than 2 stamps and no ``freq``, or when a stamp lies off the
    ``freq`` grid counted from the first stamp.
    """
    time_ns = block.require_time()
    if freq is not None:
        step = to_step_ns(freq, block.op)
    elif time_ns.size >= 2:
        step = int(np.gcd.reduce(np.diff(time_ns)))
    else:
        raise ValueError(f"{block.op}: cannot infer the time step from {time_ns.size} stamp(s); pass freq=")
    off = np.flatnonzero((time_ns - time_ns[0]) % step)
    if off.size:
        t = pd.Timestamp(time_ns[off[0]])
        raise ValueError(
            f"{block.op}: time stamp {t} (position {off[0]}) is off the {pd.Timedelta(step)} grid that starts at "
            f"{pd.Timestamp(time_ns[0])}; snap the stamps to the grid first"
        )
    return step


def to_step_ns(freq: str | pd.Timedelta, op: str) -> int:
    """A fixed frequency (``"15min"``, ``"1h"``, ``"1D"``) in ns; ValueError for calendar or non-positive ones."""
    try:
        step = pd.Timedelta(freq)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{op}: freq={freq!r} is not a fixed duration ({err}); use e.g. '15min', '1h' or '1D' "
            "(calendar frequencies such as 'MS' are not supported)"
        ) from None
    if step.value <= 0:
        raise ValueError(f"{op}: freq={freq!r} must be a positive duration")
    return int(step.value)
