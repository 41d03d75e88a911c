"""Topology processing: closed bus-bus switches → merged buses; connected components (islands); tree queries.

Works on positions and arrays; the Grid's ids enter only through the caller.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = ["find_islands", "merge_buses", "nearest_marked_ancestor"]


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


def nearest_marked_ancestor(parent: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """Return, for every tree node, the mark of its nearest marked ancestor (itself included).

    Pointer jumping: ``O(n log depth)`` array operations, no Python loop over nodes.

    Parameters
    ----------
    parent : ndarray of int64
        Parent position of every node, -1 at roots and at nodes outside the tree.
    mark : ndarray of int64
        Mark of every node, -1 where unmarked.

    Returns
    -------
    ndarray of int64
        The nearest mark up the tree, -1 where no node on the way to the root is marked.
    """
    val = np.asarray(mark, dtype=np.int64).copy()
    anc = np.asarray(parent, dtype=np.int64).copy()
    todo = np.flatnonzero((val < 0) & (anc >= 0))
    while todo.size:
        up = anc[todo]
        val_up = val[up]
        found = val_up >= 0
        val[todo[found]] = val_up[found]
        anc[todo] = np.where(found, -1, anc[up])
        todo = todo[~found & (anc[todo] >= 0)]
    return val
