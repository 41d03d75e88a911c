"""Results store of the scenario runner: one zarr v3 group per scenario, written atomically, read back as one Dataset.

Layout and commit protocol: ``docs/design/scenarios_runner.md``. A scenario's group is encoded into memory where
it ran (:func:`encode_group`); the client writes its files and then its ``zarr.json`` with ``complete: true``
(:func:`write_group`), the commit point. :func:`read_status` and :func:`open_results` read complete groups only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import xarray as xr
import zarr
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from zarr.storage import MemoryStore

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer

__all__ = ["encode_group", "open_results", "prepare_store", "read_status", "write_group"]

_ROOT_ATTR = "gridtwin_runner"
_GROUP_ATTR = "gridtwin_scenario"
_GROUP = "scenarios"
_COMMIT = "zarr.json"


def _group_key(name: str) -> str:
    """Zarr node name of scenario ``name``: percent-encoded, no '/', no leading '.' or '__'."""
    return quote(name, safe="-_=+,@~").replace(".", "%2E")


def _text_to_object(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width (``<U``) and numpy StringDType text as object arrays: zarr v3 specifies only variable-length."""
    text = {n: ds[n].astype(object) for n in ds.variables if ds[n].dtype.kind in "UT"}
    return ds.assign_coords({n: v for n, v in text.items() if n in ds.coords}).assign(
        {n: v for n, v in text.items() if n not in ds.coords}
    )


def encode_group(
    name: str, ds: xr.Dataset, error: str, seconds: float, attempts: int, tb: str = ""
) -> dict[str, bytes]:
    """Encode one scenario's group with zarr into memory: ``{key relative to the group: bytes}``.

    Encoding where the scenario ran keeps the client's part of a run to writing a few small files.
    """
    meta = {
        "name": name,
        "status": f"failed: {error}" if error else "ok",
        "traceback": tb,
        "seconds": seconds,
        "attempts": attempts,
        "variables": [str(v) for v in ds.data_vars],
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": True,
    }
    files: dict[str, Buffer] = {}
    ds = _text_to_object(ds.drop_encoding()).assign_attrs({_GROUP_ATTR: meta})
    ds.to_zarr(MemoryStore(files), mode="w", consolidated=False, zarr_format=3)
    return {key: buf.to_bytes() for key, buf in files.items()}


def write_group(store: str, name: str, files: dict[str, bytes]) -> None:
    """Replace scenario ``name``'s group by ``files``; its ``zarr.json`` (the ``complete`` mark) goes last.

    On a local folder the mark is written to a temporary file and renamed (atomic); on an fsspec URL it is one PUT.
    """
    fs, root = url_to_fs(store)
    group = f"{root.rstrip('/')}/{_GROUP}/{_group_key(name)}"
    if fs.exists(group):
        fs.rm(group, recursive=True)
    data = {f"{group}/{key}": value for key, value in files.items() if key != _COMMIT}
    if isinstance(fs, LocalFileSystem):
        for path, value in data.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(value)
        Path(group).mkdir(parents=True, exist_ok=True)
        tmp = Path(group) / f"{_COMMIT}.{os.getpid()}.tmp"
        tmp.write_bytes(files[_COMMIT])
        tmp.replace(Path(group) / _COMMIT)
    else:
        fs.pipe(data)
        fs.pipe_file(f"{group}/{_COMMIT}", files[_COMMIT])


def prepare_store(store: str, names: Sequence[str]) -> None:
    """Create the root and ``scenarios`` groups and record the set's order (earlier names not in it go last)."""
    root = zarr.open_group(store, mode="a", zarr_format=3)
    previous = list(root.attrs.get(_ROOT_ATTR, {}).get("order", []))
    current = set(names)
    order = list(names) + [n for n in previous if n not in current]
    root.attrs[_ROOT_ATTR] = {"version": 1, "order": order}
    root.require_group(_GROUP)


def read_status(store: str | Path) -> dict[str, str]:
    """Return ``{name: status}`` of the complete scenarios in ``store`` ("ok" or "failed: <error>").

    Interrupted writes (no ``zarr.json`` with the ``complete`` mark, or a cut-off one) are left out: they count as
    not run, and the next :func:`run_set` replaces them.
    """
    fs, root = url_to_fs(str(store))
    parent = f"{root.rstrip('/')}/{_GROUP}"
    if not fs.isdir(parent):
        return {}
    status = {}
    for group in sorted(fs.ls(parent, detail=False)):
        try:
            meta = json.loads(fs.cat_file(f"{group}/{_COMMIT}"))["attributes"][_GROUP_ATTR]
        except (FileNotFoundError, NotADirectoryError, KeyError, TypeError, ValueError):
            continue
        if meta.get("complete") is True:
            status[str(meta["name"])] = str(meta["status"])
    return status


def _read_group(store: str, name: str) -> tuple[xr.Dataset, dict[str, Any]]:
    """One scenario's Dataset (loaded, variables in fn's order, text as objects) and its runner metadata."""
    ds = xr.open_zarr(store, group=f"{_GROUP}/{_group_key(name)}", consolidated=False, chunks=None).load()
    meta = dict(ds.attrs.pop(_GROUP_ATTR))
    return _text_to_object(ds[list(meta["variables"])]), meta


def open_results(store: str | Path) -> xr.Dataset:
    """Return the complete scenarios of ``store`` as one Dataset along a ``scenario`` dim.

    Scenarios come in the order of the last :func:`run_set` call's set (then earlier ones). Variables a scenario
    lacks (all of them for a failed one; an element it does not have) are NaN (outer join on every coordinate).

    Returns
    -------
    xarray.Dataset
        fn's variables with a leading ``scenario`` dim (coordinate: names); non-index coordinates that differ
        between scenarios get the ``scenario`` dim too. ``status`` (scenario): "ok" or
        "failed: <ErrorType>: <message>"; ``run_seconds`` (scenario), s, time in fn including retries. Attributes
        equal in every scenario stay attributes; one that differs (e.g. per-scenario warnings) becomes the text
        variable ``attr_<name>`` (scenario).
    """
    store = str(store)
    status = read_status(store)
    if not status:
        raise FileNotFoundError(f"{store} holds no complete scenario; run scenarios.runner.run_set first")
    root = zarr.open_group(store, mode="r", zarr_format=3)
    order = [n for n in root.attrs.get(_ROOT_ATTR, {}).get("order", []) if n in status]
    order += sorted(set(status) - set(order))
    parts = {name: _read_group(store, name) for name in order}
    ok = [n for n in order if parts[n][0].data_vars]  # failed scenarios have no variables: NaN after the reindex
    names = np.array(order, dtype=object)
    out = xr.Dataset(coords={"scenario": names})
    if ok:
        out = xr.concat(
            [parts[n][0] for n in ok],
            dim="scenario",
            data_vars="all",
            coords="different",
            compat="equals",
            join="outer",
            combine_attrs="drop_conflicts",
        )
        out = out.assign_coords(scenario=np.array(ok, dtype=object)).reindex(scenario=names)
    varying = sorted({k for n in ok for k in parts[n][0].attrs} - set(out.attrs))
    for key in varying:
        text = [str(parts[n][0].attrs.get(key, "")) if n in ok else "" for n in order]
        out[f"attr_{key}"] = ("scenario", np.array(text, dtype=object))
    return out.assign(
        status=("scenario", np.array([status[n] for n in order], dtype=object)),
        run_seconds=("scenario", np.array([float(parts[n][1]["seconds"]) for n in order]), {"units": "s"}),
    )
