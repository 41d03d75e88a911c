"""N-1 contingency analysis over time: every branch outage, every step, AC power flow, summarised loadings.

Each outage reuses the base model: its Ybus is the base Ybus minus the branch's admittances on the
same pattern (:func:`scenarios.contingency_model.outage_model`), and all steps of that outage are
solved in one batch (one factorised Jacobian per group of similar steps, chord iterations over the
steps) started from the base-case voltages of each step. See ``docs/design/contingency.md``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scenarios.contingency_model import (
    InjectionSeries,
    branch_groups,
    check_outage,
    injection_series,
    outage_model,
)
from scenarios.contingency_solve import SeriesSolution, branch_loading_pct, current_matrices, solve_series
from solvers.compile import compile_grid
from solvers.model import PFModel
from solvers.powerflow import NewtonSolver, PowerFlowNotConverged, solve_voltages

if TYPE_CHECKING:
    from collections.abc import Callable

    from twin.grid import Grid

__all__ = ["default_outages", "n_minus_1"]


def default_outages(model: PFModel) -> list[str]:
    """Ids of every in-service, energised line, transformer and three-winding transformer of ``model``."""
    ids = np.asarray(model.branch_ids).astype(str)
    act = model.branch_active
    kind = np.asarray(model.branch_kind).astype(str)
    out = [str(b) for b in ids[act & (kind != "trafo3w")]]
    t3 = ids[act & (kind == "trafo3w")]
    return out + list(dict.fromkeys(b.rsplit("/", 1)[0] for b in t3))


@dataclass(slots=True)
class _Summary:
    """Per-outage summary arrays, filled row by row (outage k)."""

    converged: NDArray[np.bool_]
    iterations: NDArray[np.int64]
    max_loading_pct: NDArray[np.float64]
    worst_branch: NDArray[np.object_]
    n_overloaded: NDArray[np.int64]
    min_vm_pu: NDArray[np.float64]
    max_vm_pu: NDArray[np.float64]
    peak_loading_pct: NDArray[np.float64]
    overloaded_steps: NDArray[np.int32]

    @classmethod
    def empty(cls, n_out: int, n_t: int, n_br: int) -> _Summary:
        nan = np.full((n_out, n_t), np.nan)
        return cls(
            converged=np.zeros((n_out, n_t), dtype=bool),
            iterations=np.zeros((n_out, n_t), dtype=np.int64),
            max_loading_pct=nan.copy(),
            worst_branch=np.full((n_out, n_t), "", dtype=object),
            n_overloaded=np.zeros((n_out, n_t), dtype=np.int64),
            min_vm_pu=nan.copy(),
            max_vm_pu=nan,
            peak_loading_pct=np.full((n_out, n_br), np.nan),
            overloaded_steps=np.zeros((n_out, n_br), dtype=np.int32),
        )

    def fill(
        self, k: int, model: PFModel, sol: SeriesSolution, limit_pct: float, currents: tuple | None = None
    ) -> NDArray[np.float64]:
        """Summarise outage ``k`` (loadings of ``model`` at ``sol``); returns the (T, branch) loadings."""
        loading = branch_loading_pct(model, sol.v, currents)
        ok = sol.converged
        self.converged[k], self.iterations[k] = ok, sol.iterations
        if ok.any():
            lo = loading[ok]
            worst = np.argmax(lo, axis=1)
            self.max_loading_pct[k, ok] = lo[np.arange(len(lo)), worst]
            self.worst_branch[k, ok] = model.branch_ids[worst]
            self.n_overloaded[k, ok] = (lo > limit_pct).sum(axis=1)
            vm = np.abs(sol.v[ok][:, model.grid_bus_idx[model.grid_bus_idx >= 0]])
            self.min_vm_pu[k, ok], self.max_vm_pu[k, ok] = vm.min(axis=1), vm.max(axis=1)
            self.peak_loading_pct[k] = lo.max(axis=0)
            self.overloaded_steps[k] = (lo > limit_pct).sum(axis=0)
        return loading


def _select_steps(profiles: xr.Dataset | None, steps: slice | Sequence[int] | None) -> xr.Dataset | None:
    if profiles is None or steps is None:
        if profiles is None and steps is not None:
            raise ValueError("steps= selects time steps of profiles; pass profiles too")
        return profiles
    return profiles.isel(time=steps if isinstance(steps, slice) else list(steps))


def _progress(total: int, enabled: bool) -> Callable[[], None]:
    """A callable that advances a progress bar over the outages (stops itself after the last)."""
    if not enabled or total == 0:
        return lambda: None
    from rich.progress import Progress

    prog = Progress(transient=True)
    task = prog.add_task("N-1 contingencies", total=total)
    prog.start()

    def step() -> None:
        prog.advance(task)
        if prog.finished:
            prog.stop()

    return step


def n_minus_1(
    grid: Grid,
    profiles: xr.Dataset | None = None,
    *,
    outages: Iterable[str] | None = None,
    steps: slice | Sequence[int] | None = None,
    limit_pct: float = 100.0,
    tol_mva: float = 1e-6,
    max_iter: int = 30,
    group_size: int = 48,
    keep_loading_steps: Sequence[int] = (),
    progress: bool = False,
) -> xr.Dataset:
    """N-1 analysis: an AC power flow of every step with each branch out, summarised per outage.

    The full (outage, time, branch) cube is not kept (1,991 outages × 96 steps × 1,991 branches is
    380 M values on case1354pegase): the result holds (outage, time) summaries and (outage, branch)
    extremes over time, which is what N-1 screening reads. Re-run one outage with
    :func:`scenarios.contingency_model.outage_model` and :func:`solvers.run_pf_timeseries` for its
    full tables.

    Parameters
    ----------
    grid : Grid
    profiles : xarray.Dataset, optional
        Set-points per step with dims ``(time, <element>)``: any of ``load_p_mw``, ``load_q_mvar``,
        ``sgen_p_mw``, ``sgen_q_mvar``, ``storage_p_mw`` (MW / Mvar); elements without a column keep
        their Grid value. Without profiles one step of the Grid's own values (``time`` = [0]).
    outages : iterable of str, optional
        Line, trafo or trafo3w ids to take out one at a time. Default: every in-service one.
    steps : slice or sequence of int, optional
        Positions along ``profiles.time`` to analyse (all by default).
    limit_pct : float
        Loading (%) above which a branch counts as overloaded.
    tol_mva, max_iter : float, int
        Newton tolerance (largest bus mismatch, MVA; the default is lightsim2grid's 1e-8 pu on a 100 MVA
        base, loadings then agree with a 1e-8 MVA solve to about 1e-6 %) and iteration budget per solve.
    group_size : int
        Steps that share one factorised Jacobian (steps of similar demand are grouped).
    keep_loading_steps : sequence of int
        Positions (after ``steps``) whose full loadings are kept as ``loading_pct`` on
        (outage, ``sample_time``, branch), for spot checks.
    progress : bool
        Show a progress bar over the outages.

    Returns
    -------
    xarray.Dataset
        Dims ``outage`` (ids), ``time``, ``branch`` (all branch ids) and ``islanding`` (ids):

        - ``converged``, ``iterations``, ``max_loading_pct`` (%), ``worst_branch`` (id, "" when not
          converged), ``n_overloaded``, ``min_vm_pu``, ``max_vm_pu`` on (outage, time);
        - ``peak_loading_pct`` (%, max over converged steps, NaN if none) and ``overloaded_steps``
          on (outage, branch); the outaged branch reads 0;
        - ``base_converged``, ``base_max_loading_pct`` on time, ``base_loading_pct`` on (time, branch);
        - ``loading_pct`` on (outage, sample_time, branch) with ``keep_loading_steps``;
        - ``islanded_n_bus``, ``islanded_n_element`` on ``islanding``: outages that cut a load or
          generator off every slack. They are reported there and not solved.

        A contingency that does not converge is NaN and ``converged`` False; nothing raises.
        Attributes: ``limit_pct``, timings ``base_time_s``, ``contingency_time_s``, ``n_dead_bus_outages``
        (outages that de-energise buses without load or generator).
    """
    t0 = time.perf_counter()
    model = compile_grid(grid)
    profiles = _select_steps(profiles, steps)
    inj, time_axis = injection_series(model, profiles)
    groups = branch_groups(model, list(default_outages(model) if outages is None else dict.fromkeys(outages)))
    tol = tol_mva / model.base_mva
    base = solve_series(model, inj, _start_guess(model, inj), tol, max_iter, group_size=group_size)
    base_loading = branch_loading_pct(model, base.v)
    v_base_mean = base.v_mean
    t1 = time.perf_counter()
    checks = {o: check_outage(model, b) for o, b in groups.items()}
    solved = [o for o in groups if not checks[o].is_islanding]
    summ = _Summary.empty(len(solved), len(time_axis), len(model.branch_ids))
    tick = _progress(len(solved), progress)
    n_dead = 0
    keep = np.asarray(keep_loading_steps, dtype=np.int64)
    kept = np.empty((len(solved), len(keep), len(model.branch_ids)))
    currents = current_matrices(model)
    shared = NewtonSolver(model)
    ratio = np.where(base.converged[:, None], base.v / v_base_mean, 1.0)
    for k, o in enumerate(solved):
        dead = checks[o].dead_idx
        m_k = outage_model(model, groups[o], name=o, dead_idx=dead)
        v_guess = v_base_mean.copy()
        v_guess[dead] = 1.0
        sol = solve_series(m_k, inj, v_guess, tol, max_iter, base_ratio=ratio, group_size=group_size, solver=shared)
        n_dead += bool(len(dead))
        loading = summ.fill(k, m_k, sol, limit_pct, currents)
        kept[k] = loading[keep]
        tick()
    ds = _to_dataset(model, summ, solved, checks, time_axis, base, base_loading)
    if len(keep):
        ds["loading_pct"] = (("outage", "sample_time", "branch"), kept, {"units": "%"})
        ds = ds.assign_coords(sample_time=time_axis[keep])
    return ds.assign_attrs(
        limit_pct=limit_pct,
        base_time_s=t1 - t0,
        contingency_time_s=time.perf_counter() - t1,
        n_dead_bus_outages=n_dead,
        grid=model.name,
    )


def _start_guess(model: PFModel, inj: InjectionSeries) -> NDArray[np.complex128]:
    """Voltages at the mean injections by :func:`solvers.solve_voltages` (its DC start and retries), else flat."""
    try:
        return solve_voltages(model, inj.s_bus_pu.mean(axis=0) * model.base_mva)
    except PowerFlowNotConverged:
        return np.abs(model.v_set) * np.exp(1j * np.angle(model.v_set[model.ref_idx[0]]))


def _to_dataset(
    model: PFModel,
    summ: _Summary,
    solved: list[str],
    checks: dict,
    time_axis: NDArray,
    base: SeriesSolution,
    base_loading: NDArray[np.float64],
) -> xr.Dataset:
    ot, ob = ("outage", "time"), ("outage", "branch")
    isl = [o for o, c in checks.items() if c.is_islanding]
    base_max = np.where(base.converged, np.max(np.nan_to_num(base_loading, nan=-np.inf), axis=1), np.nan)
    ds = xr.Dataset(
        {
            "converged": (ot, summ.converged),
            "iterations": (ot, summ.iterations),
            "max_loading_pct": (ot, summ.max_loading_pct, {"units": "%"}),
            "worst_branch": (ot, summ.worst_branch),
            "n_overloaded": (ot, summ.n_overloaded),
            "min_vm_pu": (ot, summ.min_vm_pu, {"units": "pu"}),
            "max_vm_pu": (ot, summ.max_vm_pu, {"units": "pu"}),
            "peak_loading_pct": (ob, summ.peak_loading_pct, {"units": "%"}),
            "overloaded_steps": (ob, summ.overloaded_steps),
            "base_converged": ("time", base.converged),
            "base_max_loading_pct": ("time", base_max, {"units": "%"}),
            "base_loading_pct": (("time", "branch"), base_loading, {"units": "%"}),
            "islanded_n_bus": ("islanding", np.array([checks[o].n_island_bus for o in isl], dtype=np.int64)),
            "islanded_n_element": ("islanding", np.array([checks[o].n_island_element for o in isl], dtype=np.int64)),
        },
        coords={
            "outage": np.array(solved, dtype=object),
            "time": time_axis,
            "branch": np.asarray(model.branch_ids, dtype=object),
            "islanding": np.array(isl, dtype=object),
        },
    )
    return ds
