"""Numba kernels of the Newton-Raphson power flow. Arrays in, arrays out; no raising, no logging.

Unknowns are numbered per bus: the angle of every non-reference bus and the magnitude of every
PQ bus (``theta_var[i]``, ``vm_var[i]``, -1 where absent); equation rows use the same numbers
(P balance for angle variables, Q balance for magnitude variables).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def mismatch(v, s_bus, y_indptr, y_indices, y_data, theta_var, vm_var, f):
    """Fill ``f`` with the P/Q mismatch (computed - scheduled, pu); return its largest magnitude."""
    n = v.shape[0]
    worst = 0.0
    for i in range(n):
        acc = 0.0 + 0.0j
        for k in range(y_indptr[i], y_indptr[i + 1]):
            acc += y_data[k] * v[y_indices[k]]
        s = v[i] * np.conj(acc) - s_bus[i]
        a = theta_var[i]
        if a >= 0:
            f[a] = s.real
            worst = max(worst, abs(s.real))
        b = vm_var[i]
        if b >= 0:
            f[b] = s.imag
            worst = max(worst, abs(s.imag))
    return worst


@njit(cache=True)
def fill_jacobian(v, y_indptr, y_indices, y_data, pos_pt, pos_pv, pos_qt, pos_qv, j_data):
    """Fill the Jacobian values ``j_data`` (fixed sparsity) at voltage ``v``.

    ``pos_*[k]`` is the position in ``j_data`` of Ybus entry ``k``'s contribution to
    dP/dθ, dP/d|V|, dQ/dθ, dQ/d|V| (-1 when that block entry does not exist).
    """
    n = v.shape[0]
    j_data[:] = 0.0
    for i in range(n):
        ibus = 0.0 + 0.0j
        for k in range(y_indptr[i], y_indptr[i + 1]):
            ibus += y_data[k] * v[y_indices[k]]
        vi = v[i]
        for k in range(y_indptr[i], y_indptr[i + 1]):
            j = y_indices[k]
            vj = v[j]
            yv = y_data[k] * vj
            absvj = abs(vj)
            if j == i:
                ds_dva = 1j * vi * np.conj(ibus - yv)
                ds_dvm = vi * np.conj(yv / absvj) + np.conj(ibus) * vi / abs(vi)
            else:
                ds_dva = -1j * vi * np.conj(yv)
                ds_dvm = vi * np.conj(yv / absvj)
            p = pos_pt[k]
            if p >= 0:
                j_data[p] += ds_dva.real
            p = pos_pv[k]
            if p >= 0:
                j_data[p] += ds_dvm.real
            p = pos_qt[k]
            if p >= 0:
                j_data[p] += ds_dva.imag
            p = pos_qv[k]
            if p >= 0:
                j_data[p] += ds_dvm.imag


@njit(cache=True)
def apply_step(v, dx, theta_var, vm_var):
    """Update ``v`` in place with the Newton step ``dx`` (subtracted)."""
    for i in range(v.shape[0]):
        a = theta_var[i]
        b = vm_var[i]
        if a < 0 and b < 0:
            continue
        vm = abs(v[i])
        va = np.angle(v[i])
        if a >= 0:
            va -= dx[a]
        if b >= 0:
            vm -= dx[b]
        v[i] = vm * np.exp(1j * va)


@njit(cache=True, parallel=True)
def mismatch_batch(v, s_bus, y_indptr, y_indices, y_data, theta_var, vm_var, f, worst, active):
    """Mismatch for every active step of a batch: ``v``/``s_bus`` are (T, n), ``f`` is (n_eq, T)."""
    for t in prange(v.shape[0]):
        if not active[t]:
            continue
        w = 0.0
        for i in range(v.shape[1]):
            acc = 0.0 + 0.0j
            for k in range(y_indptr[i], y_indptr[i + 1]):
                acc += y_data[k] * v[t, y_indices[k]]
            s = v[t, i] * np.conj(acc) - s_bus[t, i]
            a = theta_var[i]
            if a >= 0:
                f[a, t] = s.real
                w = max(w, abs(s.real))
            b = vm_var[i]
            if b >= 0:
                f[b, t] = s.imag
                w = max(w, abs(s.imag))
        worst[t] = w


@njit(cache=True, parallel=True)
def apply_step_batch(v, dx, theta_var, vm_var, cols):
    """Apply the step ``dx[:, c]`` to ``v[cols[c]]`` for every column ``c``."""
    for c in prange(cols.shape[0]):
        t = cols[c]
        for i in range(v.shape[1]):
            a = theta_var[i]
            b = vm_var[i]
            if a < 0 and b < 0:
                continue
            vm = abs(v[t, i])
            va = np.angle(v[t, i])
            if a >= 0:
                va -= dx[a, c]
            if b >= 0:
                vm -= dx[b, c]
            v[t, i] = vm * np.exp(1j * va)


@njit(cache=True, parallel=True)
def branch_flows_batch(v, f_idx, t_idx, yff, yft, ytf, ytt, s_f, s_t, i_f, i_t):
    """Branch end powers (pu) and current magnitudes (pu of base current at each end) for (T, n) voltages."""
    for t in prange(v.shape[0]):
        for b in range(f_idx.shape[0]):
            vf = v[t, f_idx[b]]
            vt = v[t, t_idx[b]]
            cf = yff[b] * vf + yft[b] * vt
            ct = ytf[b] * vf + ytt[b] * vt
            s_f[t, b] = vf * np.conj(cf)
            s_t[t, b] = vt * np.conj(ct)
            i_f[t, b] = abs(cf)
            i_t[t, b] = abs(ct)


@njit(cache=True, parallel=True)
def bus_injections_batch(v, y_indptr, y_indices, y_data, s_out):
    """Computed bus injections ``V conj(Ybus V)`` (pu) for (T, n) voltages."""
    for t in prange(v.shape[0]):
        for i in range(v.shape[1]):
            acc = 0.0 + 0.0j
            for k in range(y_indptr[i], y_indptr[i + 1]):
                acc += y_data[k] * v[t, y_indices[k]]
            s_out[t, i] = v[t, i] * np.conj(acc)
