"""Derived series computed over a store, one device chunk at a time (memory bounded by the chunk, not the store).

- :func:`clean_store`: a cleaning :class:`~twin.timeseries.clean.Pipeline` from one variable into another
  (e.g. the cumulative register ``A_plus`` into interval energy ``energy_kwh``), the pipeline recorded in attributes.
- :func:`sum_by`: meters summed per coordinate value (``load``, ``trafo``) as power in kW, with the count of meters
  that reported and of meters that were expected; the building block of virtual sensors and of per-load series.
- :func:`write_loads`: per-load active/reactive power (MW/Mvar) from meters into the ``loads`` group, the input of
  time-series power flow over the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from twin.timeseries import flags
from twin.timeseries.store import Store, StoreError

if TYPE_CHECKING:
    from twin.grid import Grid
    from twin.timeseries.clean import Pipeline

Progress = Callable[[int, int], None]


def _device_chunks(store: Store, group: str, variable: str) -> Iterator[tuple[int, int]]:
    arr = store._root[group][variable]
    n, step = arr.shape[1], arr.chunks[1]
    for lo in range(0, n, step):
        yield lo, min(n, lo + step)


def read_block(store: Store, group: str, variable: str, lo: int, hi: int) -> xr.DataArray:
    """Devices ``[lo, hi)`` of one variable over the whole time axis, with its ``quality`` coordinate."""
    g = store._root[group]
    dim = g.attrs["device_dim"]
    values = g[variable][:, lo:hi]
    quality = g[f"quality_{variable}"][:, lo:hi] if f"quality_{variable}" in g else None
    time = store.origin + pd.to_timedelta(g["time"][:], unit="s")
    da = xr.DataArray(
        values,
        dims=("time", dim),
        coords={"time": time, dim: g[dim][lo:hi].astype(object)},
        name=variable,
        attrs=dict(g[variable].attrs),
    )
    if quality is not None:
        da = flags.with_quality(da, quality)
    return da


def clean_store(
    store: Store,
    pipeline: Pipeline,
    *,
    source: str,
    target: str,
    group: str = "measurements",
    units: str = "",
    progress: Progress | None = None,
) -> None:
    """Apply ``pipeline`` to ``group/source`` chunk by chunk and write the result as ``group/target``, atomically."""
    g = store._root[group]
    if source not in g:
        raise StoreError(
            f"{store.path}: group {group!r} has no variable {source!r}; it has "
            f"{sorted(k for k, a in g.arrays() if a.ndim == 2)}"
        )
    chunks = list(_device_chunks(store, group, source))
    with store.batch():
        values, quality = store._variable(g, target, pipeline.name, units)
        for k, (lo, hi) in enumerate(chunks):
            cleaned = pipeline.apply(read_block(store, group, source, lo, hi))
            values[:, lo:hi] = cleaned.to_numpy()
            quality[:, lo:hi] = flags.quality_of(cleaned).to_numpy()
            if progress is not None:
                progress(k + 1, len(chunks))
        values.attrs.update({"pipeline": pipeline.to_json(), "derived_from": source, "units": units})


def sum_by(
    store: Store,
    variable: str,
    coord: str,
    *,
    group: str = "measurements",
    to_kw: bool = True,
    progress: Progress | None = None,
) -> xr.Dataset:
    """Sum ``variable`` over meters sharing a ``coord`` value (e.g. ``trafo``).

    Returns a Dataset on ``(time, coord)`` with ``p_kw`` (energy per slot turned into mean power when
    ``to_kw``; kWh per slot × slots per hour), ``n_reporting`` (meters with a value) and ``n_meters`` (meters
    mapped to that value). Meters with no ``coord`` value ("") are left out and counted in ``attrs['unmapped']``.
    """
    g = store._root[group]
    labels = g[coord][:].astype(object)
    keys, codes = np.unique(labels, return_inverse=True)
    n_time = g["time"].shape[0]
    total = np.zeros((n_time, len(keys)))
    reporting = np.zeros((n_time, len(keys)), dtype=np.int32)
    chunks = list(_device_chunks(store, group, variable))
    for k, (lo, hi) in enumerate(chunks):
        block = g[variable][:, lo:hi]
        valid = ~np.isnan(block)
        order = np.argsort(codes[lo:hi], kind="stable")
        sorted_codes = codes[lo:hi][order]
        starts = np.flatnonzero(np.r_[True, np.diff(sorted_codes) != 0])
        groups = sorted_codes[starts]
        total[:, groups] += np.add.reduceat(np.where(valid, block, 0.0)[:, order], starts, axis=1)
        reporting[:, groups] += np.add.reduceat(valid[:, order].astype(np.int32), starts, axis=1)
        if progress is not None:
            progress(k + 1, len(chunks))
    scale = pd.Timedelta("1h") / store.freq if to_kw else 1.0
    time = store.origin + pd.to_timedelta(g["time"][:], unit="s")
    mapped = keys != ""
    ds = xr.Dataset(
        {
            "p_kw": (("time", coord), total[:, mapped] * scale),
            "n_reporting": (("time", coord), reporting[:, mapped]),
            "n_meters": ((coord,), np.bincount(codes, minlength=len(keys))[mapped]),
        },
        coords={"time": time, coord: keys[mapped].astype(str)},
        attrs={"unmapped": int((labels == "").sum()), "variable": variable},
    )
    ds["p_kw"].attrs["units"] = "kW"
    return ds


def write_loads(store: Store, grid: Grid, variable: str = "energy_kwh") -> xr.Dataset:
    """Per-load P (sum of the load's meters) and Q (the Grid load's power factor) into the ``loads`` group."""
    sums = sum_by(store, variable, "load")
    unknown = sorted(set(sums["load"].values) - set(grid.load.index))
    if unknown:
        raise StoreError(
            f"meters refer to loads {unknown[:5]} that the grid does not have ({len(unknown)} in all); "
            "check the meters table's 'load' column against the grid's load ids"
        )
    p_mw = sums["p_kw"] / 1000.0
    base = grid.load.loc[p_mw["load"].values]
    ratio = np.where(base["p_mw"].to_numpy() != 0, base["q_mvar"].to_numpy() / base["p_mw"].to_numpy(), 0.0)
    q_mvar = p_mw * xr.DataArray(ratio, dims="load", coords={"load": p_mw["load"]})
    incomplete = sums["n_reporting"] < sums["n_meters"]
    ds = xr.Dataset({"p_mw": p_mw, "q_mvar": q_mvar, "incomplete": incomplete})
    ds["p_mw"].attrs.update(units="MW", derived_from=variable)
    ds["q_mvar"].attrs.update(units="Mvar", derived_from="p_mw x the grid load's q/p")
    store.write_dataset("loads", ds)
    return ds
