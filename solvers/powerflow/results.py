"""Solved voltages → an :class:`xarray.Dataset` with pandapower's result definitions and units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from numpy.typing import NDArray

from solvers.model import ElementInjection, PFModel
from solvers.powerflow import _kernels as k

__all__ = ["ElementValues", "add_element_powers", "build_results"]

SQRT3 = np.sqrt(3.0)

# (p, q) per element family, each (T, n_element) in MW / Mvar, or None for the stored values
ElementValues = dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]

_ATTRS = {
    "vm_pu": {"units": "pu", "long_name": "voltage magnitude"},
    "va_deg": {"units": "degree", "long_name": "voltage angle"},
    "p_mw": {"units": "MW", "long_name": "active power consumed at the bus (load convention, as pandapower)"},
    "q_mvar": {"units": "Mvar", "long_name": "reactive power consumed at the bus (load convention)"},
    "p_from_mw": {"units": "MW", "long_name": "active power into the branch at its from (HV) end"},
    "q_from_mvar": {"units": "Mvar", "long_name": "reactive power into the branch at its from (HV) end"},
    "p_to_mw": {"units": "MW", "long_name": "active power into the branch at its to (LV) end"},
    "q_to_mvar": {"units": "Mvar", "long_name": "reactive power into the branch at its to (LV) end"},
    "pl_mw": {"units": "MW", "long_name": "active losses of the branch"},
    "ql_mvar": {"units": "Mvar", "long_name": "reactive losses of the branch"},
    "i_from_ka": {"units": "kA", "long_name": "current at the from end"},
    "i_to_ka": {"units": "kA", "long_name": "current at the to end"},
    "i_ka": {
        "units": "kA",
        "long_name": "current: larger end for lines, HV side for transformers, outer side for windings",
    },
    "loading_pct": {"units": "%", "long_name": "loading against the thermal rating (current based, as pandapower)"},
    "p_loss_mw": {"units": "MW", "long_name": "total branch active losses"},
    "q_loss_mvar": {"units": "Mvar", "long_name": "total branch reactive losses"},
}


def add_element_powers(
    e: ElementInjection,
    target: NDArray[np.int64],
    p: NDArray[np.float64],
    q: NDArray[np.float64],
    out: NDArray[np.complex128],
) -> None:
    """Add ``sign * scaling * (p + jq)`` (T, n_element) of active elements onto ``out[:, target]`` in place."""
    tgt = np.where(e.active, target, -1).astype(np.int64)
    p = np.ascontiguousarray(np.broadcast_to(p, (out.shape[0], len(e.ids))))
    q = np.ascontiguousarray(np.broadcast_to(q, (out.shape[0], len(e.ids))))
    k.scatter_add_batch(p, q, tgt, e.sign * e.scaling, out)


_BUS_VARS = frozenset({"vm_pu", "va_deg", "p_mw", "q_mvar"})


def _balance_matrices(model: PFModel, has: NDArray[np.int64]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Ybus rows of buses with a balancing element, and their Grid-bus incidence (cached on the model)."""
    cached = model.cache.get("balance_matrices")
    if cached is None:
        gbi = model.grid_bus_idx
        ok = gbi >= 0
        cols = np.flatnonzero(ok)
        inc = sp.csr_matrix((np.ones(len(cols)), (gbi[ok], cols)), shape=(model.n_bus, len(gbi)))[has]
        cached = (model.ybus[has], inc)
        model.cache["balance_matrices"] = cached
    return cached


def _coords(model: PFModel) -> xr.Coordinates:
    """The ``bus``/``branch`` coordinates with their indexes, built once per model."""
    cached = model.cache.get("coords")
    if cached is None:
        cached = xr.Coordinates(
            {
                "bus": pd.Index(model.grid_bus_ids, name="bus"),
                "branch": pd.Index(model.branch_ids, name="branch"),
                "branch_kind": ("branch", model.branch_kind),
            }
        )
        model.cache["coords"] = cached
    return cached


def build_results(
    model: PFModel,
    v: NDArray[np.complex128],
    values: ElementValues,
    converged: NDArray[np.bool_],
    iterations: NDArray[np.int64],
    time: NDArray | None = None,
) -> xr.Dataset:
    """Assemble results from compiled voltages ``v`` (T, n_bus).

    Parameters
    ----------
    model : PFModel
    v : ndarray, complex (T, n_bus)
        Solved voltages in pu.
    values : dict
        Element set-points used per step: ``{"load": (p, q), "sgen": ..., "storage": ..., "gen": ...}``,
        arrays (T, n_element) in MW / Mvar.
    converged, iterations : ndarray (T,)
    time : array-like, optional
        Time coordinate; without it the leading dim is dropped (single snapshot).
    """
    n_t = v.shape[0]
    base = model.base_mva
    gbi = model.grid_bus_idx
    ok = gbi >= 0
    conv = np.ascontiguousarray(converged, dtype=np.bool_)
    bad = ~conv
    n_gb = len(gbi)
    vm = np.empty((n_t, n_gb))
    va = np.empty((n_t, n_gb))
    k.bus_voltages_batch(v, conv, gbi, vm, va)
    # ---- bus powers (load convention, per Grid bus as pandapower reports them)
    gen_conv = np.zeros((n_t, n_gb), dtype=np.complex128)
    for fam in ("load", "sgen", "storage", "gen"):
        e: ElementInjection = getattr(model, fam)
        if len(e.ids):
            p, q = values[fam]
            add_element_powers(e, e.grid_bus_pos, p, q, gen_conv)
    y_sh = model.grid_bus_y_shunt_pu
    cons = -gen_conv
    if np.any(y_sh != 0):
        cons += np.nan_to_num(vm**2) * np.conj(y_sh) * base
    # balancing P/Q (slack, generator Q) goes to the Grid bus that hosts the controlling element
    ctrl = model.ctrl_grid_bus_pos
    has = np.flatnonzero(ctrl >= 0)
    if len(has):
        s_calc = np.empty((n_t, len(has)), dtype=np.complex128)
        yb, inc = _balance_matrices(model, has)
        k.bus_injections_rows(v, has, yb.indptr, yb.indices, yb.data, s_calc)
        group_cons = -s_calc * base + np.abs(v[:, has]) ** 2 * np.conj(model.y_shunt_pu[has]) * base
        known = (inc @ cons.T.real).T + 1j * (inc @ cons.T.imag).T
        cons[:, ctrl[has]] += group_cons - known
    cons[:, ~ok] = np.nan
    cons[bad] = np.nan
    # ---- branches
    nbr = len(model.branch_active)
    out = {name: np.empty((n_t, nbr)) for name in ("p_f", "q_f", "p_t", "q_t", "i_f", "i_t", "i_ka", "loading")}
    k.branch_results_batch(
        v,
        conv,
        model.f_idx,
        model.t_idx,
        model.yff,
        model.yft,
        model.ytf,
        model.ytt,
        base,
        model.vn_from_kv,
        model.vn_to_kv,
        model.rate_from_ka,
        model.rate_to_ka,
        model.i_side,
        out["p_f"],
        out["q_f"],
        out["p_t"],
        out["q_t"],
        out["i_f"],
        out["i_t"],
        out["i_ka"],
        out["loading"],
    )
    pl = out["p_f"] + out["p_t"]
    ql = out["q_f"] + out["q_t"]
    columns = {
        "vm_pu": vm,
        "va_deg": va,
        "p_mw": cons.real,
        "q_mvar": cons.imag,
        "p_from_mw": out["p_f"],
        "q_from_mvar": out["q_f"],
        "p_to_mw": out["p_t"],
        "q_to_mvar": out["q_t"],
        "pl_mw": pl,
        "ql_mvar": ql,
        "i_from_ka": out["i_f"],
        "i_to_ka": out["i_t"],
        "i_ka": out["i_ka"],
        "loading_pct": out["loading"],
        "p_loss_mw": pl.sum(axis=1),
        "q_loss_mvar": ql.sum(axis=1),
        "converged": conv,
        "iterations": iterations.astype(np.int64),
    }
    single = time is None
    data = {}
    for name, arr in columns.items():
        dims = (
            ("time",) if arr.ndim == 1 else ("time", "bus" if arr.shape[1] == n_gb and name in _BUS_VARS else "branch")
        )
        values_ = arr[0] if single else arr
        data[name] = xr.Variable(dims[1:] if single else dims, values_, attrs=_ATTRS.get(name))
    ds = xr.Dataset(data, coords=_coords(model), attrs={"grid": model.name, "base_mva": base})
    if not single:
        ds = ds.assign_coords(time=time)
    return ds
