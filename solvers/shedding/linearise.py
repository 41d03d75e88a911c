"""Linear sensitivities of branch flows and bus voltages to bus injections.

Two formulations share one output type, :class:`Sensitivity`:

- **LinDistFlow** (radial grids): in a tree, the active power entering a branch equals the sum of the injections
  behind it (losses neglected), and so does the reactive power; the squared voltage magnitude drops by
  ``2 (r P + x Q)`` along each branch. The flow matrix is the signed path incidence (entries ±1), the voltage
  matrix ``M^T diag(r + j x) M`` (common-path impedance, real part for P, imaginary part for Q).
- **PTDF** (meshed grids): DC power-transfer distribution factors ``B_f B^{-1}`` (slack absorbs the change); the
  same factors are used for reactive power, and no voltage sensitivities are given.

Only *changes* are taken from these matrices; the operating point (flows, loading, voltages) comes from an AC
power flow, so the error is that of the first-order change only (see ``docs/design/shedding.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import breadth_first_order
from scipy.sparse.linalg import splu

from solvers.model import REF, PFModel

__all__ = ["Sensitivity", "compute_sensitivity", "is_radial"]


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """Flow and voltage sensitivities of a compiled model.

    Attributes
    ----------
    method : str
        ``"lindistflow"`` or ``"ptdf"``.
    flow : scipy.sparse.csr_matrix (n_branch, n_bus)
        d(P_from) / d(P injection) in MW/MW, also used for Q (Mvar/Mvar); rows of inactive branches are empty.
    path : scipy.sparse.csc_matrix (n_branch, n_bus) or None
        Tree path incidence (1 where the branch lies between the slack and the bus); radial grids only.
    z_pu : ndarray of complex (n_branch,)
        Series impedance per branch, pu on the system base.
    """

    method: str
    flow: sp.csr_matrix
    path: sp.csc_matrix | None
    z_pu: NDArray[np.complex128]

    def voltage(self, bus_idx: NDArray[np.int64], inj_bus_idx: NDArray[np.int64]) -> sp.csr_matrix:
        """Return d(vm²)/d(injection) for buses ``bus_idx`` (rows) and injection buses ``inj_bus_idx`` (columns).

        Complex pu/pu: the real part multiplies the P injection, the imaginary part the Q injection
        (LinDistFlow: ``2 Σ_common-path (r + j x)``).
        """
        if self.path is None:
            raise ValueError("voltage sensitivities need the radial (LinDistFlow) formulation")
        m = self.path
        zd = sp.diags(2.0 * self.z_pu)
        return sp.csr_matrix(m[:, bus_idx].T @ zd @ m[:, inj_bus_idx])


def is_radial(model: PFModel) -> bool:
    """Whether every energised island of ``model`` is a tree (no parallel branches, no meshes)."""
    act = model.branch_active
    n_island = int(model.island.max()) + 1 if model.n_bus else 0
    return int(act.sum()) == model.n_bus - n_island


def _series_impedance_pu(model: PFModel) -> NDArray[np.complex128]:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(model.yft != 0, -1.0 / model.yft, 0.0)
    return np.where(model.branch_active, z, 0.0).astype(np.complex128)


def _tree(model: PFModel) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Parent bus and parent branch of every compiled bus (-1 at the slack buses), by breadth-first search."""
    act = np.flatnonzero(model.branch_active)
    n = model.n_bus
    root = n  # a virtual root joined to every reference bus
    ref = np.flatnonzero(model.bus_type == REF)
    rows = np.concatenate([model.f_idx[act], model.t_idx[act], np.full(len(ref), root), ref])
    cols = np.concatenate([model.t_idx[act], model.f_idx[act], ref, np.full(len(ref), root)])
    adj = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1))
    _, pred = breadth_first_order(adj, root, directed=False, return_predecessors=True)
    parent = np.where(pred[:n] == root, -1, pred[:n]).astype(np.int64)
    key = np.concatenate([model.f_idx[act] * (n + 1) + model.t_idx[act], model.t_idx[act] * (n + 1) + model.f_idx[act]])
    val = np.concatenate([act, act])
    order = np.argsort(key)
    child = np.flatnonzero(parent >= 0)
    parent_branch = np.full(n, -1, dtype=np.int64)
    pos = np.searchsorted(key[order], parent[child] * (n + 1) + child)
    parent_branch[child] = val[order][pos]
    return parent, parent_branch


def _path_matrix(model: PFModel, parent: NDArray[np.int64], parent_branch: NDArray[np.int64]) -> sp.csc_matrix:
    """(n_branch, n_bus) 0/1 matrix: branch lies on the path from the slack to the bus (one numpy step per depth)."""
    n = model.n_bus
    rows, cols = [], []
    bus = np.arange(n)
    cur = bus.copy()
    alive = parent[cur] >= 0
    while alive.any():
        rows.append(parent_branch[cur[alive]])
        cols.append(bus[alive])
        cur = np.where(alive, parent[cur], cur)
        alive = alive & (parent[cur] >= 0)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return sp.csc_matrix((np.ones(len(r)), (r, c)), shape=(len(model.branch_ids), n))


def _ptdf(model: PFModel) -> sp.csr_matrix:
    """DC PTDF (n_branch, n_bus): d(P_from)/d(P injection), slack of each island absorbing the change."""
    act = np.flatnonzero(model.branch_active)
    n = model.n_bus
    b = model.b_dc_pu[act]
    f, t = model.f_idx[act], model.t_idx[act]
    bf = sp.csr_matrix(
        (np.concatenate([b, -b]), (np.concatenate([act, act]), np.concatenate([f, t]))),
        shape=(len(model.branch_ids), n),
    )
    bbus = sp.csr_matrix((np.concatenate([b, b, -b, -b]), (np.concatenate([f, t, f, t]), np.concatenate([f, t, t, f]))))
    bbus.resize((n, n))
    keep = np.setdiff1d(np.arange(n), np.flatnonzero(model.bus_type == REF))
    lu = splu(sp.csc_matrix(bbus[keep][:, keep]))
    inv = np.zeros((n, n))
    inv[np.ix_(keep, keep)] = lu.solve(np.eye(len(keep)))
    dense = bf @ inv
    dense[np.abs(dense) < 1e-9] = 0.0
    return sp.csr_matrix(dense)


def compute_sensitivity(model: PFModel, linearisation: str = "auto") -> Sensitivity:
    """Return flow (and, for radial grids, voltage) sensitivities of ``model``.

    Parameters
    ----------
    model : PFModel
    linearisation : {"auto", "lindistflow", "ptdf"}
        ``"auto"`` picks LinDistFlow when every island is a tree, else PTDF.

    Returns
    -------
    Sensitivity
    """
    if linearisation not in ("auto", "lindistflow", "ptdf"):
        raise ValueError(f"linearisation must be 'auto', 'lindistflow' or 'ptdf', got {linearisation!r}")
    radial = is_radial(model)
    method = ("lindistflow" if radial else "ptdf") if linearisation == "auto" else linearisation
    if method == "lindistflow" and not radial:
        raise ValueError(
            f"grid {model.name!r} is meshed (it has more branches than a tree); use linearisation='ptdf' or 'auto'"
        )
    z = _series_impedance_pu(model)
    if method == "ptdf":
        return Sensitivity("ptdf", _ptdf(model), None, z)
    parent, parent_branch = _tree(model)
    path = _path_matrix(model, parent, parent_branch)
    # P_from of a branch is minus the injections behind its to end when the from end is the parent, else plus
    child_is_to = np.zeros(len(model.branch_ids), dtype=bool)
    has_parent = parent_branch >= 0
    child_is_to[parent_branch[has_parent]] = model.t_idx[parent_branch[has_parent]] == np.flatnonzero(has_parent)
    sign = np.where(child_is_to, -1.0, 1.0)
    flow = sp.csr_matrix(sp.diags(sign) @ path)
    return Sensitivity("lindistflow", flow, path, z)
