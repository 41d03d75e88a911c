"""Solved voltages → an :class:`xarray.Dataset` with pandapower's result definitions and units."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import xarray as xr
from numpy.typing import NDArray

from solvers.model import ElementInjection, PFModel
from solvers.powerflow import _kernels as k

__all__ = ["ElementValues", "build_results"]

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


def _grid_bus_sum(
    e: ElementInjection, n_gb: int, p: NDArray[np.float64], q: NDArray[np.float64], only_active: bool
) -> NDArray[np.complex128]:
    """Sum ``sign * scaling * (p + jq)`` of elements per Grid bus; (T, n_gb) complex, generator convention."""
    use = e.active if only_active else np.ones(len(e.ids), dtype=bool)
    inc = sp.csr_matrix((e.sign * e.scaling[use], (e.grid_bus_pos[use], np.flatnonzero(use))), shape=(n_gb, len(e.ids)))
    return (inc @ p.T).T + 1j * (inc @ q.T).T


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
    v_gb = np.full((n_t, len(gbi)), np.nan + 0j)
    v_gb[:, ok] = v[:, gbi[ok]]
    bad = ~converged
    v_gb[bad] = np.nan
    # ---- bus powers (load convention, per Grid bus as pandapower reports them)
    s_calc = np.empty_like(v)
    yb = model.ybus
    k.bus_injections_batch(v, yb.indptr, yb.indices, yb.data, s_calc)
    n_gb = len(gbi)
    gen_conv = np.zeros((n_t, n_gb), dtype=np.complex128)
    for fam in ("load", "sgen", "storage", "gen"):
        e: ElementInjection = getattr(model, fam)
        if len(e.ids):
            p, q = values[fam]
            gen_conv += _grid_bus_sum(e, n_gb, p, q, only_active=True)
    s_shunt_gb = np.abs(v_gb) ** 2 * np.conj(model.grid_bus_y_shunt_pu) * base
    cons = -gen_conv + np.nan_to_num(s_shunt_gb)
    # balancing P/Q (slack, generator Q) goes to the Grid bus that hosts the controlling element
    ctrl = model.ctrl_grid_bus_pos
    has = ctrl >= 0
    if has.any():
        s_sh_c = np.abs(v) ** 2 * np.conj(model.y_shunt_pu) * base
        group_cons = -s_calc * base + s_sh_c  # total consumption of each compiled bus, shunts included
        known = np.zeros((n_t, model.n_bus), dtype=np.complex128)
        cols = np.flatnonzero(ok)
        inc = sp.csr_matrix((np.ones(len(cols)), (gbi[ok], cols)), shape=(model.n_bus, n_gb))
        known = (inc @ cons.T.real).T + 1j * (inc @ cons.T.imag).T
        cons[:, ctrl[has]] += (group_cons - known)[:, has]
    cons[:, ~ok] = np.nan
    cons[bad] = np.nan
    # ---- branches
    act = model.branch_active
    nbr = len(act)
    fi, ti = model.f_idx[act], model.t_idx[act]
    na = int(act.sum())
    s_f = np.zeros((n_t, na), dtype=np.complex128)
    s_t = np.zeros_like(s_f)
    i_f = np.zeros((n_t, na))
    i_t = np.zeros((n_t, na))
    k.branch_flows_batch(v, fi, ti, model.yff[act], model.yft[act], model.ytf[act], model.ytt[act], s_f, s_t, i_f, i_t)

    def full(a: NDArray, fill: float = 0.0) -> NDArray:
        out = np.full((n_t, nbr), fill, dtype=a.dtype)
        out[:, act] = a
        out[bad] = np.nan
        return out

    s_f *= base
    s_t *= base
    i_from = full(i_f * base / (SQRT3 * model.vn_from_kv[act]))
    i_to = full(i_t * base / (SQRT3 * model.vn_to_kv[act]))
    with np.errstate(divide="ignore", invalid="ignore"):
        loading = 100 * np.maximum(i_from / model.rate_from_ka, i_to / model.rate_to_ka)
    i_ka = np.where(model.i_side == 0, np.maximum(i_from, i_to), np.where(model.i_side == 1, i_from, i_to))
    p_f, q_f, p_t, q_t = full(s_f.real), full(s_f.imag), full(s_t.real), full(s_t.imag)
    data = {
        "vm_pu": (("time", "bus"), np.abs(v_gb)),
        "va_deg": (("time", "bus"), np.rad2deg(np.angle(v_gb))),
        "p_mw": (("time", "bus"), cons.real),
        "q_mvar": (("time", "bus"), cons.imag),
        "p_from_mw": (("time", "branch"), p_f),
        "q_from_mvar": (("time", "branch"), q_f),
        "p_to_mw": (("time", "branch"), p_t),
        "q_to_mvar": (("time", "branch"), q_t),
        "pl_mw": (("time", "branch"), p_f + p_t),
        "ql_mvar": (("time", "branch"), q_f + q_t),
        "i_from_ka": (("time", "branch"), i_from),
        "i_to_ka": (("time", "branch"), i_to),
        "i_ka": (("time", "branch"), i_ka),
        "loading_pct": (("time", "branch"), loading),
        "p_loss_mw": (("time",), (p_f + p_t).sum(axis=1)),
        "q_loss_mvar": (("time",), (q_f + q_t).sum(axis=1)),
        "converged": (("time",), converged.astype(bool)),
        "iterations": (("time",), iterations.astype(np.int64)),
    }
    coords = {"bus": model.grid_bus_ids, "branch": model.branch_ids, "branch_kind": ("branch", model.branch_kind)}
    ds = xr.Dataset(data, coords=coords)
    for name, attrs in _ATTRS.items():
        ds[name].attrs.update(attrs)
    ds = ds.isel(time=0) if time is None else ds.assign_coords(time=time)
    ds.attrs.update({"grid": model.name, "base_mva": base})
    return ds
