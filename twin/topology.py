"""Topology processing: closed bus-bus switches → merged buses; connected components (islands).

Works on positions and arrays; the Grid's ids enter only through the caller.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = ["find_islands", "merge_buses"]


def merge_buses(n_bus: int, a_pos: np.ndarray, b_pos: np.ndarray) -> tuple[np.ndarray, int]:
    """Fuse buses joined by closed zero-impedance switches.

    Parameters
    ----------
    n_bus : int
        Number of buses.
    a_pos, b_pos : ndarray of int64
        Bus positions at both ends of each closed bus-bus switch.

    Returns
    -------
    group : ndarray of int64
        Merged-bus number of every bus, numbered in order of each group's first bus.
    n_group : int
        Number of merged buses.
    """
    adj = sp.coo_matrix((np.ones(len(a_pos)), (a_pos, b_pos)), shape=(n_bus, n_bus))
    n_group, label = connected_components(adj, directed=False)
    # renumber so that groups are ordered by their first member (stable, readable ids)
    first = np.full(n_group, n_bus, dtype=np.int64)
    np.minimum.at(first, label, np.arange(n_bus))
    order = np.argsort(first, kind="stable")
    rank = np.empty(n_group, dtype=np.int64)
    rank[order] = np.arange(n_group)
    return rank[label].astype(np.int64), int(n_group)


def find_islands(n_bus: int, f_idx: np.ndarray, t_idx: np.ndarray) -> np.ndarray:
    """Return the island number of each bus given branch end indices."""
    adj = sp.coo_matrix((np.ones(len(f_idx)), (f_idx, t_idx)), shape=(n_bus, n_bus))
    _, label = connected_components(adj, directed=False)
    return label.astype(np.int64)
