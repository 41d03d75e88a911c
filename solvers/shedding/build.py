"""Pyomo model of the shedding problem, built family by family from :class:`SheddingData` arrays.

The model is a ``pyomo.kernel`` block. Each variable family is one ``variable_list`` holding only existing
pairs (controllable device × step with something to curtail) or screened rows (protected asset or bus × step).
Each constraint family is one ``matrix_constraint``: its rows are a scipy CSR matrix assembled with numpy from the
prepared index arrays, over the tuple of variables it names, so no Python expression is built per row (figures
in ``docs/design/shedding.md``). Pyomo's own writers accept the model (``m.write("x.lp")``).

Variables: ``m.shed_mw[i]`` (continuous, MW) or ``m.shed_on[i]`` (binary, discrete mode: the whole curtailable
power of pair ``i``), ``m.rise_mw[i]`` (upward change from the previous step: counts commands), ``m.slack[r]``
(violation of row ``r``, penalised).
"""

from __future__ import annotations

import math

import numpy as np
import pyomo.kernel as pmo
import scipy.sparse as sp
from numpy.typing import NDArray
from pyomo.common.gc_manager import PauseGC
from pyomo.core.expr.numeric_expr import LinearExpression, MonomialTermExpression

from solvers.shedding.data import SheddingData

__all__ = [
    "add_curtailment",
    "add_limits",
    "add_min_on_time",
    "add_objective",
    "add_rebound",
    "add_rise",
    "build_model",
]


def _variables(ub: NDArray[np.float64] | None, n: int, *, binary: bool = False) -> pmo.variable_list:
    """``n`` variables: ``0 ≤ v ≤ ub`` (``ub`` None: no upper bound, NaN entries: none for that one), or binary."""
    if binary:
        return pmo.variable_list([pmo.variable(domain=pmo.Binary) for _ in range(n)])
    if ub is None:
        return pmo.variable_list([pmo.variable(lb=0.0) for _ in range(n)])  # a list fills faster than a generator
    return pmo.variable_list([pmo.variable(lb=0.0, ub=None if math.isnan(u) else u) for u in ub.tolist()])


def _column(m: pmo.block) -> pmo.variable_list:
    """The decision variable per pair, in pair order (``shed_mw`` or ``shed_on``)."""
    return m.shed_on if hasattr(m, "shed_on") else m.shed_mw


def _pair_scale(data: SheddingData) -> NDArray[np.float64]:
    """MW represented by one unit of the pair variable: 1 (continuous) or the pair's curtailable power (binary)."""
    return data.devices.ub_mw if data.discrete else np.ones(data.devices.n_pair)


def _rows(
    row: NDArray[np.int64], col: NDArray[np.int64], coef: NDArray[np.float64], shape: tuple[int, int]
) -> sp.csr_matrix:
    """CSR matrix of the entries ``(row, col, coef)`` (duplicates summed)."""
    return sp.csr_matrix((coef, (row, col)), shape=shape)


def add_curtailment(m: pmo.block, data: SheddingData) -> None:
    """Curtailment per pair: ``0 ≤ shed_mw ≤ ub_mw``, or binary ``shed_on`` in discrete mode; pay-back pairs."""
    dev = data.devices
    if data.discrete:
        m.shed_on = _variables(None, dev.n_pair, binary=True)
    else:
        m.shed_mw = _variables(dev.ub_mw, dev.n_pair)
    if data.payback is not None:
        m.payback_mw = _variables(data.payback.ub_mw, data.payback.n_pair)


def add_limits(m: pmo.block, data: SheddingData) -> None:
    """Linearised limits ``Σ coef · x - slack ≤ rhs`` (branch loading, bus voltage), one row per entity and step."""
    rows = data.rows
    m.slack = _variables(None, rows.n_row)
    if rows.n_row == 0:
        return
    x = list(_column(m))
    scale = _pair_scale(data)
    if data.payback is not None:
        x += list(m.payback_mw)
        scale = np.concatenate([scale, np.ones(data.payback.n_pair)])
    n_x = len(x)
    r = np.arange(rows.n_row)
    row = np.concatenate([np.repeat(r, np.diff(rows.indptr)), r])
    col = np.concatenate([rows.pair, n_x + r])
    coef = np.concatenate([rows.coef * scale[rows.pair], -np.ones(rows.n_row)])
    a = _rows(row, col, coef, (rows.n_row, n_x + rows.n_row))
    m.limit_upper = pmo.matrix_constraint(a, ub=rows.rhs.astype(float), x=(*x, *m.slack))


def add_rise(m: pmo.block, data: SheddingData) -> None:
    """``rise_mw[i] ≥ x[i] - x[previous step of the same device]`` (0 before a run): its sum counts commands."""
    n = data.devices.n_pair
    m.rise_mw = _variables(None, n)
    if n == 0:
        return
    prev = data.devices.neighbour(-1)
    scale = _pair_scale(data)
    i = np.arange(n)
    has = prev >= 0
    row = np.concatenate([i, i[has], i])
    col = np.concatenate([i, prev[has], n + i])
    coef = np.concatenate([scale, -scale[prev[has]], -np.ones(n)])
    a = _rows(row, col, coef, (n, 2 * n))
    m.rise_lower = pmo.matrix_constraint(a, ub=0.0, x=(*_column(m), *m.rise_mw))


def add_min_on_time(m: pmo.block, data: SheddingData) -> None:
    """Discrete mode: a device switched off stays off ``min_on_steps`` steps, ``on[i] - on[i-1] ≤ on[i+k]``.

    Only steps where the device has something to curtail exist; a command ends early when its curtailable
    power drops to zero.
    """
    k_max = data.min_on_steps
    if not data.discrete or k_max <= 1:
        return
    dev = data.devices
    prev = dev.neighbour(-1)
    nxt = [dev.neighbour(k) for k in range(1, k_max)]
    i_row = np.concatenate([np.flatnonzero(j >= 0) for j in nxt])
    j_row = np.concatenate([j[j >= 0] for j in nxt])
    if len(i_row) == 0:
        return
    p_row = prev[i_row]
    r = np.arange(len(i_row))
    has = p_row >= 0
    row = np.concatenate([r, r, r[has]])
    col = np.concatenate([i_row, j_row, p_row[has]])
    coef = np.concatenate([np.ones(len(r)), -np.ones(len(r)), -np.ones(int(has.sum()))])
    a = _rows(row, col, coef, (len(r), dev.n_pair))
    m.min_on_upper = pmo.matrix_constraint(a, ub=0.0, x=tuple(m.shed_on))


def add_rebound(m: pmo.block, data: SheddingData) -> None:
    """Energy pay-back of shed heating loads: ``debt_t = debt_{t-1} + Δt (rebound · shed_t - payback_t)``.

    ``debt_mwh ≥ 0`` (nothing is paid back before it is shed) and 0 after the last step (all is paid back
    within the horizon).
    """
    pay = data.payback
    if pay is None:
        return
    n, n_x = pay.n_pair, data.devices.n_pair
    m.debt_mwh = _variables(np.where(pay.neighbour(1) < 0, 0.0, np.nan), n)
    if n == 0:
        return
    prev = pay.neighbour(-1)
    shed = data.devices.pair_pos[pay.pair_device, pay.pair_time]
    k = data.dt_h * data.rebound * _pair_scale(data)
    i = np.arange(n)
    has_p, has_s = prev >= 0, shed >= 0
    # columns: shed pairs, pay-back pairs, debt pairs
    row = np.concatenate([i, i, i[has_p], i[has_s]])
    col = np.concatenate([n_x + n + i, n_x + i, n_x + n + prev[has_p], shed[has_s]])
    coef = np.concatenate([np.ones(n), np.full(n, data.dt_h), -np.ones(int(has_p.sum())), -k[shed[has_s]]])
    a = _rows(row, col, coef, (n, n_x + 2 * n))
    m.debt_balance = pmo.matrix_constraint(a, rhs=0.0, x=(*_column(m), *m.payback_mw, *m.debt_mwh))


def add_objective(m: pmo.block, data: SheddingData) -> None:
    """Minimise cost-weighted shed energy + penalised slack + a small weight on upward changes (commands)."""
    dev = data.devices
    w = dev.weight[dev.pair_device] * data.dt_h * _pair_scale(data)
    coefs = np.concatenate([w, data.rows.penalty, np.full(dev.n_pair, data.rise_weight)]).tolist()
    xs = [*_column(m), *m.slack, *m.rise_mw]
    m.cost = pmo.objective(LinearExpression(list(map(MonomialTermExpression, zip(coefs, xs, strict=True)))))


def build_model(data: SheddingData) -> pmo.block:
    """Build the Pyomo model: curtailment, limits, rise (commands), min on-time, rebound, objective.

    The garbage collector is paused while the many small variable objects are created (as Pyomo's own
    writers do): its generational passes otherwise more than double the build time.
    """
    with PauseGC():
        m = pmo.block()
        add_curtailment(m, data)
        add_limits(m, data)
        add_rise(m, data)
        add_min_on_time(m, data)
        add_rebound(m, data)
        add_objective(m, data)
    return m
