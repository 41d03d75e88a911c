"""Cumulative registers to interval energy: :func:`deaccumulate`, with counter resets, rollovers and gaps.

A meter's register (kWh) only grows; the energy of the interval ending at slot ``t`` is ``r[t] - r[p]`` with ``p``
the last slot before ``t`` that holds a reading. When the register goes backwards (counter reset, rollover, meter
exchange) the interval is flagged ``RESET`` and its energy is, in this order of preference:

1. ``rollover - r[p] + r[t]`` when a ``rollover`` value is given and the result is plausible;
2. ``r[t]`` when the register looks restarted from ~0 (``0 <= r[t] <=`` the plausible energy bound);
3. NaN otherwise.

The plausible energy bound over ``k`` slots is ``max_step * k`` when ``max_step`` is given, else ten times the
meter's mean energy per interval (over its forward steps) times ``k``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from twin.timeseries import flags
from twin.timeseries.clean_block import last_valid_row, read_block, write_block

RESTART_FACTOR = 10.0  # a restart's first value may be up to this many mean intervals of energy (no max_step)
GAP_MODES = ("attribute", "spread")


def deaccumulate(
    da: xr.DataArray,
    *,
    rollover: float | None = None,
    max_step: float | None = None,
    gaps: str = "attribute",
) -> xr.DataArray:
    """Interval energy (kWh per slot) from a cumulative register (kWh).

    Parameters
    ----------
    da : DataArray
        Register readings in kWh with a ``time`` dim; NaN where no reading arrived.
    rollover : float, optional
        The register's wrap-around value (e.g. 99999.9 kWh). A backwards step is then first tried as a rollover.
    max_step : float, optional
        The largest plausible energy per slot (kWh). Steps above ``max_step`` times the slots elapsed are kept
        but flagged ``SUSPECT``; it also bounds rollovers and restarts (see the module docstring).
    gaps : {"attribute", "spread"}
        Where the energy across a run of missing readings goes: all of it to the first reading after the gap
        ("attribute"), or evenly over the missing slots and that reading ("spread", flagged ``FILLED`` on the
        slots that had no reading). Both flag the slots ``RESAMPLED``; totals are kept either way.

    Returns
    -------
    DataArray
        Energy in kWh of the interval ending at each slot; NaN (flagged ``MISSING``) at the first reading, where
        nothing is known about the energy before it. With no resets,
        ``nancumsum(energy) + r[first valid] == r`` on every slot holding a reading.
    """
    if gaps not in GAP_MODES:
        raise ValueError(f"deaccumulate: gaps={gaps!r}; use one of {GAP_MODES}")
    for name, value in (("rollover", rollover), ("max_step", max_step)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"deaccumulate: {name}={value!r} must be a positive finite number (kWh) or None")
    block = read_block(da, "deaccumulate")
    r, q = block.values, block.quality
    energy, prev, (gap_rows, gap_cols) = _steps(r)
    has_prev = ~np.isnan(energy)
    new = np.where(~np.isnan(r) & ~has_prev, flags.MISSING, 0).astype(np.uint8)
    new[gap_rows, gap_cols] |= flags.RESAMPLED
    if max_step is not None:
        rows, cols = np.nonzero(energy > max_step)
        high = energy[rows, cols] > max_step * (rows - prev[rows, cols])
        new[rows[high], cols[high]] |= flags.SUSPECT
    _resolve_resets(energy, new, prev, r, rollover, max_step)
    inherited = q & ~flags.MISSING
    if inherited.any():  # flags of the earlier reading (e.g. FILLED, CONFLICT) taint the interval's energy
        new |= np.where(has_prev, np.take_along_axis(inherited, np.maximum(prev, 0), axis=0), 0).astype(np.uint8)
    if gaps == "spread":
        _spread(energy, new, ~np.isnan(r), gap_rows, gap_cols, gap_rows - prev[gap_rows, gap_cols])
    return write_block(block, energy, q | new)


def _steps(
    r: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.int32], tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Register steps ``r[t] - r[prev]``, the row ``prev`` of the previous reading (-1: none), and the readings
    that follow a gap (``prev < t - 1``) as ``(rows, cols)``."""
    prev = np.full(r.shape, -1, dtype=np.int32)
    energy = np.full(r.shape, np.nan)
    if r.shape[0] > 1:
        prev[1:] = last_valid_row(r)[:-1]
        energy[1:] = r[1:] - r[:-1]  # NaN unless both readings exist
    rows_before = np.arange(-1, r.shape[0] - 1, dtype=np.int32)[:, None]
    gap_rows, gap_cols = np.nonzero(~np.isnan(r) & (prev >= 0) & (prev < rows_before))
    energy[gap_rows, gap_cols] = r[gap_rows, gap_cols] - r[prev[gap_rows, gap_cols], gap_cols]
    return energy, prev, (gap_rows, gap_cols)


def _resolve_resets(
    energy: NDArray[np.float64],
    new: NDArray[np.uint8],
    prev: NDArray[np.int32],
    r: NDArray[np.float64],
    rollover: float | None,
    max_step: float | None,
) -> None:
    """Write the energy (rollover, restart or NaN) and the ``RESET`` flag of the backwards steps, in place."""
    rows, cols = np.nonzero(energy < 0)
    if rows.size == 0:
        return
    before_row = prev[rows, cols]
    bound = _energy_bound(energy, prev, cols, max_step) * (rows - before_row)
    now, before = r[rows, cols], r[before_row, cols]
    value = np.full(rows.size, np.nan)
    if rollover is not None:
        wrapped = rollover - before + now
        value = np.where((wrapped >= 0) & (wrapped <= bound), wrapped, value)
    restart = np.isnan(value) & (now >= 0) & (now <= bound)
    value[restart] = now[restart]
    energy[rows, cols] = value
    new[rows, cols] |= flags.RESET


def _energy_bound(
    energy: NDArray[np.float64], prev: NDArray[np.int32], cols: NDArray[np.intp], max_step: float | None
) -> NDArray[np.float64]:
    """Plausible energy per slot (kWh) for each entry of ``cols``: ``max_step`` or 10× the meter's mean step."""
    if max_step is not None:
        return np.full(cols.size, float(max_step))
    meters, inverse = np.unique(cols, return_inverse=True)
    e = energy[:, meters]
    rows_before = np.arange(-1, energy.shape[0] - 1)[:, None]
    forward = (prev[:, meters] == rows_before) & (e >= 0)
    mean = np.where(forward, e, 0.0).sum(axis=0) / np.maximum(forward.sum(axis=0), 1)
    return RESTART_FACTOR * mean[inverse]


def _spread(
    energy: NDArray[np.float64],
    new: NDArray[np.uint8],
    valid: NDArray[np.bool_],
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    length: NDArray[np.int64],
) -> None:
    """Spread each gap-closing energy evenly over its gap, in place: slots ``(t - k, t]`` get ``energy[t] / k``."""
    if rows.size == 0:
        return
    ends = np.cumsum(length)
    offset = np.arange(ends[-1]) - np.repeat(ends - length, length)
    span_rows = np.repeat(rows - length + 1, length) + offset
    span_cols = np.repeat(cols, length)
    share = np.repeat(energy[rows, cols] / length, length)
    bits = np.repeat(new[rows, cols], length)
    bits[~valid[span_rows, span_cols] & ~np.isnan(share)] |= flags.FILLED
    energy[span_rows, span_cols] = share
    new[span_rows, span_cols] = bits
