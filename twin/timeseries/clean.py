"""Cleaning filters for meter series: pure ``DataArray -> DataArray`` functions and pipelines of them.

Every filter takes a DataArray with a ``time`` dim (usually ``(time, meter)``; ``(time,)`` or any other second dim
works alike), never modifies it, and returns a new one whose ``quality`` coordinate holds the input's flags OR-ed
with the filter's own (:mod:`twin.timeseries.flags`). The filters are vectorised over whole blocks; the time axis
must be whole but meters can come in chunks (each meter is cleaned independently), so a store is cleaned chunk by
chunk of meters.

- :func:`deaccumulate` – cumulative register (kWh) → interval energy (resets, rollovers, gaps);
- :func:`clip` – min–max limits; :func:`deadband` / :func:`expand_deadband` – store-on-change;
- :func:`resample` – energy/power/state to another fixed frequency (interval-ending stamps by default);
- :func:`find_gaps` (a table, not a filter) and :func:`fill_gaps`;
- :class:`Pipeline` – named steps from :data:`FILTERS`, stored as JSON (zarr attribute ``pipeline``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from twin.timeseries import flags
from twin.timeseries.clean_block import read_block, write_block
from twin.timeseries.clean_deadband import deadband, expand_deadband
from twin.timeseries.clean_gaps import fill_gaps, find_gaps
from twin.timeseries.clean_register import deaccumulate
from twin.timeseries.clean_resample import resample

__all__ = [
    "FILTERS",
    "Pipeline",
    "clip",
    "deaccumulate",
    "deadband",
    "expand_deadband",
    "fill_gaps",
    "find_gaps",
    "register_filter",
    "resample",
]

CLIP_MODES = ("nan", "bound")
PIPELINE_FORMAT = "gridtwin-pipeline/1"


def _bound(bound: float | xr.DataArray | None, block_source: xr.DataArray, name: str) -> np.ndarray | float | None:
    """A clip bound as a float or as an array shaped like the block (DataArrays broadcast, e.g. per meter)."""
    if bound is None:
        return None
    if isinstance(bound, xr.DataArray):
        extra = set(bound.dims) - set(block_source.dims)
        if extra:
            raise ValueError(
                f"clip: {name} has dims {sorted(extra)} that the data lacks (data dims {block_source.dims})"
            )
        labels = {d: block_source.indexes[d] for d in bound.dims if d in block_source.indexes and d in bound.indexes}
        for dim, wanted in labels.items():
            lacking = wanted.difference(bound.indexes[dim])
            if len(lacking):
                raise ValueError(f"clip: {name} has no value for {dim} {list(lacking[:5])}; give one for every {dim}")
        arr = bound.reindex(labels).broadcast_like(block_source).transpose(*block_source.dims).values
        return np.asarray(arr, dtype=np.float64).reshape(block_source.shape[0], int(np.prod(block_source.shape[1:])))
    value = float(bound)
    if np.isnan(value):
        raise ValueError(f"clip: {name}=nan; give a number or None for no limit")
    return value


def clip(
    da: xr.DataArray,
    lo: float | xr.DataArray | None = None,
    hi: float | xr.DataArray | None = None,
    *,
    mode: str = "nan",
) -> xr.DataArray:
    """Min–max clipping: values below ``lo`` or above ``hi`` become NaN ("nan") or the bound ("bound").

    Parameters
    ----------
    da : DataArray
        Values with a ``time`` dim.
    lo, hi : float or DataArray, optional
        Limits in the unit of ``da`` (None: no limit). DataArrays broadcast against ``da`` (e.g. one per meter).
    mode : {"nan", "bound"}
        What a value outside the limits becomes; either way it is flagged ``CLIPPED``.

    Returns
    -------
    DataArray
        The clipped values. Clipping is idempotent.
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"clip: mode={mode!r}; use one of {CLIP_MODES}")
    block = read_block(da, "clip")
    low, high = _bound(lo, block.source, "lo"), _bound(hi, block.source, "hi")
    if low is not None and high is not None and np.any(np.asarray(low) > np.asarray(high)):
        raise ValueError(f"clip: lo must not exceed hi (lo={lo!r}, hi={hi!r})")
    values = block.values
    below = values < low if low is not None else np.zeros(values.shape, dtype=np.bool_)
    above = values > high if high is not None else np.zeros(values.shape, dtype=np.bool_)
    if mode == "nan":
        out = np.where(below | above, np.nan, values)
    else:
        out = np.where(below, low if low is not None else 0.0, values)
        out = np.where(above, high if high is not None else 0.0, out)
    quality = block.quality | np.where(below | above, flags.CLIPPED, 0).astype(np.uint8)
    return write_block(block, out, quality)


FILTERS: dict[str, Callable[..., xr.DataArray]] = {
    "deaccumulate": deaccumulate,
    "clip": clip,
    "deadband": deadband,
    "expand_deadband": expand_deadband,
    "resample": resample,
    "fill_gaps": fill_gaps,
}


def register_filter(name: str, func: Callable[..., xr.DataArray]) -> None:
    """Add a filter ``func(da, **params) -> DataArray`` to :data:`FILTERS` under ``name`` (not already taken)."""
    if name in FILTERS:
        raise ValueError(f"register_filter: {name!r} is already registered ({FILTERS[name].__qualname__})")
    FILTERS[name] = func


def _check_step(pipeline: str, i: int, step: Any) -> tuple[str, dict[str, Any]]:
    """One step as ``(filter name, params)``; ValueError naming the pipeline, the step and how to fix it."""
    where = f"pipeline {pipeline!r}, step {i}"
    if not (isinstance(step, list | tuple) and len(step) == 2 and isinstance(step[1], Mapping)):
        raise ValueError(f"{where}: expected a (filter name, params dict) pair, got {step!r}")
    name, params = step[0], dict(step[1])
    if name not in FILTERS:
        raise ValueError(f"{where} {name!r}: unknown filter; known filters: {', '.join(sorted(FILTERS))}")
    signature = inspect.signature(FILTERS[name])
    try:
        signature.bind(None, **params)
    except TypeError as err:
        accepted = [p for p in signature.parameters if p != "da"]
        raise ValueError(f"{where} {name!r}: bad parameters ({err}); accepted: {', '.join(accepted)}") from None
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{where} {name!r}: parameters must be plain JSON values (numbers, strings, lists, dicts, null) so "
            f"the pipeline can be stored ({err})"
        ) from None
    return name, params


@dataclass(frozen=True, init=False)
class Pipeline:
    """A named list of cleaning steps, e.g. ``Pipeline("daily", [("deaccumulate", {}), ("clip", {"hi": 50})])``.

    Attributes
    ----------
    name : str
        What the pipeline is for (recorded with the data).
    steps : tuple of (str, dict)
        ``(filter name in FILTERS, keyword parameters)`` pairs, applied in order. Checked on construction: an
        unknown name, an unknown or missing parameter, or a value that is not plain JSON raises ValueError.
    """

    name: str
    steps: tuple[tuple[str, dict[str, Any]], ...]

    def __init__(self, name: str, steps: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Pipeline: name must be a non-empty string, got {name!r}")
        checked = tuple(_check_step(name, i, step) for i, step in enumerate(steps))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "steps", checked)

    def apply(self, da: xr.DataArray) -> xr.DataArray:
        """Run the steps on ``da`` and record the pipeline in ``attrs["pipeline"]`` (JSON).

        When ``da`` already records a pipeline, the record becomes the earlier steps followed by these, so
        ``Pipeline.from_json(out.attrs["pipeline"]).apply(raw)`` replays the whole cleaning from the raw data.
        Errors raised by a step are re-raised as ValueError naming the pipeline and the step.
        """
        done = _recorded(da)
        out = da
        for i, (name, params) in enumerate(self.steps):
            try:
                out = FILTERS[name](out, **params)
            except (ValueError, TypeError) as err:
                raise ValueError(f"pipeline {self.name!r}, step {i} {name!r}: {err}") from err
        record = self if done is None else Pipeline(f"{done.name}+{self.name}", done.steps + self.steps)
        out = out.copy(deep=False)
        out.attrs = {**out.attrs, "pipeline": record.to_json()}
        return out

    def to_json(self) -> str:
        """The pipeline as a JSON text (for zarr/netCDF attributes)."""
        steps = [{"filter": name, "params": params} for name, params in self.steps]
        return json.dumps({"format": PIPELINE_FORMAT, "name": self.name, "steps": steps}, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Pipeline:
        """The pipeline written by :meth:`to_json`; ValueError when ``text`` is not one."""
        try:
            doc = json.loads(text)
        except (TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"Pipeline.from_json: not JSON ({err})") from None
        if not isinstance(doc, dict) or doc.get("format") != PIPELINE_FORMAT:
            raise ValueError(f"Pipeline.from_json: expected an object with format {PIPELINE_FORMAT!r}")
        steps = doc.get("steps")
        if not isinstance(steps, list) or not all(isinstance(s, dict) and "filter" in s for s in steps):
            raise ValueError("Pipeline.from_json: 'steps' must be a list of {'filter': name, 'params': {...}}")
        return cls(doc.get("name", ""), [(s["filter"], s.get("params", {})) for s in steps])


def _recorded(da: xr.DataArray) -> Pipeline | None:
    """The pipeline recorded in ``da.attrs["pipeline"]``, if any."""
    text = da.attrs.get("pipeline") if isinstance(da, xr.DataArray) else None
    if text is None:
        return None
    try:
        return Pipeline.from_json(text)
    except ValueError as err:
        raise ValueError(
            f"the data's attrs['pipeline'] is not a recorded pipeline ({err}); remove it before applying a new one"
        ) from None
