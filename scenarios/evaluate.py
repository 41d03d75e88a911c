"""Evaluate one scenario: time-series AC power flow and its statistics (the format the runner and report read).

:func:`evaluate` returns, for one scenario (no ``scenario`` dim; the runner adds it):

- coords ``branch`` (str id), ``branch_kind`` (on branch), ``bus`` (str id), ``percentile`` (0, 5, …, 100);
- ``max_loading_pct`` (branch), ``hours_over_limit`` (branch, h with loading > 100 %),
  ``loading_duration_pct`` (branch, percentile: the loading exceeded during that share of the time, i.e. the
  descending load-duration curve sampled; 0 → maximum, 100 → minimum), ``min_vm_pu`` / ``max_vm_pu`` (bus);
- scalars ``energy_not_served_mwh`` (shed=True: load energy shed by :func:`solvers.shedding.plan_shedding` with every
  load controllable; NaN when not computed) and ``converged_share``;
- attrs ``steps``, ``step_h`` and ``warnings`` (power-flow warnings, e.g. de-energised buses, "" when none).

Statistics use the converged steps only (``converged_share`` says how many); branches or buses with no value
(out of service, de-energised) are NaN.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from solvers import run_pf_timeseries
from twin.io.load import load
from twin.io.simbench import SIMBENCH_START, SIMBENCH_STEP, is_simbench_code, read_simbench_profiles

if TYPE_CHECKING:
    from scenarios.spec import Base, Scenario
    from twin.grid import Grid

__all__ = ["PERCENTILES", "evaluate", "load_base", "read_store_profiles", "run_scenario"]

PERCENTILES = np.arange(0, 101, 5)
_PROFILE_VARS = ("load_p_mw", "load_q_mvar", "sgen_p_mw", "sgen_q_mvar", "storage_p_mw")


def evaluate(grid: Grid, profiles: xr.Dataset, *, shed: bool = False) -> xr.Dataset:
    """Run the time-series AC power flow of ``profiles`` on ``grid`` and return the statistics.

    Parameters
    ----------
    grid : Grid
        The (modified) grid.
    profiles : xarray.Dataset
        ``load_p_mw``/``load_q_mvar`` (time, load), optional ``sgen_p_mw``/``sgen_q_mvar`` (time, sgen) and
        ``storage_p_mw`` (time, storage), MW / Mvar, regular ``time``.
    shed : bool
        Also plan load shedding that removes every overload and report its energy (slower; only run when some
        branch exceeds 100 %).

    Returns
    -------
    xarray.Dataset
        See the module docstring.
    """
    time = pd.DatetimeIndex(profiles["time"].to_numpy())
    if len(time) < 2:
        raise ValueError("profiles need at least 2 time steps to evaluate")
    step_h = float((time[1] - time[0]) / pd.Timedelta("1h"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_pf_timeseries(grid, **{v: profiles[v] for v in _PROFILE_VARS if v in profiles})
    conv = res["converged"].to_numpy()
    loading = res["loading_pct"].to_numpy()[conv]
    vm = res["vm_pu"].to_numpy()[conv]
    out = xr.Dataset(
        {
            "max_loading_pct": ("branch", np.fmax.reduce(loading, axis=0, initial=np.nan)),
            "hours_over_limit": ("branch", (loading > 100.0).sum(axis=0) * step_h),
            "loading_duration_pct": (("branch", "percentile"), _duration_curve(loading)),
            "min_vm_pu": ("bus", np.fmin.reduce(vm, axis=0, initial=np.nan)),
            "max_vm_pu": ("bus", np.fmax.reduce(vm, axis=0, initial=np.nan)),
            "energy_not_served_mwh": ((), _energy_not_served(grid, profiles, loading, step_h) if shed else np.nan),
            "converged_share": ((), float(conv.mean())),
        },
        coords={
            "branch": res["branch"].to_numpy().astype(str),
            "branch_kind": ("branch", res["branch_kind"].to_numpy().astype(str)),
            "bus": res["bus"].to_numpy().astype(str),
            "percentile": PERCENTILES,
        },
        attrs={"steps": len(time), "step_h": step_h, "warnings": "; ".join(str(w.message) for w in caught)},
    )
    for var, unit in (("max_loading_pct", "%"), ("hours_over_limit", "h"), ("loading_duration_pct", "%")):
        out[var].attrs["units"] = unit
    out["min_vm_pu"].attrs["units"] = out["max_vm_pu"].attrs["units"] = "pu"
    out["energy_not_served_mwh"].attrs["units"] = "MWh"
    return out


def _duration_curve(loading: np.ndarray) -> np.ndarray:
    """(branch, percentile) loading exceeded during p % of the steps, %; NaN for branches without values."""
    n_br = loading.shape[1]
    out = np.full((n_br, len(PERCENTILES)), np.nan)
    ok = np.isfinite(loading).all(axis=0) if len(loading) else np.zeros(n_br, dtype=bool)
    if ok.any():
        out[ok] = np.quantile(loading[:, ok], 1.0 - PERCENTILES / 100.0, axis=0).T
    return out


def _energy_not_served(grid: Grid, profiles: xr.Dataset, loading: np.ndarray, step_h: float) -> float:
    """Load energy shed by :func:`solvers.shedding.plan_shedding` to remove overloads (every load controllable), MWh."""
    if not (np.nan_to_num(loading) > 100.0).any():
        return 0.0
    from solvers.shedding import plan_shedding

    ids = grid.tables["load"].index.astype(str)
    controllable = pd.DataFrame({"element_kind": "load"}, index=ids)
    plan = plan_shedding(grid, profiles, controllable=controllable)
    shed = plan.curtailment_mw
    dim = next(d for d in shed.dims if d != "time")
    return float(shed.sel({dim: shed[dim].isin(ids)}).sum()) * step_h


# -- one scenario end to end -------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def load_base(base: Base) -> tuple[Grid, xr.Dataset]:
    """Return the base grid and its profiles over the base period (cached per process; do not modify them).

    With ``base.store`` the profiles are the store's measured series (:func:`read_store_profiles`); otherwise
    they come from SimBench, which needs a SimBench code as ``base.grid``.
    """
    if base.store is not None:
        grid = load(base.grid)
        return grid, read_store_profiles(base.store, grid, pd.Timestamp(base.start), pd.Timestamp(base.stop))
    if not is_simbench_code(base.grid):
        raise ValueError(
            f"base grid {base.grid!r}: profiles come from SimBench only for SimBench codes (such as "
            "'1-MV-urban--0-sw'); for another grid give 'store:' (a gridtwin store with a 'loads' group)"
        )
    first = int((pd.Timestamp(base.start) - SIMBENCH_START) / SIMBENCH_STEP)
    last = int(np.ceil((pd.Timestamp(base.stop) - SIMBENCH_START) / SIMBENCH_STEP))
    if first < 0 or last > 35_136:
        raise ValueError(f"base period {base.start}..{base.stop} lies outside the SimBench year 2016")
    return load(base.grid), read_simbench_profiles(base.grid, steps=slice(first, last))


def read_store_profiles(path: str, grid: Grid, start: pd.Timestamp, stop: pd.Timestamp) -> xr.Dataset:
    """Read a store's input groups over ``[start, stop)`` as scenario profiles for ``grid``.

    Groups (``twin.timeseries.powerflow.INPUT_GROUPS``, as ``write_profiles`` and ``derive.write_loads`` write
    them): ``loads`` (``p_mw``, ``q_mvar`` on (time, load)) is required; ``sgens`` (``p_mw``, optional
    ``q_mvar``) and ``storage`` (``p_mw``) are read when present (without them those elements run at their
    grid-table power). Store ids are grid ids; each group must hold exactly the grid's in-service elements of
    its kind, with a value at every step of the period.

    Returns
    -------
    xarray.Dataset
        ``load_p_mw``, ``load_q_mvar`` (time, load), ``sgen_p_mw`` … in grid-table order, MW / Mvar.

    Raises
    ------
    ValueError
        Naming the store, group and ids or steps when the store lacks the ``loads`` group, does not cover the
        period, has ids the grid lacks (or lacks grid ids) or has missing values.
    """
    from twin.timeseries.powerflow import INPUT_GROUPS
    from twin.timeseries.store import Store

    store = Store.open(path, mode="r")
    if "loads" not in store.groups():
        raise ValueError(
            f"store {path} has no 'loads' group (it has {store.groups()}); write one from meters "
            "(twin.timeseries.derive.write_loads) or from profiles (twin.timeseries.powerflow.write_profiles)"
        )
    out = {}
    for group, names in INPUT_GROUPS.items():
        if group not in store.groups():
            continue
        kind = group.rstrip("s")
        ds = _period(store.dataset(group), path, group, start, stop)
        ids = _grid_ids(grid, kind, ds[kind].to_numpy().astype(str), path, group)
        for name in names:
            var = name.split("_", 1)[1]
            if var not in ds:
                if name in ("load_p_mw", "load_q_mvar", "sgen_p_mw", "storage_p_mw"):
                    raise ValueError(f"store {path}, group {group!r}: no {var!r} variable; it has {list(ds)}")
                continue
            da = ds[var].load().transpose("time", kind)
            da = da.assign_coords({kind: da[kind].to_numpy().astype(str).astype(object)}).sel({kind: ids})
            _check_finite(da, path, group, var)
            out[name] = da.drop_vars([c for c in da.coords if c not in ("time", kind)]).assign_attrs(
                units="Mvar" if var.endswith("mvar") else "MW"
            )
    return xr.Dataset(out, attrs={"source": f"store {path}"})


def _period(ds: xr.Dataset, path: str, group: str, start: pd.Timestamp, stop: pd.Timestamp) -> xr.Dataset:
    """The steps of ``ds`` in ``[start, stop)``; raise when the group does not cover the period."""
    time = pd.DatetimeIndex(ds["time"].to_numpy())
    if len(time) < 2:
        raise ValueError(f"store {path}, group {group!r}: fewer than 2 time steps")
    step = time[1] - time[0]
    inside = (time >= start) & (time < stop)
    expected = int(np.ceil((stop - start) / step))
    if inside.sum() != expected or time[inside][0] != start:
        raise ValueError(
            f"store {path}, group {group!r} covers {time[0]} .. {time[-1]} (step {step}) with {int(inside.sum())} "
            f"of the {expected} steps of the base period {start} .. {stop}; choose 'start'/'days' inside it"
        )
    return ds.isel(time=np.flatnonzero(inside))


def _grid_ids(grid: Grid, kind: str, store_ids: np.ndarray, path: str, group: str) -> list[str]:
    """The grid's in-service ``kind`` ids in table order; raise when the store's ids differ from them."""
    table = grid.tables[kind]
    wanted = table.index[table["in_service"].astype(bool)].astype(str)
    unknown = pd.Index(store_ids).difference(table.index.astype(str))
    missing = wanted.difference(pd.Index(store_ids))
    if len(unknown) or len(missing):
        raise ValueError(
            f"store {path}, group {group!r} does not match grid {grid.name!r}: "
            + (
                f"{len(unknown)} store id(s) the grid has no {kind} of, e.g. {unknown[:5].tolist()}; "
                if len(unknown)
                else ""
            )
            + (
                f"{len(missing)} in-service grid {kind}(s) without a series, e.g. {missing[:5].tolist()}; "
                if len(missing)
                else ""
            )
            + f"grid ids look like {table.index[:3].astype(str).tolist()}: use a store derived for this grid"
        )
    return list(table.index[table.index.astype(str).isin(store_ids)].astype(str))


def _check_finite(da: xr.DataArray, path: str, group: str, var: str) -> None:
    """Raise naming the first missing value (element id and time) of a store series."""
    bad = ~np.isfinite(da.to_numpy())
    if bad.any():
        t, e = np.argwhere(bad)[0]
        raise ValueError(
            f"store {path}, group {group!r}, {var}: {int(bad.sum())} missing value(s) in the base period, first "
            f"{da.dims[1]} {da[da.dims[1]].to_numpy()[e]!r} at {pd.Timestamp(da['time'].to_numpy()[t])}; "
            "fill the gaps (gridtwin clean) or choose a period without them"
        )


def run_scenario(scenario: Scenario, base: Base, *, shed: bool = False) -> xr.Dataset:
    """Load the base (cached), apply ``scenario`` and evaluate it; attrs get ``scenario`` (its name).

    With ``ev`` modifications the attrs also carry ``ev_unserved_kwh`` and ``ev_sessions_short`` (see
    :mod:`scenarios.modify`).

    Parameters
    ----------
    scenario : Scenario
    base : Base
    shed : bool
        As :func:`evaluate`.
    """
    from scenarios.modify import apply

    grid, profiles = load_base(base)
    new_grid, new_profiles = apply(scenario, grid, profiles)
    out = evaluate(new_grid, new_profiles, shed=shed)
    if scenario.n_minus_1:
        out = out.merge(n_minus_1_statistics(new_grid, new_profiles))
    out.attrs["scenario"] = scenario.name
    for key in ("ev_unserved_kwh", "ev_sessions_short"):  # EV energy that did not fit before departure
        if key in new_profiles.attrs:
            out.attrs[key] = new_profiles.attrs[key]
    return out


def n_minus_1_statistics(grid: Grid, profiles: xr.Dataset, limit_pct: float = 100.0) -> xr.Dataset:
    """N-1 over the scenario's period (:func:`scenarios.contingency.n_minus_1`) summarised per branch.

    ``n1_max_loading_pct`` (branch): the highest post-contingency loading over all outages and steps;
    ``n1_outages_overloading`` (branch): how many outages overload the branch at some step; ``n1_islanding_outages``:
    outages that cut off load or generation (not solved, counted); ``n1_unsolved_share``: share of (outage, step)
    pairs that did not converge.
    """
    from scenarios.contingency import n_minus_1

    inputs = [v for v in ("load_p_mw", "load_q_mvar", "sgen_p_mw", "storage_p_mw") if v in profiles]
    n1 = n_minus_1(grid, profiles[inputs], limit_pct=limit_pct)
    return xr.Dataset(
        {
            "n1_max_loading_pct": n1["peak_loading_pct"].max("outage", skipna=True),
            "n1_outages_overloading": (n1["overloaded_steps"] > 0).sum("outage"),
            "n1_islanding_outages": n1.sizes.get("islanding", 0),
            "n1_unsolved_share": 1.0 - float(n1["converged"].mean()),
        }
    )
