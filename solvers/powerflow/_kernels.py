"""Numba kernels of the Newton-Raphson power flow. Arrays in, arrays out; no raising, no logging.

Unknowns are numbered per bus: the angle of every non-reference bus and the magnitude of every
PQ bus (``theta_var[i]``, ``vm_var[i]``, -1 where absent); equation rows use the same numbers
(P balance for angle variables, Q balance for magnitude variables).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _rotation(d):
    """exp(-1j d); a Taylor series to double precision for the small angles of late Newton steps."""
    if abs(d) < 1e-3:
        d2 = d * d
        return (1.0 - d2 * (0.5 - d2 / 24.0)) - 1j * (d * (1.0 - d2 * (1.0 / 6.0 - d2 / 120.0)))
    return np.cos(d) - 1j * np.sin(d)


@njit(cache=True)
def scatter_add_batch(p, q, target, coef, out):
    """``out[t, target[e]] += coef[e] * (p[t, e] + 1j q[t, e])`` for elements with ``target[e] >= 0``."""
    for t in range(p.shape[0]):
        for e in range(p.shape[1]):
            g = target[e]
            if g >= 0:
                out[t, g] += coef[e] * (p[t, e] + 1j * q[t, e])


@njit(cache=True)
def mismatch(v, s_bus, s_i, s_z, y_indptr, y_indices, y_data, theta_var, vm_var, f):
    """Fill ``f`` with the P/Q mismatch (computed - scheduled, pu) of one step; return its largest magnitude.

    ``v``, ``s_bus`` (n,) and ``f`` (n_eq,) are 1-D; the batch kernels call this on rows. ``s_bus`` is the
    scheduled injection at 1 pu; voltage-dependent loads add ``s_i (|V| - 1) + s_z (|V|² - 1)``, with
    ``s_i``, ``s_z`` (n,) their constant-current and constant-impedance shares, or empty (constant power).
    """
    worst = 0.0
    vdep = s_i.shape[0] > 0
    for i in range(v.shape[0]):
        acc = 0.0 + 0.0j
        for k in range(y_indptr[i], y_indptr[i + 1]):
            acc += y_data[k] * v[y_indices[k]]
        sched = s_bus[i]
        if vdep:
            vm = abs(v[i])
            sched += s_i[i] * (vm - 1.0) + s_z[i] * (vm * vm - 1.0)
        s = v[i] * np.conj(acc) - sched
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
def fill_jacobian(v, s_i, s_z, y_indptr, y_indices, y_data, pos_pt, pos_pv, pos_qt, pos_qv, j_data):
    """Fill the Jacobian values ``j_data`` (fixed sparsity) at voltage ``v``.

    ``pos_*[k]`` is the position in ``j_data`` of Ybus entry ``k``'s contribution to
    dP/dθ, dP/d|V|, dQ/dθ, dQ/d|V| (-1 when that block entry does not exist). Voltage-dependent
    loads (``s_i``, ``s_z``, see :func:`mismatch`; empty without) add ``-(s_i + 2 s_z |V|)`` to the
    d/d|V| diagonal.
    """
    n = v.shape[0]
    vdep = s_i.shape[0] > 0
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
                if vdep:
                    ds_dvm -= s_i[i] + 2.0 * s_z[i] * abs(vi)
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
    """Update one step's ``v`` (n,) in place with the Newton step ``dx`` (n_eq,), subtracted."""
    for i in range(v.shape[0]):
        a = theta_var[i]
        b = vm_var[i]
        if a < 0 and b < 0:
            continue
        x = v[i]
        if b >= 0:
            vm = abs(x)
            x = x * ((vm - dx[b]) / vm)
        if a >= 0:
            x = x * _rotation(dx[a])
        v[i] = x


@njit(cache=True, parallel=True)
def mismatch_batch(v, s_bus, s_i, s_z, y_indptr, y_indices, y_data, theta_var, vm_var, f, worst, active):
    """Mismatch for every active step of a batch: ``v``/``s_bus`` are (T, n), ``f`` is (T, n_eq).

    ``s_i``/``s_z`` are (T, n), (1, n) when the same for every step, or (1, 0) for constant power.
    """
    last = s_i.shape[0] - 1
    for t in prange(v.shape[0]):
        if active[t]:
            r = min(t, last)
            worst[t] = mismatch(v[t], s_bus[t], s_i[r], s_z[r], y_indptr, y_indices, y_data, theta_var, vm_var, f[t])


@njit(cache=True, parallel=True)
def apply_step_batch(v, dx, theta_var, vm_var, cols):
    """Apply the step ``dx[c]`` (rows of a (k, n_eq) array) to ``v[cols[c]]`` for every ``c``."""
    for c in prange(cols.shape[0]):
        apply_step(v[cols[c]], dx[c], theta_var, vm_var)


@njit(cache=True)
def _branch_results_step(
    t,
    v,
    ok,
    f_idx,
    t_idx,
    yff,
    yft,
    ytf,
    ytt,
    base_mva,
    vn_from_kv,
    vn_to_kv,
    rate_from_ka,
    rate_to_ka,
    i_side,
    p_f,
    q_f,
    p_t,
    q_t,
    i_f,
    i_t,
    i_ka,
    loading,
):
    sqrt3 = np.sqrt(3.0)
    for b in range(f_idx.shape[0]):
        if not ok or f_idx[b] < 0:
            fill = np.nan if not ok else 0.0
            p_f[t, b] = fill
            q_f[t, b] = fill
            p_t[t, b] = fill
            q_t[t, b] = fill
            i_f[t, b] = fill
            i_t[t, b] = fill
            i_ka[t, b] = fill
            loading[t, b] = fill
            continue
        vf = v[t, f_idx[b]]
        vt = v[t, t_idx[b]]
        cf = yff[b] * vf + yft[b] * vt
        ct = ytf[b] * vf + ytt[b] * vt
        sf = vf * np.conj(cf) * base_mva
        st = vt * np.conj(ct) * base_mva
        p_f[t, b] = sf.real
        q_f[t, b] = sf.imag
        p_t[t, b] = st.real
        q_t[t, b] = st.imag
        a_f = abs(cf) * base_mva / (sqrt3 * vn_from_kv[b])
        a_t = abs(ct) * base_mva / (sqrt3 * vn_to_kv[b])
        i_f[t, b] = a_f
        i_t[t, b] = a_t
        i_ka[t, b] = max(a_f, a_t) if i_side[b] == 0 else (a_f if i_side[b] == 1 else a_t)
        loading[t, b] = 100.0 * max(a_f / rate_from_ka[b], a_t / rate_to_ka[b])


@njit(cache=True)
def _bus_voltages_step(t, v, ok, grid_bus_idx, vm, va_deg):
    for g in range(grid_bus_idx.shape[0]):
        i = grid_bus_idx[g]
        if i < 0 or not ok:
            vm[t, g] = np.nan
            va_deg[t, g] = np.nan
        else:
            x = v[t, i]
            vm[t, g] = abs(x)
            va_deg[t, g] = np.arctan2(x.imag, x.real) * (180.0 / np.pi)


@njit(cache=True)
def _bus_injections_step(t, v, rows, y_indptr, y_indices, y_data, s_out):
    for r in range(rows.shape[0]):
        acc = 0.0 + 0.0j
        for k in range(y_indptr[r], y_indptr[r + 1]):
            acc += y_data[k] * v[t, y_indices[k]]
        s_out[t, r] = v[t, rows[r]] * np.conj(acc)


@njit(cache=True, parallel=True)
def _results_parallel(
    v,
    ok_step,
    f_idx,
    t_idx,
    yff,
    yft,
    ytf,
    ytt,
    base_mva,
    vn_from_kv,
    vn_to_kv,
    rate_from_ka,
    rate_to_ka,
    i_side,
    p_f,
    q_f,
    p_t,
    q_t,
    i_f,
    i_t,
    i_ka,
    loading,
    grid_bus_idx,
    vm,
    va_deg,
    rows,
    y_indptr,
    y_indices,
    y_data,
    s_out,
):
    for t in prange(v.shape[0]):
        _branch_results_step(
            t,
            v,
            ok_step[t],
            f_idx,
            t_idx,
            yff,
            yft,
            ytf,
            ytt,
            base_mva,
            vn_from_kv,
            vn_to_kv,
            rate_from_ka,
            rate_to_ka,
            i_side,
            p_f,
            q_f,
            p_t,
            q_t,
            i_f,
            i_t,
            i_ka,
            loading,
        )
        _bus_voltages_step(t, v, ok_step[t], grid_bus_idx, vm, va_deg)
        _bus_injections_step(t, v, rows, y_indptr, y_indices, y_data, s_out)


@njit(cache=True)
def _results_serial(
    v,
    ok_step,
    f_idx,
    t_idx,
    yff,
    yft,
    ytf,
    ytt,
    base_mva,
    vn_from_kv,
    vn_to_kv,
    rate_from_ka,
    rate_to_ka,
    i_side,
    p_f,
    q_f,
    p_t,
    q_t,
    i_f,
    i_t,
    i_ka,
    loading,
    grid_bus_idx,
    vm,
    va_deg,
    rows,
    y_indptr,
    y_indices,
    y_data,
    s_out,
):
    for t in range(v.shape[0]):
        _branch_results_step(
            t,
            v,
            ok_step[t],
            f_idx,
            t_idx,
            yff,
            yft,
            ytf,
            ytt,
            base_mva,
            vn_from_kv,
            vn_to_kv,
            rate_from_ka,
            rate_to_ka,
            i_side,
            p_f,
            q_f,
            p_t,
            q_t,
            i_f,
            i_t,
            i_ka,
            loading,
        )
        _bus_voltages_step(t, v, ok_step[t], grid_bus_idx, vm, va_deg)
        _bus_injections_step(t, v, rows, y_indptr, y_indices, y_data, s_out)


# Below this many steps the thread start-up of a parallel region costs more than it saves.
PARALLEL_MIN_STEPS = 16


def step_results(
    v,
    ok_step,
    f_idx,
    t_idx,
    yff,
    yft,
    ytf,
    ytt,
    base_mva,
    vn_from_kv,
    vn_to_kv,
    rate_from_ka,
    rate_to_ka,
    i_side,
    p_f,
    q_f,
    p_t,
    q_t,
    i_f,
    i_t,
    i_ka,
    loading,
    grid_bus_idx,
    vm,
    va_deg,
    rows,
    y_indptr,
    y_indices,
    y_data,
    s_out,
):
    """Branch results (MW, Mvar, kA, %), bus voltages (pu, degree) and the computed injections (pu) of ``rows``.

    Inactive branches (``f_idx < 0``) get 0; steps with ``ok_step`` false and de-energised buses get NaN.
    Runs over time steps in parallel when there are enough of them.
    """
    fn = _results_parallel if v.shape[0] >= PARALLEL_MIN_STEPS else _results_serial
    fn(
        v,
        ok_step,
        f_idx,
        t_idx,
        yff,
        yft,
        ytf,
        ytt,
        base_mva,
        vn_from_kv,
        vn_to_kv,
        rate_from_ka,
        rate_to_ka,
        i_side,
        p_f,
        q_f,
        p_t,
        q_t,
        i_f,
        i_t,
        i_ka,
        loading,
        grid_bus_idx,
        vm,
        va_deg,
        rows,
        y_indptr,
        y_indices,
        y_data,
        s_out,
    )
