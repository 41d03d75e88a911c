"""SuiteSparse KLU called from numba (no Python objects per Newton iteration).

The KLU shared library comes with ``kvxopt`` (its ``kvxopt.libs`` folder); its C functions are
bound as numba external functions, so a whole Newton solve — mismatch, Jacobian values, numeric
refactorisation on the fixed pattern, triangular solves, voltage update — runs in one compiled
function. Symbolic analysis (AMD ordering, block triangular form) happens once per Jacobian
pattern; ``klu_refactor`` reuses the pivot sequence, and a failed or non-finite refactorisation
falls back to a full ``klu_factor`` with fresh pivoting (as lightsim2grid does).

Importing this module raises ImportError when the library cannot be found; callers then fall
back to SciPy's SuperLU.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from numba import njit, prange, types
from numpy.typing import NDArray

from solvers.powerflow import _kernels as k
from solvers.powerflow.jacobian import JacobianPattern

__all__ = ["KLUSolver", "newton_klu"]


def _find_klu() -> str:
    import kvxopt

    libdir = Path(kvxopt.__file__).parent.parent / "kvxopt.libs"
    found = sorted(libdir.glob("libklu*.so*"))
    if not found:
        raise ImportError(f"no libklu in {libdir}; reinstall kvxopt or use linear_solver='superlu'")
    return str(found[0])


llvm.load_library_permanently(_find_klu())

_P, _I = types.uintp, types.int32
klu_defaults = types.ExternalFunction("klu_defaults", _I(_P))
klu_analyze = types.ExternalFunction("klu_analyze", _P(_I, _P, _P, _P))
klu_factor = types.ExternalFunction("klu_factor", _P(_P, _P, _P, _P, _P))
klu_refactor = types.ExternalFunction("klu_refactor", _I(_P, _P, _P, _P, _P, _P))
klu_solve = types.ExternalFunction("klu_solve", _I(_P, _P, _I, _I, _P, _P))
klu_free_numeric = types.ExternalFunction("klu_free_numeric", _I(_P, _P))
klu_free_symbolic = types.ExternalFunction("klu_free_symbolic", _I(_P, _P))

# int32 slots of klu_common after its five leading doubles: btf, ordering, scale
_SCALE_SLOT = 12


@njit(cache=True)
def _klu_init(ap, ai, common, h):
    klu_defaults(common.ctypes.data)
    common.view(np.int32)[_SCALE_SLOT] = 0  # no row scaling: ~15 % faster, residuals unchanged on PF Jacobians
    h[0] = klu_analyze(np.int32(ap.size - 1), ap.ctypes.data, ai.ctypes.data, common.ctypes.data)
    h[1] = 0
    return h[0] != 0


@njit(cache=True)
def _klu_factor(ap, ai, ax, common, h):
    """(Re)factorise values ``ax``; refactor on the kept pivots, full factor when that fails."""
    if h[1] != 0:
        if klu_refactor(ap.ctypes.data, ai.ctypes.data, ax.ctypes.data, h[0], h[1], common.ctypes.data) == 1:
            return True
        klu_free_numeric(h[1:].ctypes.data, common.ctypes.data)
        h[1] = 0
    h[1] = klu_factor(ap.ctypes.data, ai.ctypes.data, ax.ctypes.data, h[0], common.ctypes.data)
    return h[1] != 0


@njit(cache=True)
def _klu_full_factor(ap, ai, ax, common, h):
    if h[1] != 0:
        klu_free_numeric(h[1:].ctypes.data, common.ctypes.data)
        h[1] = 0
    h[1] = klu_factor(ap.ctypes.data, ai.ctypes.data, ax.ctypes.data, h[0], common.ctypes.data)
    return h[1] != 0


@njit(cache=True)
def _klu_solve(ap, common, h, b):
    n = ap.size - 1
    return klu_solve(h[0], h[1], np.int32(n), np.int32(b.size // n), b.ctypes.data, common.ctypes.data) == 1


@njit(cache=True)
def _klu_free(common, h):
    if h[1] != 0:
        klu_free_numeric(h[1:].ctypes.data, common.ctypes.data)
    if h[0] != 0:
        klu_free_symbolic(h[0:].ctypes.data, common.ctypes.data)
    h[0] = 0
    h[1] = 0


@njit(cache=True)
def newton_klu(
    v,
    s_bus,
    s_i,
    s_z,
    y_indptr,
    y_indices,
    y_data,
    theta_var,
    vm_var,
    pos_pt,
    pos_pv,
    pos_qt,
    pos_qv,
    j_indptr,
    j_indices,
    j_data,
    common,
    h,
    f,
    tol,
    max_iter,
    reuse_below,
):
    """Newton-Raphson in one compiled loop; ``v`` updated in place. Returns (iterations, worst mismatch, ok).

    ``s_bus`` is the scheduled injection at 1 pu, ``s_i``/``s_z`` the voltage-dependent load shares
    (see :func:`solvers.powerflow._kernels.mismatch`).

    Once the mismatch is below ``reuse_below`` (pu) the last factorised Jacobian is kept for the
    remaining steps (a chord step costs a solve instead of a refactorisation, and near the
    solution the Jacobian barely changes); the tolerance test is unchanged.
    """
    it = 0
    factored = False
    worst = k.mismatch(v, s_bus, s_i, s_z, y_indptr, y_indices, y_data, theta_var, vm_var, f)
    while worst > tol and it < max_iter and np.isfinite(worst):
        if not (factored and worst < reuse_below):
            k.fill_jacobian(v, s_i, s_z, y_indptr, y_indices, y_data, pos_pt, pos_pv, pos_qt, pos_qv, j_data)
            if not _klu_factor(j_indptr, j_indices, j_data, common, h):
                return it, worst, False
            factored = True
        dx = f.copy()
        _klu_solve(j_indptr, common, h, dx)
        if not np.all(np.isfinite(dx)):
            # pivots kept from an earlier point went bad: factorise afresh and solve again
            k.fill_jacobian(v, s_i, s_z, y_indptr, y_indices, y_data, pos_pt, pos_pv, pos_qt, pos_qv, j_data)
            if not _klu_full_factor(j_indptr, j_indices, j_data, common, h):
                return it, worst, False
            dx[:] = f
            _klu_solve(j_indptr, common, h, dx)
        k.apply_step(v, dx, theta_var, vm_var)
        it += 1
        worst = k.mismatch(v, s_bus, s_i, s_z, y_indptr, y_indices, y_data, theta_var, vm_var, f)
    return it, worst, True


class KLUSolver:
    """Linear solver on a fixed pattern: symbolic analysis once, numeric refactorisation per call."""

    name = "klu"

    def __init__(self, pattern: JacobianPattern) -> None:
        self.pattern = pattern
        self.common = np.zeros(64)  # klu_common scratch (larger than the struct)
        self.handles = np.zeros(2, dtype=np.uintp)  # Symbolic*, Numeric*
        if not _klu_init(pattern.indptr, pattern.indices, self.common, self.handles):
            raise RuntimeError("KLU symbolic analysis failed on the Jacobian pattern")
        self._finalizer = weakref.finalize(self, _klu_free, self.common, self.handles)

    def factor(self, data: NDArray[np.float64]) -> None:
        """Factorise the matrix with values ``data`` (CSC order of the pattern)."""
        self._data = np.ascontiguousarray(data, dtype=np.float64)
        if not _klu_full_factor(self.pattern.indptr, self.pattern.indices, self._data, self.common, self.handles):
            raise np.linalg.LinAlgError(
                "KLU factorisation failed: the Jacobian is singular (islanded bus without slack?)"
            )

    def refactor(self, data: NDArray[np.float64]) -> None:
        """Refactorise on the kept pivots (falls back to a full factorisation)."""
        self._data = np.ascontiguousarray(data, dtype=np.float64)
        if not _klu_factor(self.pattern.indptr, self.pattern.indices, self._data, self.common, self.handles):
            raise np.linalg.LinAlgError("KLU factorisation failed: the Jacobian is singular")

    def solve_rows(self, rows: NDArray[np.float64]) -> None:
        """Solve in place for a C-ordered block ``rows`` (k, n): each row is one right-hand side."""
        _klu_solve(self.pattern.indptr, self.common, self.handles, rows)

    def solve(self, rhs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Solve for a vector (n,) or a block (n, k) of right-hand sides."""
        b = np.array(rhs, dtype=np.float64, order="F", copy=True)
        _klu_solve(self.pattern.indptr, self.common, self.handles, b)
        return b


@njit(cache=True)
def _chord_block(
    v,
    s_bus,
    s_i,
    s_z,
    lo,
    hi,
    y_indptr,
    y_indices,
    y_data,
    theta_var,
    vm_var,
    j_indptr,
    common,
    sym,
    num,
    tol,
    max_chord,
    min_rate,
    batch,
    conv,
    iters,
):
    """Chord iterations for steps lo..hi in sub-batches of ``batch`` steps with one factorised Jacobian."""
    n_eq = j_indptr.size - 1
    last = s_i.shape[0] - 1
    f = np.empty((batch, n_eq))
    rows = np.empty(batch, dtype=np.int64)
    prev = np.empty(batch)
    active = np.empty(batch, dtype=np.bool_)
    for start in range(lo, hi, batch):
        stop = min(start + batch, hi)
        m = stop - start
        for c in range(m):
            active[c] = True
            prev[c] = np.inf
        for _ in range(max_chord + 1):
            # mismatch of the active steps, packed into the first rows of f
            cnt = 0
            for c in range(m):
                if not active[c]:
                    continue
                t = start + c
                r = min(t, last)
                w = k.mismatch(v[t], s_bus[t], s_i[r], s_z[r], y_indptr, y_indices, y_data, theta_var, vm_var, f[cnt])
                if w <= tol:
                    conv[t] = True
                    active[c] = False
                elif not (w <= min_rate * prev[c]) or not np.isfinite(w):
                    active[c] = False  # stalled: left to full Newton
                else:
                    prev[c] = w
                    rows[cnt] = c
                    cnt += 1
            if cnt == 0:
                break
            klu_solve(sym, num, np.int32(n_eq), np.int32(cnt), f.ctypes.data, common.ctypes.data)
            for r in range(cnt):
                t = start + rows[r]
                iters[t] += 1
                k.apply_step(v[t], f[r], theta_var, vm_var)


@njit(cache=True, parallel=True)
def chord_klu_parallel(
    v,
    s_bus,
    s_i,
    s_z,
    y_indptr,
    y_indices,
    y_data,
    theta_var,
    vm_var,
    j_indptr,
    commons,
    sym,
    nums,
    tol,
    max_chord,
    min_rate,
    batch,
    conv,
    iters,
):
    """Split the steps into ``len(nums)`` contiguous blocks solved in parallel, one KLU numeric object each."""
    n_threads = nums.shape[0]
    n_t = v.shape[0]
    for b in prange(n_threads):
        lo = b * n_t // n_threads
        hi = (b + 1) * n_t // n_threads
        _chord_block(
            v,
            s_bus,
            s_i,
            s_z,
            lo,
            hi,
            y_indptr,
            y_indices,
            y_data,
            theta_var,
            vm_var,
            j_indptr,
            commons[b],
            sym,
            nums[b],
            tol,
            max_chord,
            min_rate,
            batch,
            conv,
            iters,
        )


@njit(cache=True)
def _klu_factor_copy(ap, ai, ax, common, sym):
    klu_defaults(common.ctypes.data)
    common.view(np.int32)[_SCALE_SLOT] = 0
    return klu_factor(ap.ctypes.data, ai.ctypes.data, ax.ctypes.data, sym, common.ctypes.data)


@njit(cache=True)
def _klu_free_numerics(commons, nums):
    for b in range(nums.shape[0]):
        if nums[b] != 0:
            klu_free_numeric(nums[b:].ctypes.data, commons[b].ctypes.data)
            nums[b] = 0


class KLUChord:
    """Numeric factorisations of one Jacobian, one per thread, for the parallel chord solver."""

    def __init__(self, solver: KLUSolver, data: NDArray[np.float64], n_threads: int) -> None:
        p = solver.pattern
        self.solver = solver  # keeps the shared symbolic analysis alive
        self.commons = np.zeros((n_threads, 64))
        self.nums = np.zeros(n_threads, dtype=np.uintp)
        self._data = np.ascontiguousarray(data, dtype=np.float64)
        for b in range(n_threads):
            self.nums[b] = _klu_factor_copy(p.indptr, p.indices, self._data, self.commons[b], solver.handles[0])
        self._finalizer = weakref.finalize(self, _klu_free_numerics, self.commons, self.nums)
        if (self.nums == 0).any():
            raise np.linalg.LinAlgError("KLU factorisation failed: the Jacobian is singular")

    def run(
        self,
        v: NDArray[np.complex128],
        s_bus: NDArray[np.complex128],
        s_vdep: tuple[NDArray[np.complex128], NDArray[np.complex128]],
        tol: float,
        max_chord: int,
        min_rate: float = 0.5,
        batch: int = 64,
    ) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
        """Chord iterations on all steps of ``v`` (T, n), in place; returns converged and iterations per step.

        ``s_vdep`` = (``s_i``, ``s_z``), each (T, n) or (1, n): voltage-dependent load shares, pu.
        """
        p = self.solver.pattern
        conv = np.zeros(v.shape[0], dtype=np.bool_)
        iters = np.zeros(v.shape[0], dtype=np.int64)
        chord_klu_parallel(
            v,
            s_bus,
            s_vdep[0],
            s_vdep[1],
            p.y_indptr,
            p.y_indices,
            p.y_data,
            p.theta_var,
            p.vm_var,
            p.indptr,
            self.commons,
            self.solver.handles[0],
            self.nums,
            tol,
            max_chord,
            min_rate,
            batch,
            conv,
            iters,
        )
        return conv, iters
