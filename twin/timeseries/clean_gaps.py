"""Gaps in meter series: :func:`find_gaps` lists them, :func:`fill_gaps` estimates the short ones.

A gap is a run of consecutive slots without a value (NaN) in one series. NaN slots flagged ``HELD`` are held values
of a sparse deadband series (see :mod:`twin.timeseries.clean_deadband`), not gaps: they are neither listed nor filled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from twin.timeseries import flags
from twin.timeseries.clean_block import (
    TIME,
    Block,
    last_valid_row,
    next_valid_row,
    read_block,
    time_step_ns,
    write_block,
)

FILL_METHODS = ("linear", "ffill", "zero", "profile")
DAY_NS = 86_400 * 10**9


def _missing(block: Block) -> NDArray[np.bool_]:
    return np.isnan(block.values) & ((block.quality & flags.HELD) == 0)


def _run_length(missing: NDArray[np.bool_]) -> NDArray[np.int32]:
    """Per missing cell, the length (slots) of the run of missing cells it belongs to."""
    marker = np.where(missing, np.nan, 0.0)
    return next_valid_row(marker) - last_valid_row(marker) - 1


def find_gaps(da: xr.DataArray, *, freq: str | pd.Timedelta | None = None) -> pd.DataFrame:
    """List the gaps of every series, including stamps absent from the time axis.

    Parameters
    ----------
    da : DataArray
        Values with a ``time`` coordinate (UTC).
    freq : str or Timedelta, optional
        The slot length (e.g. ``"15min"``); inferred from the time axis (gcd of its steps) when omitted. Stamps
        missing from the axis between its first and last stamp count as missing slots of every series.

    Returns
    -------
    DataFrame
        One row per gap, sorted by series then start, columns: one per non-time dim (e.g. ``meter``) with its
        coordinate value, ``start`` and ``end`` (stamps of the first and last missing slot, inclusive) and
        ``n_missing`` (slots).
    """
    block = read_block(da, "find_gaps")
    time_ns = block.require_time()
    id_dims = [d for d in block.source.dims if d != TIME]
    columns = [*id_dims, "start", "end", "n_missing"]
    if time_ns.size == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    step = time_step_ns(block, freq) if (freq is not None or time_ns.size > 1) else 1
    slot = (time_ns - time_ns[0]) // step
    missing = np.ones((int(slot[-1]) + 1, block.values.shape[1]), dtype=np.bool_)
    missing[slot] = _missing(block)
    padded = np.zeros((missing.shape[1], missing.shape[0] + 2), dtype=np.int8)
    padded[:, 1:-1] = missing.T
    edges = np.diff(padded, axis=1)
    series, first = np.nonzero(edges == 1)
    _, stop = np.nonzero(edges == -1)
    frame = {}
    if id_dims:
        ids = np.indices([block.source.sizes[d] for d in id_dims]).reshape(len(id_dims), -1)
        for dim, pos in zip(id_dims, ids, strict=True):
            coord = block.source.coords.get(dim)
            labels = coord.values if coord is not None else np.arange(block.source.sizes[dim])
            frame[dim] = labels[pos[series]]
    frame["start"] = pd.to_datetime(time_ns[0] + first * step)
    frame["end"] = pd.to_datetime(time_ns[0] + (stop - 1) * step)
    frame["n_missing"] = (stop - first).astype(np.int64)
    return pd.DataFrame(frame, columns=columns)


def fill_gaps(da: xr.DataArray, *, method: str = "linear", limit: int | None = None) -> xr.DataArray:
    """Fill gaps of at most ``limit`` slots, flagging the filled values ``FILLED``.

    Parameters
    ----------
    da : DataArray
        Values with a ``time`` dim (a ``time`` coordinate is needed for "linear" and "profile").
    method : {"linear", "ffill", "zero", "profile"}
        "linear": straight line (in time) between the values either side, so only gaps with a value on both
        sides; "ffill": the last value before the gap; "zero": 0 (e.g. interval energy of a meter known to be
        off); "profile": the series' mean at the same time of day (UTC) over the whole array.
    limit : int, optional
        Longest gap (slots) to fill; longer gaps are left entirely as they are, never partly filled.

    Returns
    -------
    DataArray
        The values with the fillable gaps filled. Stamps absent from the time axis are not added (reindex first;
        :func:`find_gaps` lists them).
    """
    if method not in FILL_METHODS:
        raise ValueError(f"fill_gaps: method={method!r}; use one of {FILL_METHODS}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1):
        raise ValueError(f"fill_gaps: limit={limit!r} must be a positive whole number of slots or None")
    block = read_block(da, "fill_gaps")
    values = block.values
    prev, nxt = last_valid_row(values), next_valid_row(values)
    todo = _missing(block)
    if limit is not None:
        held = np.isnan(values) & ~todo
        todo &= (_run_length(todo) if held.any() else nxt - prev - 1) <= limit
    if method in ("linear", "ffill"):
        todo &= prev >= 0
    if method == "linear":
        todo &= nxt < values.shape[0]
    rows, cols = np.nonzero(todo)
    fill = _fill_values(block, method, rows, cols, prev[rows, cols], nxt[rows, cols])
    done = ~np.isnan(fill)
    out = values.copy()
    out[rows[done], cols[done]] = fill[done]
    quality = block.quality.copy()
    quality[rows[done], cols[done]] |= flags.FILLED
    return write_block(block, out, quality)


def _fill_values(
    block: Block,
    method: str,
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    prev: NDArray[np.int32],
    nxt: NDArray[np.int32],
) -> NDArray[np.float64]:
    """Fill values for the cells ``(rows, cols)``; ``prev``/``nxt`` are the rows holding a value either side."""
    values = block.values
    if method == "zero" or rows.size == 0:
        return np.zeros(rows.size)
    if method == "ffill":
        return values[prev, cols]
    if method == "linear":
        time_ns = block.require_time()
        t = (time_ns - time_ns[0]).astype(np.float64)
        left, right = values[prev, cols], values[nxt, cols]
        return left + (right - left) * (t[rows] - t[prev]) / (t[nxt] - t[prev])
    time_ns = block.require_time()
    keys, key_of_row = np.unique(time_ns % DAY_NS, return_inverse=True)
    order = np.argsort(key_of_row, kind="stable")
    starts = np.searchsorted(key_of_row[order], np.arange(keys.size))
    sorted_values = values[order]
    present = ~np.isnan(sorted_values)
    total = np.add.reduceat(np.where(present, sorted_values, 0.0), starts, axis=0)
    count = np.add.reduceat(present.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = total / count
    return profile[key_of_row[rows], cols]
