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

__all__ = ["PERCENTILES", "evaluate", "load_base", "run_scenario"]

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

    Profiles come from SimBench for SimBench codes; other grids need measured profiles from ``base.store``,
    which is not read yet.
    """
    if not is_simbench_code(base.grid):
        raise ValueError(
            f"base grid {base.grid!r}: profiles are only available for SimBench codes so far "
            "(reading them from 'store' is not implemented); use a SimBench code such as '1-MV-urban--0-sw'"
        )
    first = int((pd.Timestamp(base.start) - SIMBENCH_START) / SIMBENCH_STEP)
    last = int(np.ceil((pd.Timestamp(base.stop) - SIMBENCH_START) / SIMBENCH_STEP))
    if first < 0 or last > 35_136:
        raise ValueError(f"base period {base.start}..{base.stop} lies outside the SimBench year 2016")
    return load(base.grid), read_simbench_profiles(base.grid, steps=slice(first, last))


def run_scenario(scenario: Scenario, base: Base, *, shed: bool = False) -> xr.Dataset:
    """Load the base (cached), apply ``scenario`` and evaluate it; attrs get ``scenario`` (its name).

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
