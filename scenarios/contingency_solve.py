"""Batched AC solves of one model over all steps, and the per-outage summaries of their branch loadings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scenarios.contingency_model import InjectionSeries
from solvers.model import PFModel
from solvers.powerflow import NewtonSolver

__all__ = ["SeriesSolution", "branch_loading_pct", "current_matrices", "reuse_solver", "solve_series"]


@dataclass(slots=True)
class SeriesSolution:
    """Voltages of every step (pu, compiled bus order; NaN rows where not converged) and the solver's status."""

    v: NDArray[np.complex128]
    converged: NDArray[np.bool_]
    iterations: NDArray[np.int64]
    v_mean: NDArray[np.complex128]  # solution at the mean injections (the start guess when that failed)


def reuse_solver(model: PFModel, shared: NewtonSolver | None) -> NewtonSolver:
    """A Newton solver for ``model``: ``shared`` re-pointed at its Jacobian pattern when the sparsity is the same.

    KLU's symbolic analysis (ordering, block form) depends on the Jacobian's sparsity only, and an
    outage model from :func:`scenarios.contingency_model.outage_model` keeps the base pattern's index
    arrays: the shared solver then takes the new Ybus values and skips a new analysis (its numeric
    factorisation is refreshed by the next Newton or chord step). Otherwise a new solver is built.
    """
    pat = model.cache.get("jacobian_pattern")
    if shared is not None and pat is not None and pat.indptr is shared.pattern.indptr:
        shared.pattern = pat
        shared.lu.pattern = pat  # the chord solver reads Ybus values from the LU's pattern
        shared.model = model
        return shared
    return NewtonSolver(model)


def _step_groups(inj: InjectionSeries, group_size: int) -> list[NDArray[np.int64]]:
    """Steps sorted by total active demand, cut into groups of about ``group_size`` steps of similar loading."""
    order = np.argsort(inj.s_bus_pu.real.sum(axis=1), kind="stable")
    n_groups = max(1, round(len(order) / max(group_size, 1)))
    return [g for g in np.array_split(order, n_groups) if len(g)]


def _chord_group(
    solver: NewtonSolver,
    inj: InjectionSeries,
    steps: NDArray[np.int64],
    v: NDArray[np.complex128],
    tol_pu: float,
    max_iter: int,
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """One Jacobian at the start voltages of the group's middle step, chord iterations for its steps (``v`` rows).

    No Newton solve for the factorisation point: a chord step only needs a Jacobian close to the
    solutions, and the start of the middle step is one (Newton there cost three more factorisations
    for about one chord iteration less, measured on case1354pegase outages).
    """
    vdep = (inj.s_i_pu[steps], inj.s_z_pu[steps]) if inj.has_vdep else None
    vdep_mid = None if vdep is None else (vdep[0][len(steps) // 2], vdep[1][len(steps) // 2])
    solver.factor_at(v[steps[len(steps) // 2]], vdep_mid)
    vg = v[steps]
    conv, iters = solver.solve_chord_batch(vg, inj.s_bus_pu[steps], tol_pu, max_chord=max_iter, s_vdep=vdep)
    v[steps] = vg
    return conv, iters


def solve_series(
    model: PFModel,
    inj: InjectionSeries,
    v_guess: NDArray[np.complex128],
    tol_pu: float,
    max_iter: int,
    base_ratio: NDArray[np.complex128] | None = None,
    group_size: int = 48,
    solver: NewtonSolver | None = None,
) -> SeriesSolution:
    """Solve every step of ``inj`` on ``model``: Newton at the mean point, then chord iterations by groups of steps.

    Steps are grouped by demand (:func:`_step_groups`); each group gets one Jacobian, factorised at the
    start of its middle step, and its steps iterate together on it (multi right-hand-side
    solves, threads over steps). Steps that stall get a full Newton solve of their own, except when
    Newton failed at the mean injections too: then the steps are tried from the lightest demand (the
    largest total injection) on, and the first failure ends the attempts (the heavier steps are flagged
    without a solve of their own: one collapsing outage would otherwise cost T full Newton failures).
    Nothing raises: a step that does not converge is NaN and flagged.

    Parameters
    ----------
    model : PFModel
    inj : InjectionSeries
        Scheduled injections (T, n_bus), pu.
    v_guess : ndarray of complex (n_bus,)
        Start of the mean-point Newton solve, pu.
    tol_pu : float
        Largest bus mismatch, pu of ``model.base_mva``.
    max_iter : int
        Newton iterations (also the chord budget).
    base_ratio : ndarray of complex (T, n_bus), optional
        Base-case voltage of each step over the base-case voltage at the mean injections: the steps then
        start from the outage's mean-point solution times this ratio (its magnitudes scaled and angles
        shifted as the base case moves from step to step).
    group_size : int
        Steps per shared Jacobian.
    solver : NewtonSolver, optional
        A solver to reuse (see :func:`reuse_solver`).
    """
    n_t = inj.s_bus_pu.shape[0]
    solver = reuse_solver(model, solver)
    conv = np.zeros(n_t, dtype=bool)
    iters = np.zeros(n_t, dtype=np.int64)
    mean = solver.solve(v_guess, inj.s_bus_pu.mean(axis=0), tol_pu, max_iter, inj.vdep())
    v_ref = mean.v if mean.converged else v_guess
    v = v_ref * base_ratio if base_ratio is not None and mean.converged else np.tile(v_ref, (n_t, 1))
    v = np.where(np.isfinite(v), v, v_ref)
    for steps in _step_groups(inj, group_size):
        try:
            conv[steps], iters[steps] = _chord_group(solver, inj, steps, v, tol_pu, max_iter)
        except np.linalg.LinAlgError:  # singular Jacobian at the group's mean point: Newton per step below
            v[steps] = v_ref
    left = np.flatnonzero(~conv)
    if len(left) and not mean.converged:  # probe the lightest step first: if it fails too, so would the rest
        left = left[np.argsort(inj.s_bus_pu[left].real.sum(axis=1))[::-1]]
    for t in left:
        res = solver.solve(v_ref, inj.s_bus_pu[t], tol_pu, max_iter, inj.vdep(int(t)))
        v[t], conv[t] = res.v, res.converged
        iters[t] += res.iterations
        if not mean.converged and not res.converged:
            break
    v[~conv] = np.nan
    return SeriesSolution(v, conv, iters, v_ref)


def current_matrices(model: PFModel) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Sparse maps from bus voltages (pu) to branch-end currents as a fraction of their ratings, cached on ``model``.

    Row b of the first is ``(yff V_f + yft V_t) * base_mva / (sqrt(3) vn_from_kv rate_from_ka)`` for active
    branches (inactive rows empty); the second is the same at the to end.
    """
    cached = model.cache.get("contingency_current_matrices")
    if cached is not None:
        return cached  # type: ignore[return-value]
    act = np.flatnonzero(model.branch_active)
    f, t = model.f_idx[act], model.t_idx[act]
    shape = (len(model.branch_ids), model.n_bus)
    rows = np.concatenate([act, act])
    mats = []
    for vn, rate, y_a, y_b in (
        (model.vn_from_kv, model.rate_from_ka, model.yff, model.yft),
        (model.vn_to_kv, model.rate_to_ka, model.ytf, model.ytt),
    ):
        with np.errstate(divide="ignore"):  # a zero rating gives inf, as in run_pf
            scale = model.base_mva / (np.sqrt(3.0) * vn[act] * rate[act])
        vals = np.concatenate([y_a[act] * scale, y_b[act] * scale])
        mats.append(sp.csr_matrix((vals, (rows, np.concatenate([f, t]))), shape=shape))
    out = (mats[0], mats[1])
    model.cache["contingency_current_matrices"] = out
    return out


def branch_loading_pct(
    model: PFModel, v: NDArray[np.complex128], currents: tuple[sp.csr_matrix, sp.csr_matrix] | None = None
) -> NDArray[np.float64]:
    """Loading (%) of every branch of ``model.branch_ids`` at voltages ``v`` (T, n_bus), as :func:`solvers.run_pf`.

    ``100 * max(|I_from| / rate_from, |I_to| / rate_to)`` with currents in kA; inactive branches 0,
    steps with NaN voltages NaN. ``currents`` are :func:`current_matrices` of a model with the same
    buses and branch admittances (those of the base model serve its outages: out-of-service branches
    are zeroed here).
    """
    cf, ct = current_matrices(model) if currents is None else currents
    vt = np.ascontiguousarray(v.T)
    with np.errstate(invalid="ignore"):  # inf rating scale times a zero current
        out = 100.0 * np.maximum(np.abs(cf @ vt), np.abs(ct @ vt)).T
    out[:, ~model.branch_active] = 0.0
    out[~np.isfinite(v).all(axis=1)] = np.nan
    return out
