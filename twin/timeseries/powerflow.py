"""Time-series AC power flow over a store: stream time windows through ``solvers.run_pf_timeseries``.

Inputs come from the store's ``loads`` group (``p_mw``, ``q_mvar`` on ``(time, load)``) and, when present, ``sgens``
(``p_mw``, optional ``q_mvar`` on ``(time, sgen)``) and ``storage`` (``p_mw``); results go to the ``results`` group,
one journal batch per window, so memory is bounded by the window (``window`` slots × buses/branches), not by the
length of the series, and an interrupted run keeps every window it finished.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from twin.timeseries.store import Store, StoreError

if TYPE_CHECKING:
    from twin.grid import Grid

INPUT_GROUPS = {
    "loads": ("load_p_mw", "load_q_mvar"),
    "sgens": ("sgen_p_mw", "sgen_q_mvar"),
    "storage": ("storage_p_mw",),
}


@dataclass
class StorePFReport:
    """What a store power-flow run did."""

    steps: int = 0
    windows: int = 0
    not_converged: int = 0
    solve_s: float = 0.0
    io_s: float = 0.0
    min_vm_pu: float = np.inf
    max_loading_pct: float = 0.0
    warnings: list[str] = field(default_factory=list)


def write_profiles(store: Store, profiles: xr.Dataset) -> None:
    """Write profiles named like ``twin.read_simbench_profiles``'s (``load_p_mw`` …) as the store's input groups."""
    for group, names in INPUT_GROUPS.items():
        present = [n for n in names if n in profiles]
        if not present:
            continue
        ds = xr.Dataset({n.split("_", 1)[1]: profiles[n] for n in present})
        ds = ds.rename({d: group.rstrip("s") for d in ds.dims if d != "time"})
        store.write_dataset(group, ds)


def _inputs(store: Store, start: int, stop: int) -> dict[str, xr.DataArray]:
    out: dict[str, xr.DataArray] = {}
    for group, names in INPUT_GROUPS.items():
        if group not in store.groups():
            continue
        ds = store.dataset(group).isel(time=slice(start, stop))
        for name in names:
            var = name.split("_", 1)[1]
            if var in ds:
                da = ds[var].load()
                out[name] = da.assign_coords({d: da[d].to_numpy().astype(object) for d in da.dims if d != "time"})
    return out


def run_pf_store(
    store: Store,
    grid: Grid,
    *,
    window: int = 2976,
    method: str = "auto",
    tol_mva: float = 1e-8,
    results: str = "results",
    progress: Callable[[int, int], None] | None = None,
) -> StorePFReport:
    """Solve every time step of the store's input groups and write the results group window by window."""
    import solvers

    if "loads" not in store.groups():
        raise StoreError(
            f"{store.path} has no 'loads' group; write one from meters (twin.timeseries.derive.write_loads) or "
            "from profiles (write_profiles) first"
        )
    n_time = store.dataset("loads").sizes["time"]
    model = solvers.compile_grid(grid)
    report = StorePFReport()
    for k, start in enumerate(range(0, n_time, window)):
        stop = min(n_time, start + window)
        t0 = _time.perf_counter()
        inputs = _inputs(store, start, stop)
        t1 = _time.perf_counter()
        ds = solvers.run_pf_timeseries(model, **inputs, method=method, tol_mva=tol_mva)  # type: ignore[arg-type]
        t2 = _time.perf_counter()
        ds.attrs = {key: str(v) for key, v in ds.attrs.items() if key != "solve_time_s"}
        if k:
            ds = ds.drop_vars([v for v in ds.variables if "time" not in ds[v].dims])
        store.write_dataset(results, ds, append_dim="time" if k else None)
        report.io_s += t1 - t0 + _time.perf_counter() - t2
        report.solve_s += t2 - t1
        report.steps += stop - start
        report.windows += 1
        report.not_converged += int((~ds["converged"]).sum())
        report.min_vm_pu = min(report.min_vm_pu, float(ds["vm_pu"].min()))
        report.max_loading_pct = max(report.max_loading_pct, float(ds["loading_pct"].max()))
        if progress is not None:
            progress(stop, n_time)
    return report
