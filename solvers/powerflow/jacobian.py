"""Fixed sparsity of the Newton Jacobian, built once per PFModel (numpy, vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from solvers.model import PQ, REF, PFModel

__all__ = ["JacobianPattern", "build_pattern"]


@dataclass(frozen=True, slots=True)
class JacobianPattern:
    """Unknown numbering and the CSC pattern of the Jacobian with Ybus → J scatter maps."""

    n_eq: int
    theta_var: NDArray[np.int64]
    vm_var: NDArray[np.int64]
    indptr: NDArray[np.int32]  # CSC
    indices: NDArray[np.int32]
    pos_pt: NDArray[np.int64]
    pos_pv: NDArray[np.int64]
    pos_qt: NDArray[np.int64]
    pos_qv: NDArray[np.int64]
    y_indptr: NDArray[np.int32]
    y_indices: NDArray[np.int32]
    y_data: NDArray[np.complex128]

    def matrix(self, data: NDArray[np.float64]) -> sp.csc_matrix:
        """Return the Jacobian with values ``data`` as a scipy CSC matrix (shares the arrays)."""
        return sp.csc_matrix((data, self.indices, self.indptr), shape=(self.n_eq, self.n_eq))


def build_pattern(model: PFModel) -> JacobianPattern:
    """Number the unknowns (angle, then magnitude, bus by bus) and map Ybus entries into J."""
    n = model.n_bus
    has_theta = model.bus_type != REF
    has_vm = model.bus_type == PQ
    # interleave per bus: [theta_i, vm_i] keeps the 2x2 block structure for the orderings
    counts = has_theta.astype(np.int64) + has_vm.astype(np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    theta_var = np.where(has_theta, start, -1).astype(np.int64)
    vm_var = np.where(has_vm, start + has_theta, -1).astype(np.int64)
    n_eq = int(counts.sum())

    y = model.ybus
    rows = np.repeat(np.arange(n), np.diff(y.indptr))
    cols = y.indices.astype(np.int64)
    nnz = len(cols)
    blocks = []  # (row var, col var) per block
    for row_var, col_var in ((theta_var, theta_var), (theta_var, vm_var), (vm_var, theta_var), (vm_var, vm_var)):
        r, c = row_var[rows], col_var[cols]
        blocks.append((r, c, (r >= 0) & (c >= 0)))
    all_r = np.concatenate([b[0][b[2]] for b in blocks])
    all_c = np.concatenate([b[1][b[2]] for b in blocks])
    # CSC order: sort by column then row; entries are unique per (row, col)
    key = all_c * n_eq + all_r
    order = np.argsort(key, kind="stable")
    position = np.empty(len(key), dtype=np.int64)
    position[order] = np.arange(len(key))
    indices = all_r[order].astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(all_c, minlength=n_eq))]).astype(np.int32)
    pos = []
    offset = 0
    for _, _, ok in blocks:
        p = np.full(nnz, -1, dtype=np.int64)
        k = int(ok.sum())
        p[ok] = position[offset : offset + k]
        offset += k
        pos.append(p)
    return JacobianPattern(
        n_eq=n_eq,
        theta_var=theta_var,
        vm_var=vm_var,
        indptr=indptr,
        indices=indices,
        pos_pt=pos[0],
        pos_pv=pos[1],
        pos_qt=pos[2],
        pos_qv=pos[3],
        y_indptr=y.indptr.astype(np.int32),
        y_indices=y.indices.astype(np.int32),
        y_data=np.ascontiguousarray(y.data, dtype=np.complex128),
    )
