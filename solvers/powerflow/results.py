"""Solved voltages → an :class:`xarray.Dataset` with pandapower's result definitions and units."""

from __future__ import annotations

import numpy as np
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
        yb = model.ybus[has]
        k.bus_injections_rows(v, has, yb.indptr, yb.indices, yb.data, s_calc)
        group_cons = -s_calc * base + np.abs(v[:, has]) ** 2 * np.conj(model.y_shunt_pu[has]) * base
        cols = np.flatnonzero(ok)
        inc = sp.csr_matrix((np.ones(len(cols)), (gbi[ok], cols)), shape=(model.n_bus, n_gb))[has]
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
    data = {
        "vm_pu": (("time", "bus"), vm),
        "va_deg": (("time", "bus"), va),
        "p_mw": (("time", "bus"), cons.real),
        "q_mvar": (("time", "bus"), cons.imag),
        "p_from_mw": (("time", "branch"), out["p_f"]),
        "q_from_mvar": (("time", "branch"), out["q_f"]),
        "p_to_mw": (("time", "branch"), out["p_t"]),
        "q_to_mvar": (("time", "branch"), out["q_t"]),
        "pl_mw": (("time", "branch"), pl),
        "ql_mvar": (("time", "branch"), ql),
        "i_from_ka": (("time", "branch"), out["i_f"]),
        "i_to_ka": (("time", "branch"), out["i_t"]),
        "i_ka": (("time", "branch"), out["i_ka"]),
        "loading_pct": (("time", "branch"), out["loading"]),
        "p_loss_mw": (("time",), pl.sum(axis=1)),
        "q_loss_mvar": (("time",), ql.sum(axis=1)),
        "converged": (("time",), conv),
        "iterations": (("time",), iterations.astype(np.int64)),
    }
    coords = {"bus": model.grid_bus_ids, "branch": model.branch_ids, "branch_kind": ("branch", model.branch_kind)}
    ds = xr.Dataset(data, coords=coords)
    for name, attrs in _ATTRS.items():
        ds[name].attrs.update(attrs)
    ds = ds.isel(time=0) if time is None else ds.assign_coords(time=time)
    ds.attrs.update({"grid": model.name, "base_mva": base})
    return ds
