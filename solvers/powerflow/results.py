"""Solved voltages → an :class:`xarray.Dataset` with pandapower's result definitions and units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from numpy.typing import NDArray

from solvers.model import ElementInjection, PFModel
from solvers.powerflow import _kernels as k

__all__ = [
    "ElementValues",
    "add_element_powers",
    "allocate_results",
    "build_results",
    "fill_results",
    "to_dataset",
]

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


BUS_VARS = ("vm_pu", "va_deg", "p_mw", "q_mvar")
BRANCH_VARS = (
    "p_from_mw",
    "q_from_mvar",
    "p_to_mw",
    "q_to_mvar",
    "pl_mw",
    "ql_mvar",
    "i_from_ka",
    "i_to_ka",
    "i_ka",
    "loading_pct",
)
STEP_VARS = ("p_loss_mw", "q_loss_mvar", "converged", "iterations")


def allocate_results(model: PFModel, n_t: int) -> dict[str, NDArray]:
    """Uninitialised result arrays for ``n_t`` steps: (T, bus), (T, branch) and (T,)."""
    n_gb, n_br = len(model.grid_bus_idx), len(model.branch_ids)
    out: dict[str, NDArray] = {name: np.empty((n_t, n_gb)) for name in BUS_VARS}
    out.update({name: np.empty((n_t, n_br)) for name in BRANCH_VARS})
    out.update(
        {
            "p_loss_mw": np.empty(n_t),
            "q_loss_mvar": np.empty(n_t),
            "converged": np.empty(n_t, dtype=bool),
            "iterations": np.empty(n_t, dtype=np.int64),
        }
    )
    return out


def fill_results(
    model: PFModel,
    v: NDArray[np.complex128],
    values: ElementValues,
    converged: NDArray[np.bool_],
    iterations: NDArray[np.int64],
    out: dict[str, NDArray],
    rows: slice,
) -> None:
    """Compute the results of solved voltages ``v`` (T, n_bus) into ``out[name][rows]``.

    Parameters
    ----------
    model : PFModel
    v : ndarray, complex (T, n_bus)
        Solved voltages in pu.
    values : dict
        Element set-points used per step: ``{"load": (p, q), "sgen": ..., "storage": ..., "gen": ...}``,
        arrays (T, n_element) in MW / Mvar, at 1 pu voltage (ZIP loads are scaled to the solved voltage here).
    converged, iterations : ndarray (T,)
    out : dict
        Arrays from :func:`allocate_results`.
    rows : slice
        Where these T steps go in ``out``.
    """
    n_t = v.shape[0]
    base = model.base_mva
    gbi = model.grid_bus_idx
    ok = gbi >= 0
    conv = np.ascontiguousarray(converged, dtype=np.bool_)
    n_gb = len(gbi)
    vm, va = out["vm_pu"][rows], out["va_deg"][rows]
    p_f, q_f, p_t, q_t = (out[n][rows] for n in ("p_from_mw", "q_from_mvar", "p_to_mw", "q_to_mvar"))
    ctrl = model.ctrl_grid_bus_pos
    has = np.flatnonzero(ctrl >= 0)
    yb, inc = _balance_matrices(model, has)
    s_calc = np.empty((n_t, len(has)), dtype=np.complex128)
    k.step_results(
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
        p_f,
        q_f,
        p_t,
        q_t,
        out["i_from_ka"][rows],
        out["i_to_ka"][rows],
        out["i_ka"][rows],
        out["loading_pct"][rows],
        gbi,
        vm,
        va,
        has,
        yb.indptr,
        yb.indices,
        yb.data,
        s_calc,
    )
    # ---- bus powers (load convention, per Grid bus as pandapower reports them)
    cons = np.zeros((n_t, n_gb), dtype=np.complex128)  # generator convention first, negated below
    for fam in ("load", "sgen", "storage", "gen"):
        e: ElementInjection = getattr(model, fam)
        if len(e.ids):
            p, q = values[fam]
            if e.z_p is not None:  # ZIP loads take their power at the solved voltage
                fp, fq = e.vdep_factors(np.nan_to_num(vm[:, e.grid_bus_pos]))
                p, q = p * fp, q * fq
            add_element_powers(e, e.grid_bus_pos, p, q, cons)
    np.negative(cons, out=cons)
    y_sh = model.grid_bus_y_shunt_pu
    if np.any(y_sh != 0):
        cons += np.nan_to_num(vm**2) * np.conj(y_sh) * base
    # balancing P/Q (slack, generator Q) goes to the Grid bus that hosts the controlling element
    if len(has):
        group_cons = -s_calc * base + np.abs(v[:, has]) ** 2 * np.conj(model.y_shunt_pu[has]) * base
        known = (inc @ cons.T.real).T + 1j * (inc @ cons.T.imag).T
        cons[:, ctrl[has]] += group_cons - known
    cons[:, ~ok] = np.nan
    cons[~conv] = np.nan
    out["p_mw"][rows] = cons.real
    out["q_mvar"][rows] = cons.imag
    np.add(p_f, p_t, out=out["pl_mw"][rows])
    np.add(q_f, q_t, out=out["ql_mvar"][rows])
    out["p_loss_mw"][rows] = out["pl_mw"][rows].sum(axis=1)
    out["q_loss_mvar"][rows] = out["ql_mvar"][rows].sum(axis=1)
    out["converged"][rows] = conv
    out["iterations"][rows] = iterations


def to_dataset(model: PFModel, out: dict[str, NDArray], time: NDArray | None = None) -> xr.Dataset:
    """Wrap result arrays into a Dataset (no copy); without ``time`` the single step's leading dim is dropped."""
    single = time is None
    data = {}
    for name, arr in out.items():
        dim = "bus" if name in BUS_VARS else "branch" if name in BRANCH_VARS else None
        dims = ("time",) if dim is None else ("time", dim)
        data[name] = xr.Variable(dims[1:] if single else dims, arr[0] if single else arr, attrs=_ATTRS.get(name))
    ds = xr.Dataset(data, coords=_coords(model), attrs={"grid": model.name, "base_mva": model.base_mva})
    if not single:
        ds = ds.assign_coords(time=time)
    return ds


def build_results(
    model: PFModel,
    v: NDArray[np.complex128],
    values: ElementValues,
    converged: NDArray[np.bool_],
    iterations: NDArray[np.int64],
    time: NDArray | None = None,
) -> xr.Dataset:
    """Results of solved voltages ``v`` (T, n_bus) as a Dataset (see :func:`fill_results`)."""
    out = allocate_results(model, v.shape[0])
    fill_results(model, v, values, converged, iterations, out, slice(None))
    return to_dataset(model, out, time)
