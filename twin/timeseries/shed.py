"""Shedding plans over a store (``gridtwin shed``): stored forecasts → one member → ``plan_shedding`` → plan written.

The store's ``forecasts`` group (written by ``gridtwin predict``) holds ``(quantile, time, element)`` forecasts of
loads, static generators and storage. A plan is computed for one member: loads and storage at ``load_quantile``,
generators at ``gen_quantile`` (the median of both by default; ``load_quantile=0.1, gen_quantile=0.9`` plans for a
sunny, quiet day — the PV-overload worst case — and ``0.9 / 0.1`` for the load-driven one). Only devices with a
working path in the communication layer are used, unless ``controllable="all"`` (benchmarks, studies).
The plan goes to the store's ``plan`` group and to ``<store>.plans/<plan_id>.json``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from twin.timeseries.store import Store, StoreError

if TYPE_CHECKING:
    from solvers.shedding import ControlPlan
    from twin.comm import CommLayer
    from twin.grid import Grid


@dataclass
class StorePlan:
    """A plan computed over a store: the plan, its id, the member's profiles and where it was written."""

    plan: ControlPlan
    plan_id: str
    profiles: xr.Dataset
    json_path: Path | None


def forecast_member(
    store: Store, *, horizon: str | None = None, load_quantile: float = 0.5, gen_quantile: float = 0.5
) -> xr.Dataset:
    """One member of the stored forecasts as ``(time, element)`` profiles (``load_p_mw`` …), cut to ``horizon``."""
    if "forecasts" not in store.groups():
        raise StoreError(f"{store.path} has no forecasts; run 'gridtwin predict {store.path} --grid CASE' first")
    fc = store.dataset("forecasts").load()
    levels = [float(q) for q in fc["quantile"].values]
    for q in (load_quantile, gen_quantile):
        if not any(np.isclose(q, levels)):
            raise ValueError(f"the stored forecasts have quantiles {levels}; pick one of them, not {q}")
    out = {}
    for name, da in fc.data_vars.items():
        level = gen_quantile if name == "sgen_p_mw" else load_quantile
        out[name] = da.sel(quantile=level, method="nearest", drop=True)
    ds = xr.Dataset(out)
    if horizon is not None:
        t0 = pd.Timestamp(ds["time"].values[0])
        ds = ds.sel(time=ds["time"] < np.datetime64(t0 + pd.Timedelta(horizon)))
    if "sgen_p_mw" in ds:
        ds["sgen_p_mw"] = ds["sgen_p_mw"].clip(min=0.0)
    return ds.assign_attrs(issued=fc.attrs.get("issued", ""), load_quantile=load_quantile, gen_quantile=gen_quantile)


def controllable_devices(grid: Grid, comm: CommLayer) -> pd.DataFrame:
    """Reachable controllable devices with the gateway their commands go through.

    Elements with a controller in ``comm`` count as controllable even where the grid file does not mark them (a
    grid loaded from a SimBench code or a MATPOWER file has no ``controllable`` marks; the comm layer knows which
    devices were fitted with a controller).
    """
    from twin.graph import MultiLayerGraph

    grid = grid.copy()
    ctrl = comm.devices[comm.devices["kind"] == "controller"]
    for kind in ("load", "sgen", "storage"):
        table = grid.tables[kind]
        fitted = table.index.isin(ctrl.loc[ctrl["element_kind"] == kind, "element"])
        table["controllable"] = table["controllable"].astype(bool) | fitted
    now = MultiLayerGraph.from_grid(grid, comm).controllable_now()
    reach = comm.reachability()
    now["gateway"] = reach["gateway"].reindex(now["controller"]).fillna("").to_numpy()
    return now


def shed_store(
    store: Store,
    grid: Grid,
    *,
    comm: CommLayer | str | None,
    assets: list[str] | None = None,
    horizon: str | None = "24h",
    load_quantile: float = 0.5,
    gen_quantile: float = 0.5,
    write: bool = True,
    profiles: xr.Dataset | None = None,
    **options: Any,
) -> StorePlan:
    """Compute (and write) a shedding plan for the stored forecasts (see the module docstring).

    ``comm``: the communication layer (reachable devices only), or ``"all"`` for every load, generator and storage
    unit; ``options`` go to :func:`solvers.shedding.plan_shedding` (``margin``, ``discrete``, ``max_iter`` …).
    ``profiles``: the member already read with :func:`forecast_member` (same horizon and quantiles), so a caller can
    read the store under its lock and plan without holding it.
    """
    from solvers.shedding import plan_shedding

    if comm is None:
        raise ValueError(
            "which devices can be reached? pass the communication layer (gridtwin shed --comm DIR), or "
            "--all-controllable to let the plan use every load, generator and storage unit"
        )
    if profiles is None:
        profiles = forecast_member(store, horizon=horizon, load_quantile=load_quantile, gen_quantile=gen_quantile)
    controllable = None if isinstance(comm, str) and comm == "all" else controllable_devices(grid, comm)
    plan = plan_shedding(grid, profiles, controllable=controllable, assets=assets, **options)
    issued = str(profiles.attrs.get("issued") or pd.Timestamp(profiles["time"].values[0]))
    digest = hashlib.sha256(repr((issued, sorted(assets or []), load_quantile, gen_quantile)).encode()).hexdigest()
    plan_id = f"plan-{pd.Timestamp(issued):%Y%m%dT%H%M}-{digest[:8]}"
    json_path = None
    if write:
        store.write_dataset("plan", plan.to_dataset().assign_attrs(plan_id=plan_id, issued=issued))
        folder = Path(str(store.path) + ".plans")
        folder.mkdir(exist_ok=True)
        json_path = folder / f"{plan_id}.json"
        plan.to_json(json_path)
    return StorePlan(plan, plan_id, profiles, json_path)
