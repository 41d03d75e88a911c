"""Sparse LU back-ends for the Newton steps: factorise a fixed-pattern matrix, solve one or many RHS.

- ``"superlu"``: scipy's SuperLU (always available).
- ``"klu"``: SuiteSparse KLU through kvxopt: symbolic analysis once per pattern, numeric
  refactorisation with new values — the fastest choice for power-flow Jacobians.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from solvers.powerflow.jacobian import JacobianPattern

__all__ = ["LinearSolver", "make_linear_solver"]

LinearSolverName = Literal["auto", "klu", "superlu"]


class LinearSolver(Protocol):
    """A sparse LU of one fixed pattern."""

    def factor(self, data: NDArray[np.float64]) -> None:
        """Factorise the matrix with values ``data`` (in the pattern's CSC order)."""

    def solve(self, rhs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Solve for a vector (n,) or a block of right-hand sides (n, k)."""

    def solve_rows(self, rows: NDArray[np.float64]) -> None:
        """Solve in place for a C-ordered block (k, n) whose rows are right-hand sides."""


class SuperLUSolver:
    """scipy.sparse.linalg.splu; refactorises from scratch (ordering included) on every factor()."""

    name = "superlu"

    def __init__(self, pattern: JacobianPattern) -> None:
        self.pattern = pattern
        self._lu: sp.linalg.SuperLU | None = None

    def factor(self, data: NDArray[np.float64]) -> None:
        """Factorise."""
        self._lu = sp.linalg.splu(
            self.pattern.matrix(data.copy()), permc_spec="COLAMD", options={"SymmetricMode": False}
        )

    def solve(self, rhs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Solve."""
        assert self._lu is not None, "factor() first"
        return self._lu.solve(np.asfortranarray(rhs))

    def solve_rows(self, rows: NDArray[np.float64]) -> None:
        """Solve in place for a C-ordered block (k, n) whose rows are right-hand sides."""
        rows[:] = self.solve(rows.T).T


def make_linear_solver(pattern: JacobianPattern, name: LinearSolverName = "auto") -> LinearSolver:
    """Return a linear solver for ``pattern`` (``"auto"``: KLU when installed, else SuperLU).

    With ``NUMBA_DISABLE_JIT=1`` (coverage runs of the kernels as plain Python) KLU, which is called
    from compiled code only, is not available and ``"auto"`` gives SuperLU.
    """
    from numba import config

    if name == "auto" and config.DISABLE_JIT:
        name = "superlu"
    if name in ("auto", "klu"):
        try:
            from solvers.powerflow.klu import KLUSolver
        except ImportError:
            if name == "klu":
                raise
        else:
            return KLUSolver(pattern)
    return SuperLUSolver(pattern)
