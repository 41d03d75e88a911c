"""Write power-flow results to files and read them back.

The results are the :class:`xarray.Dataset` of :func:`solvers.run_pf` / :func:`solvers.run_pf_timeseries`:
variables on ``bus`` and ``branch`` (string ids), optionally a leading ``time`` dim, and scalar (or
per-step) variables such as ``p_loss_mw`` and ``converged``. The file format follows the suffix:

``.zarr``
    Zarr v3 store. Written into a temporary sibling directory and renamed into place, so an
    interrupted write never leaves a half-written store at ``path``. Readable with :func:`read_results`.
``.nc``
    netCDF (netCDF4 when the ``netCDF4`` package is installed, else netCDF3 via scipy); string ids
    are stored as fixed-width strings. Written to a temporary file and renamed. Readable with
    :func:`read_results`.
``.csv``
    One file per element dim plus a summary, next to each other: ``<stem>_bus.csv``,
    ``<stem>_branch.csv`` (one row per element, or per time step and element in long format with a
    leading ``time`` column; non-index coordinates such as ``branch_kind`` become columns) and
    ``<stem>_summary.csv`` (the variables without an element dim: one row, or one row per time step).
    Dataset attributes (timings, grid name) are not written; use ``.zarr``/``.nc``/``.json`` to keep them.
``.json``
    One object ``{"bus": {var: {id: value}}, "branch": {...}, "summary": {var: value}, "attrs": {...}}``;
    for a time series every value is a list over time and a top-level ``"time"`` list holds ISO 8601
    time stamps (to the second). NaN and infinite values are written as ``null``.

Units are those of the variable names (``vm_pu``, ``p_mw``, ``loading_pct``, ...).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["READABLE_SUFFIXES", "WRITABLE_SUFFIXES", "read_results", "to_json_dict", "write_results"]

WRITABLE_SUFFIXES = (".zarr", ".nc", ".csv", ".json")
READABLE_SUFFIXES = (".zarr", ".nc")

SUMMARY = "summary"  # name of the group of variables that have no element dim


def write_results(ds: xr.Dataset, path: str | Path) -> list[Path]:
    """Write power-flow results, choosing the format from the suffix of ``path``.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`solvers.run_pf` or :func:`solvers.run_pf_timeseries`; every variable has
        at most one element dim (``bus``, ``branch``, ...) besides an optional ``time``.
    path : str or Path
        Target ending in ``.zarr``, ``.nc``, ``.csv`` or ``.json`` (see the module docstring for
        each layout). Missing parent directories are created; an existing target is replaced.

    Returns
    -------
    list of Path
        The files or stores written (three for ``.csv``, one otherwise).

    Raises
    ------
    ValueError
        If the suffix is not one of :data:`WRITABLE_SUFFIXES`, or a variable has more than one
        element dim (``.csv``/``.json`` only).
    FileExistsError
        If a ``.zarr`` target exists but is not a Zarr store (it is not deleted).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    writer = _WRITERS.get(suffix)
    if writer is None:
        raise ValueError(
            f"{path}: cannot write results as {suffix or 'a file without suffix'!r}; "
            f"use one of {', '.join(WRITABLE_SUFFIXES)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return writer(ds, path)


def read_results(path: str | Path) -> xr.Dataset:
    """Read results written by :func:`write_results` as ``.zarr`` or ``.nc`` into memory.

    Parameters
    ----------
    path : str or Path
        A ``.zarr`` store or ``.nc`` file.

    Returns
    -------
    xarray.Dataset
        The results with string ids as object arrays (as :func:`solvers.run_pf` returns them).

    Raises
    ------
    ValueError
        If the suffix is not ``.zarr`` or ``.nc``.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise ValueError(
            f"{path}: cannot read results from {suffix or 'a file without suffix'!r}; "
            f"use one of {', '.join(READABLE_SUFFIXES)} (.csv and .json are export formats)"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such results file or store")
    options = {"engine": "zarr", "consolidated": False} if suffix == ".zarr" else {}
    return _convert_strings(xr.load_dataset(path, **options), object)


# -- binary formats --------------------------------------------------------------------------
def _write_zarr(ds: xr.Dataset, path: Path) -> list[Path]:
    """Write a Zarr v3 store atomically: temporary sibling, then rename into place."""
    if path.exists() and not _is_zarr_store(path):
        raise FileExistsError(f"{path} exists and is not a Zarr store; not replacing it")
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    # zarr v3 has a stable spec for variable-length strings only, so ids go out as object strings
    store = _convert_attrs(_convert_strings(ds, object))
    try:
        store.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return [path]


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zattrs"))


def _write_netcdf(ds: xr.Dataset, path: Path) -> list[Path]:
    """Write netCDF to a temporary sibling file, then rename into place."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _convert_attrs(_convert_strings(ds, str)).to_netcdf(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return [path]


def _convert_strings(ds: xr.Dataset, dtype: type) -> xr.Dataset:
    """Cast every string-valued variable and coordinate to ``dtype`` (``object`` or fixed-width ``str``)."""
    names = [name for name, var in ds.variables.items() if var.dtype.kind in "OUT"]
    if not names:
        return ds
    out = ds.copy()
    for name in names:
        var = ds.variables[name]
        # via object: numpy's StringDType (what zarr reads back) does not cast to a fixed width directly
        text = np.asarray(var.values).astype(object).astype(str)
        out[name] = var.copy(data=text.astype(dtype))
    return out


def _convert_attrs(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with attributes netCDF and Zarr can store: numbers, strings; others as text."""
    out = ds.copy()
    out.attrs = {key: _to_storable_attr(value) for key, value in ds.attrs.items()}
    return out


def _to_storable_attr(value: Any) -> str | int | float:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str | int | float):
        return value
    return str(value)


# -- text formats ----------------------------------------------------------------------------
def _group_variables(ds: xr.Dataset) -> dict[str, list[str]]:
    """Group the variables and non-index coordinates of ``ds`` by their element dim.

    Parameters
    ----------
    ds : xarray.Dataset
        Results with an optional ``time`` dim.

    Returns
    -------
    dict of str to list of str
        ``{"bus": [...], "branch": [...], "summary": [...]}``: names per element dim, and under
        ``"summary"`` those that have no element dim (``p_loss_mw``, ``converged``, ...).

    Raises
    ------
    ValueError
        If a variable has more than one dim besides ``time``.
    """
    groups: dict[str, list[str]] = {str(dim): [] for dim in ds.dims if dim != "time"}
    groups[SUMMARY] = []
    names = [*(c for c in ds.coords if c not in ds.dims), *ds.data_vars]
    for name in names:
        element_dims = [d for d in ds[name].dims if d != "time"]
        if len(element_dims) > 1:
            raise ValueError(
                f"variable {name!r} has dims {ds[name].dims}; only one element dim besides 'time' can be "
                "written as a table (use .zarr or .nc)"
            )
        groups[str(element_dims[0]) if element_dims else SUMMARY].append(str(name))
    return groups


def _write_csv(ds: xr.Dataset, path: Path) -> list[Path]:
    """Write ``<stem>_<dim>.csv`` per element dim and ``<stem>_summary.csv``."""
    written = []
    for group, names in _group_variables(ds).items():
        target = path.with_name(f"{path.stem}_{group}.csv")
        _to_frame(ds, group, names).to_csv(target, index=False)
        written.append(target)
    return written


def _to_frame(ds: xr.Dataset, group: str, names: list[str]) -> pd.DataFrame:
    """Return one table: rows per element (and time step), the element id first."""
    index_dims = [d for d in ("time", group) if d in ds.dims]
    columns: dict[str, np.ndarray] = {}
    if not index_dims:
        return pd.DataFrame({name: [ds[name].values.item()] for name in names})
    # long format: time varies slowest, element fastest
    grid = np.meshgrid(*(ds[d].values for d in index_dims), indexing="ij")
    for dim, values in zip(index_dims, grid, strict=True):
        columns[dim] = values.ravel()
    for name in names:
        da = ds[name]
        columns[name] = da.broadcast_like(ds[index_dims]).transpose(*index_dims).values.ravel()
    return pd.DataFrame(columns)


def _write_json(ds: xr.Dataset, path: Path) -> list[Path]:
    """Write one JSON object with bus, branch, summary and attrs (NaN/inf as null)."""
    with path.open("w", encoding="utf-8") as fh:
        json.dump(to_json_dict(ds), fh, allow_nan=False, indent=1)
        fh.write("\n")
    return [path]


def to_json_dict(ds: xr.Dataset) -> dict[str, Any]:
    """Convert results to plain Python containers for JSON.

    Parameters
    ----------
    ds : xarray.Dataset
        Results with an optional ``time`` dim.

    Returns
    -------
    dict
        ``{"bus": {var: {id: value}}, "branch": ..., "summary": {var: value}, "attrs": {...}}``; with a
        ``time`` dim each value is a list over time and ``"time"`` lists the ISO 8601 time stamps.
        NaN and infinite values are ``None``.
    """
    has_time = "time" in ds.dims
    out: dict[str, Any] = {}
    if has_time:
        out["time"] = _to_json_values(ds["time"].values)
    for group, names in _group_variables(ds).items():
        if group == SUMMARY:
            out[group] = {name: _to_json_values(ds[name].values) for name in names}
            continue
        ids = [str(i) for i in ds[group].values]
        table = {}
        for name in names:
            da = ds[name]
            if has_time:
                da = da.broadcast_like(ds["time"]).transpose(group, "time")
            table[name] = dict(zip(ids, _to_json_values(da.values), strict=True))
        out[group] = table
    out["attrs"] = {key: _to_json_attr(value) for key, value in ds.attrs.items()}
    return out


def _to_json_values(values: np.ndarray) -> Any:
    """Return ``values`` as (nested) lists of Python scalars; non-finite floats become ``None``."""
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind == "f":
        obj = values.astype(object)
        obj[~np.isfinite(values)] = None
        return obj.tolist()
    if kind == "M":
        return np.datetime_as_string(values, unit="s").tolist()
    if kind in "OUT":
        return values.astype(str).tolist()
    return values.tolist()


def _to_json_attr(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return _to_json_values(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


_WRITERS: dict[str, Callable[[xr.Dataset, Path], list[Path]]] = {
    ".zarr": _write_zarr,
    ".nc": _write_netcdf,
    ".csv": _write_csv,
    ".json": _write_json,
}
