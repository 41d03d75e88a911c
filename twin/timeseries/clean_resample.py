"""Resampling meter series to another fixed frequency with metering conventions.

Stamps are interval-ending by default (``closed="right", label="right"``): a 15-min energy value stamped 00:15 covers
(00:00, 00:15], and the hourly value stamped 01:00 is the sum of those stamped 00:15 … 01:00. With
``closed="left", label="left"`` stamps are interval-beginning instead. Bins are aligned to midnight UTC (the epoch),
so the input stamps must lie on multiples of the input step from midnight.

Downsampling: energy is summed, power averaged (each reading covers one input interval, so the time-weighted mean
is the mean of the readings present), state takes the last reading. A bin with some readings but fewer than its
input intervals is flagged ``RESAMPLED``; below ``min_count`` readings it is NaN (flagged ``MISSING``).
Upsampling: energy is split evenly over the sub-intervals, power repeated, state held from the last reading at or
before each stamp; all flagged ``RESAMPLED``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from twin.timeseries import flags
from twin.timeseries.clean_block import Block, read_block, time_step_ns, to_step_ns, write_retimed

KINDS = ("energy", "power", "state")
SIDES = ("right", "left")
_NOT_MISSING = np.uint8(~flags.MISSING & 0xFF)


def resample(
    da: xr.DataArray,
    freq: str | pd.Timedelta,
    *,
    kind: str = "energy",
    closed: str = "right",
    label: str = "right",
    min_count: int = 1,
    data_freq: str | pd.Timedelta | None = None,
) -> xr.DataArray:
    """Resample ``da`` to ``freq`` (a multiple or a divisor of its own step).

    Parameters
    ----------
    da : DataArray
        Values with a regular or gappy ``time`` coordinate (UTC): energy in kWh per interval, power in kW (any
        unit), or a state (any unit).
    freq : str or Timedelta
        The new fixed step, e.g. ``"1h"``, ``"1D"``, ``"5min"``.
    kind : {"energy", "power", "state"}
        How values combine (see the module docstring).
    closed, label : {"right", "left"}
        Both "right" (interval-ending stamps, metering's convention) or both "left" (interval-beginning).
    min_count : int
        Fewest readings a downsampled bin needs to get a value.
    data_freq : str or Timedelta, optional
        The data's own step; inferred from the time axis (gcd of its steps) when omitted. Needed when the data
        has a single stamp, or when every other slot is absent.

    Returns
    -------
    DataArray
        On a regular axis from the first to the last bin touched by the input; same non-time dims, coords and
        attrs. Input flags are OR-ed into the outputs they contribute to.
    """
    if kind not in KINDS:
        raise ValueError(f"resample: kind={kind!r}; use one of {KINDS}")
    if closed not in SIDES or label != closed:
        raise ValueError(
            f"resample: closed={closed!r}, label={label!r}; use closed='right', label='right' (interval-ending "
            "stamps, the metering default) or closed='left', label='left' (interval-beginning stamps)"
        )
    if isinstance(min_count, bool) or not isinstance(min_count, int | np.integer) or min_count < 1:
        raise ValueError(f"resample: min_count={min_count!r} must be a whole number >= 1")
    step_out = to_step_ns(freq, "resample")
    block = read_block(da, "resample")
    time_ns = block.require_time()
    if time_ns.size == 0:
        return write_retimed(block, time_ns, block.values, block.quality)
    step_in = _input_step(block, time_ns, data_freq)
    if step_out % step_in == 0:
        return _downsample(block, time_ns, step_in, step_out, kind, closed, min_count)
    if step_in % step_out == 0:
        return _upsample(block, time_ns, step_in, step_out, kind, closed)
    raise ValueError(
        f"resample: freq={freq!r} is neither a multiple nor a divisor of the data's step {pd.Timedelta(step_in)}"
    )


def _input_step(block: Block, time_ns: NDArray[np.int64], data_freq: str | pd.Timedelta | None) -> int:
    """The input step (ns), checked to be aligned to midnight UTC."""
    if time_ns.size < 2 and data_freq is None:
        raise ValueError("resample: cannot infer the data's step from a single time stamp; pass data_freq=")
    step = time_step_ns(block, data_freq)
    off = np.flatnonzero(time_ns % step)
    if off.size:
        raise ValueError(
            f"resample: stamp {pd.Timestamp(time_ns[off[0]])} is not on a multiple of the data's step "
            f"{pd.Timedelta(step)} from midnight UTC; snap the stamps first"
        )
    return step


def _downsample(
    block: Block, time_ns: NDArray[np.int64], step_in: int, step: int, kind: str, closed: str, min_count: int
) -> xr.DataArray:
    """Aggregate the input slots of each bin: lay them on a ``(bin, slot in bin, series)`` grid and reduce."""
    per_bin = step // step_in
    values, quality = block.values, block.quality
    ceil = closed == "right"  # a stamp on a bin edge belongs to the bin it ends (right) or begins (left)
    first_bin, last_bin = (int(-(-t // step) if ceil else t // step) for t in (time_ns[0], time_ns[-1]))
    n_out = last_bin - first_bin + 1
    first_slot = first_bin * step - (step - step_in if ceil else 0)
    slot = (time_ns - first_slot) // step_in
    grid = np.full((n_out * per_bin, values.shape[1]), np.nan)
    grid[slot] = values
    grid_q = np.zeros(grid.shape, dtype=np.uint8)
    grid_q[slot] = quality & _NOT_MISSING
    grid = grid.reshape(n_out, per_bin, values.shape[1])
    valid = ~np.isnan(grid)
    count = valid.sum(axis=1)
    bits = np.bitwise_or.reduce(grid_q.reshape(grid.shape), axis=1)
    if kind == "state":
        last = per_bin - 1 - np.argmax(valid[:, ::-1, :], axis=1)
        agg = np.take_along_axis(grid, last[:, None, :], axis=1)[:, 0, :]
    else:
        agg = np.where(valid, grid, 0.0).sum(axis=1)
        if kind == "power":
            agg = agg / np.maximum(count, 1)
    too_few = count < min_count
    agg = np.where(too_few, np.nan, agg)
    bits = bits | np.where((count > 0) & (count < per_bin), flags.RESAMPLED, 0).astype(np.uint8)
    bits = np.where(too_few, bits | flags.MISSING, bits).astype(np.uint8)
    return write_retimed(block, (first_bin + np.arange(n_out, dtype=np.int64)) * step, agg, bits)


def _upsample(
    block: Block, time_ns: NDArray[np.int64], step_in: int, step: int, kind: str, closed: str
) -> xr.DataArray:
    """Spread (energy), repeat (power) or hold (state) each input value over the new slots it covers."""
    per_in = step_in // step
    if kind == "state":
        out_time = np.arange(time_ns[0], time_ns[-1] + 1, step, dtype=np.int64)
        source = out_time // step_in * step_in
    elif closed == "right":
        out_time = np.arange(time_ns[0] - step_in + step, time_ns[-1] + 1, step, dtype=np.int64)
        source = -(-out_time // step_in) * step_in
    else:
        out_time = np.arange(time_ns[0], time_ns[-1] + step_in, step, dtype=np.int64)
        source = out_time // step_in * step_in
    row = np.minimum(np.searchsorted(time_ns, source), time_ns.size - 1)
    found = time_ns[row] == source
    values = np.where(found[:, None], block.values[row], np.nan)
    if kind == "energy":
        values = values / per_in
    bits = np.where(found[:, None], block.quality[row] & _NOT_MISSING, 0).astype(np.uint8)
    bits = np.where(np.isnan(values), bits | flags.MISSING, bits | flags.RESAMPLED).astype(np.uint8)
    return write_retimed(block, out_time, values, bits)
