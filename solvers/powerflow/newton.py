"""Newton-Raphson drivers around the kernels: single snapshots and batches over time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from solvers.model import PQ, REF, PFModel
from solvers.powerflow import _kernels as k
from solvers.powerflow.jacobian import JacobianPattern, build_pattern
from solvers.powerflow.linear import LinearSolver, LinearSolverName, make_linear_solver

__all__ = ["NewtonResult", "NewtonSolver", "VoltageDependence", "dc_angles", "propagated_magnitudes"]

VoltageDependence = tuple[NDArray[np.complex128], NDArray[np.complex128]]
"""``(s_i, s_z)``: constant-current and constant-impedance load shares per bus, pu at 1 pu (generator sign)."""


@dataclass(slots=True)
class NewtonResult:
    """Outcome of one Newton solve (kernel-level: positions, not ids)."""

    v: NDArray[np.complex128]
    converged: bool
    iterations: int
    worst_pu: float
    worst_eq: int


class NewtonSolver:
    """Newton-Raphson on one PFModel; keeps the Jacobian pattern and the LU between solves.

    Parameters
    ----------
    model : PFModel
    linear_solver : {"auto", "klu", "superlu"}
        Sparse LU back-end (``"auto"``: KLU when available).
    """

    def __init__(self, model: PFModel, linear_solver: LinearSolverName = "auto") -> None:
        self.model = model
        pat = model.cache.get("jacobian_pattern")
        if pat is None:
            pat = build_pattern(model)
            model.cache["jacobian_pattern"] = pat
        self.pattern: JacobianPattern = pat
        self.lu: LinearSolver = make_linear_solver(pat, linear_solver)
        self.j_data = np.zeros(len(pat.indices))
        self.f = np.zeros(pat.n_eq)
        empty = np.zeros(0, dtype=np.complex128)  # the kernels skip the voltage-dependent terms
        self.no_vdep: VoltageDependence = (empty, empty)
        # mismatch (pu) under which Newton keeps the last factorised Jacobian (chord steps): 12-17 % faster on
        # PEGASE cases, same tolerance test; 0 refactorises every iteration
        self.reuse_below = 1e-3

    def factor_at(self, v: NDArray[np.complex128], s_vdep: VoltageDependence | None = None) -> None:
        """Fill and factorise the Jacobian at ``v`` (with the voltage-dependent load shares ``s_vdep``)."""
        p = self.pattern
        s_i, s_z = self.no_vdep if s_vdep is None else s_vdep
        k.fill_jacobian(
            v, s_i, s_z, p.y_indptr, p.y_indices, p.y_data, p.pos_pt, p.pos_pv, p.pos_qt, p.pos_qv, self.j_data
        )
        self.lu.factor(self.j_data)

    def solve(
        self,
        v0: NDArray[np.complex128],
        s_bus_pu: NDArray[np.complex128],
        tol_pu: float,
        max_iter: int,
        s_vdep: VoltageDependence | None = None,
    ) -> NewtonResult:
        """Run Newton-Raphson from ``v0`` for scheduled injections ``s_bus_pu`` (pu, at 1 pu voltage).

        ``s_vdep`` = ``(s_i, s_z)`` (n,): the constant-current and constant-impedance shares of
        ``s_bus_pu`` (pu at 1 pu), which scale with |V| and |V|²; None for constant power only.
        """
        p = self.pattern
        v = v0.astype(np.complex128).copy()
        f = self.f
        s_i, s_z = self.no_vdep if s_vdep is None else s_vdep
        if getattr(self.lu, "name", "") == "klu":
            from solvers.powerflow.klu import newton_klu

            lu = self.lu
            it, worst, _ = newton_klu(
                v,
                s_bus_pu,
                s_i,
                s_z,
                p.y_indptr,
                p.y_indices,
                p.y_data,
                p.theta_var,
                p.vm_var,
                p.pos_pt,
                p.pos_pv,
                p.pos_qt,
                p.pos_qv,
                p.indptr,
                p.indices,
                self.j_data,
                lu.common,
                lu.handles,
                f,
                tol_pu,
                max_iter,
                self.reuse_below,
            )
            conv = bool(worst <= tol_pu)
            return NewtonResult(v, conv, int(it), float(worst), int(np.argmax(np.abs(f))) if p.n_eq else -1)
        it = 0
        worst = k.mismatch(v, s_bus_pu, s_i, s_z, p.y_indptr, p.y_indices, p.y_data, p.theta_var, p.vm_var, f)
        while worst > tol_pu and it < max_iter and np.isfinite(worst):
            self.factor_at(v, (s_i, s_z))
            dx = self.lu.solve(f)
            k.apply_step(v, dx, p.theta_var, p.vm_var)
            it += 1
            worst = k.mismatch(v, s_bus_pu, s_i, s_z, p.y_indptr, p.y_indices, p.y_data, p.theta_var, p.vm_var, f)
        conv = bool(worst <= tol_pu)
        worst_eq = int(np.argmax(np.abs(f))) if p.n_eq else -1
        return NewtonResult(v, conv, it, float(worst), worst_eq)

    def bus_of_equation(self, eq: int) -> int:
        """Return the compiled bus whose P or Q balance is equation ``eq``."""
        p = self.pattern
        hit = np.flatnonzero((p.theta_var == eq) | (p.vm_var == eq))
        return int(hit[0]) if len(hit) else -1

    def solve_chord_batch(
        self,
        v: NDArray[np.complex128],
        s_bus_pu: NDArray[np.complex128],
        tol_pu: float,
        max_chord: int,
        min_rate: float = 0.5,
        s_vdep: VoltageDependence | None = None,
    ) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
        """Chord (fixed-Jacobian) iterations for many steps at once, using the current LU.

        ``s_vdep`` = ``(s_i, s_z)``, each (T, n) or (1, n): voltage-dependent load shares per step
        (see :meth:`solve`). ``v`` (T, n) holds start values and is updated in place. A step leaves the batch when it
        converges, or when its mismatch falls by less than ``min_rate`` per iteration (it is then
        handed to full Newton by the caller). Returns ``converged`` (T,) and ``iterations`` (T,).
        """
        vdep = tuple(x[None, :] for x in self.no_vdep) if s_vdep is None else s_vdep
        if getattr(self.lu, "name", "") == "klu":
            import numba

            from solvers.powerflow.klu import KLUChord

            chord = KLUChord(self.lu, self.j_data, numba.get_num_threads())
            return chord.run(v, s_bus_pu, vdep, tol_pu, max_chord, min_rate)
        p = self.pattern
        n_t = v.shape[0]
        f = np.zeros((n_t, p.n_eq))  # row t = mismatch of step t
        worst = np.full(n_t, np.inf)
        prev = np.full(n_t, np.inf)
        active = np.ones(n_t, dtype=np.bool_)
        conv = np.zeros(n_t, dtype=np.bool_)
        iters = np.zeros(n_t, dtype=np.int64)
        for _ in range(max_chord + 1):
            k.mismatch_batch(
                v, s_bus_pu, *vdep, p.y_indptr, p.y_indices, p.y_data, p.theta_var, p.vm_var, f, worst, active
            )
            newly = active & (worst <= tol_pu)
            conv |= newly
            stalled = active & ~newly & ~(worst <= min_rate * prev)
            active &= ~newly & ~stalled & np.isfinite(worst)
            if not active.any():
                break
            cols = np.flatnonzero(active)
            rows = f[cols]  # (k, n_eq) C order = (n_eq, k) column-major right-hand sides
            self.lu.solve_rows(rows)
            k.apply_step_batch(v, rows, p.theta_var, p.vm_var, cols)
            iters[cols] += 1
            prev = worst.copy()
        return conv, iters


def _dc_system(model: PFModel) -> tuple[object, NDArray[np.int64], NDArray[np.float64], sp.csr_matrix]:
    """Factorised reduced B matrix of the DC power flow, cached on the model (built once)."""
    cached = model.cache.get("dc_system")
    if cached is not None:
        return cached
    act = model.branch_active
    f, t = model.f_idx[act], model.t_idx[act]
    b = model.b_dc_pu[act]
    n = model.n_bus
    bbus = sp.csr_matrix(
        (np.concatenate([b, -b, -b, b]), (np.concatenate([f, f, t, t]), np.concatenate([f, t, f, t]))), shape=(n, n)
    )
    # phase shifters act as injections: flow b * (θf - θt - shift) moves b * shift from t to f
    p_shift = np.zeros(n)
    sh = model.shift_rad[act]
    np.add.at(p_shift, f, b * sh)
    np.add.at(p_shift, t, -b * sh)
    ref = model.bus_type == REF
    free = np.flatnonzero(~ref)
    lu = sp.linalg.splu(bbus[free][:, free].tocsc()) if len(free) else None
    out = (lu, free, p_shift, bbus[free][:, np.flatnonzero(ref)])
    model.cache["dc_system"] = out
    return out


def dc_angles(model: PFModel, s_bus_pu: NDArray[np.complex128]) -> NDArray[np.float64]:
    """Solve the DC power flow for bus angles (rad), references fixed at their set-point angles."""
    lu, free, p_shift, b_ref = _dc_system(model)
    ref = model.bus_type == REF
    theta = np.angle(model.v_set) * ref
    if lu is not None:
        rhs = (s_bus_pu.real + p_shift)[free] - b_ref @ theta[ref]
        theta[free] = lu.solve(rhs)
    return theta


def propagated_magnitudes(model: PFModel) -> NDArray[np.float64] | None:
    """Start magnitudes (pu) spreading the voltage set-points over the PQ buses; None when that fails.

    Each PQ magnitude is the susceptance-weighted mean of its neighbours' (a Laplace problem over
    the branch susceptances with PV and reference magnitudes fixed). On grids where set-points
    differ across very short lines (RealGrid: 1e-4 pu lines between buses held at 1.077 and PQ
    buses started at 1.0, 2e5 MVA of initial mismatch) Newton from 1 pu diverges, from these
    magnitudes it converges in a few steps. Cached on the model.
    """
    if "propagated_magnitudes" in model.cache:
        return model.cache["propagated_magnitudes"]  # type: ignore[return-value]
    vm = np.abs(model.v_set).astype(float)
    pq = model.bus_type == PQ
    off = -model.ybus.imag.tocsr()
    off.setdiag(0.0)
    off.eliminate_zeros()
    lap = sp.diags(-np.asarray(off.sum(axis=1)).ravel()) + off
    out: NDArray[np.float64] | None = None
    if pq.any():
        try:
            vm[pq] = sp.linalg.spsolve(lap[pq][:, pq].tocsc(), -(lap[pq][:, ~pq] @ vm[~pq]))
            ok = bool(np.all(np.isfinite(vm)) and vm[pq].min() > 0.5 and vm[pq].max() < 1.5)
        except RuntimeError:  # singular: a PQ cluster tied to no set-point by positive susceptances
            ok = False
        out = vm if ok else None
    model.cache["propagated_magnitudes"] = out
    return out
