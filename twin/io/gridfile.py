"""Save and open a Grid as gridtwin's own files: ``.json`` (readable, diffable) or ``.zarr`` (large grids).

Both keep every table with its ids and columns, ``name``, ``sn_mva``, ``f_hz`` and the JSON-able
part of ``meta`` (provenance); tables that only hold derived data (e.g. a CIM import's SV
solution) are saved as tables under ``meta``'s key. Writes are atomic: the file or store appears
complete or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.grid import Grid
from twin.schema import COMPONENTS

__all__ = ["is_grid_file", "read_grid", "write_grid"]

FORMAT = "gridtwin-grid"
VERSION = 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return {"__dataframe__": _split(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if "__dataframe__" in value:
            d = value["__dataframe__"]
            return pd.DataFrame(d["data"], index=d["index"], columns=d["columns"])
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


def _split(df: pd.DataFrame) -> dict[str, Any]:
    """Columns, index and row values with Python scalars (floats round-trip exactly through JSON)."""
    data = [[_jsonable(None if v is pd.NA else v) for v in row] for row in df.to_numpy(dtype=object).tolist()]
    return {"columns": [str(c) for c in df.columns], "index": [str(i) for i in df.index], "data": data}


def _document(grid: Grid) -> dict[str, Any]:
    tables = {}
    for comp in COMPONENTS:
        df = grid[comp]
        if len(df):
            tables[comp] = _split(df)
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": grid.name,
        "sn_mva": grid.sn_mva,
        "f_hz": grid.f_hz,
        "meta": _jsonable(grid.meta),
        "tables": tables,
    }


def _grid_from_document(doc: dict[str, Any], source: Path) -> Grid:
    if doc.get("format") != FORMAT:
        raise ValueError(f"{source}: not a gridtwin grid file (format {doc.get('format')!r})")
    if doc.get("version", 0) > VERSION:
        raise ValueError(f"{source}: grid file version {doc['version']} is newer than this gridtwin reads ({VERSION})")
    tables = {}
    for comp, split in doc["tables"].items():
        df = pd.DataFrame(split["data"], index=[str(i) for i in split["index"]], columns=split["columns"])
        tables[comp] = df
    return Grid(
        name=doc["name"],
        sn_mva=doc["sn_mva"],
        f_hz=doc["f_hz"],
        tables=tables,
        meta=_from_jsonable(doc.get("meta", {})),
    )


def _atomic_replace(tmp: Path, path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    tmp.replace(path)


def write_grid(grid: Grid, path: str | Path) -> Path:
    """Save ``grid`` to ``path`` (``.json`` or ``.zarr``), atomically; returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = _document(grid)
    if path.suffix == ".json":
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, allow_nan=True)
        _atomic_replace(Path(tmp), path)
        return path
    if path.suffix == ".zarr":
        import xarray as xr
        import zarr

        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        doc.pop("tables")
        doc["components"] = [c for c in COMPONENTS if len(grid[c])]
        zarr.open_group(str(tmp), mode="w").attrs.update(doc)
        for comp in doc["components"]:
            df = grid[comp].rename_axis("id").copy()
            for col in df.columns:
                if isinstance(df[col].dtype, pd.api.extensions.ExtensionDtype):  # nullable pandas dtypes
                    df[col] = (
                        df[col].astype(float) if pd.api.types.is_numeric_dtype(df[col]) else df[col].astype(object)
                    )
                if df[col].dtype == object:  # text columns: variable-length strings, missing as ""
                    df[col] = [
                        "" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v)
                        for v in df[col]
                    ]
            xr.Dataset.from_dataframe(df).to_zarr(str(tmp), group=comp, mode="w", consolidated=False)
        _atomic_replace(tmp, path)
        return path
    raise ValueError(f"{path}: grid files are .json or .zarr, got {path.suffix!r}")


def is_grid_file(path: str | Path) -> bool:
    """Return whether ``path`` is a gridtwin grid file (``.zarr`` store or ``.json`` with the format key)."""
    path = Path(path)
    if path.suffix == ".zarr" and path.is_dir():
        return (path / "zarr.json").exists()
    if path.suffix == ".json" and path.is_file():
        with path.open() as fh:
            head = fh.read(64)
        return f'"format": "{FORMAT}"' in head
    return False


def read_grid(path: str | Path) -> Grid:
    """Open a grid saved by :func:`write_grid`."""
    path = Path(path)
    if path.suffix == ".json":
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from err
        return _grid_from_document(doc, path)
    if path.suffix == ".zarr":
        import xarray as xr
        import zarr

        doc = dict(zarr.open_group(str(path), mode="r").attrs)
        doc["tables"] = {}
        for comp in doc.get("components", []):
            df = xr.open_zarr(str(path), group=comp, consolidated=False).load().to_dataframe()
            doc["tables"][comp] = {
                "columns": list(df.columns),
                "index": df.index.astype(str).tolist(),
                "data": df.to_numpy(dtype=object).tolist(),
            }
        return _grid_from_document(doc, path)
    raise ValueError(f"{path}: grid files are .json or .zarr, got {path.suffix!r}")
