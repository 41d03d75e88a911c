"""Pyomo kernel model → matrices → one ``Highs.passModel`` call → solution arrays.

:func:`solvers.shedding.build.build_model` writes every constraint family as a ``matrix_constraint``, so the
compiler reads each family's CSR matrix, bounds and variable tuple from the model instead of walking one
expression per row (Pyomo's ``LinearStandardFormCompiler`` and its HiGHS interfaces do the latter; figures in
``docs/design/shedding.md``). Columns are the model's variables in declaration order and rows its constraint
families in declaration order, so values and row duals map back to the families by slices.
"""

from __future__ import annotations

import operator
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import highspy
import numpy as np
import pyomo.kernel as pmo
import scipy.sparse as sp
from numpy.typing import NDArray
from pyomo.common.gc_manager import PauseGC
from pyomo.core.expr.numeric_expr import LinearExpression
from pyomo.core.kernel.block import IBlock
from pyomo.core.kernel.constraint import IConstraint
from pyomo.core.kernel.objective import IObjective
from pyomo.core.kernel.set_types import IntegerSet
from pyomo.core.kernel.variable import IVariable

__all__ = ["HighsResult", "compile_highs", "solve_highs"]


@dataclass
class HighsResult:
    """Solution of one HiGHS run, in the model's column and row order."""

    status: str
    objective: float
    mip_gap: float
    x: dict[str, NDArray[np.float64]]  # variable family name → values in index order
    row_dual: dict[str, NDArray[np.float64]]  # constraint family name → dual per row
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Compiled:
    highs: highspy.Highs
    col_slices: dict[str, slice]
    row_slices: dict[str, slice]
    is_mip: bool
    timings: dict[str, float]


@dataclass
class _Columns:
    """The model's variables in column order, with where each family starts."""

    vars: list[Any]
    slices: dict[str, slice]
    first: dict[int, tuple[int, int]]  # id of a family's first variable → (start, length)


def _columns(m: pmo.block) -> _Columns:
    """Variables of ``m`` family by family in declaration order; sub-blocks are refused (they would be skipped)."""
    sub = next(iter(m.children(ctype=IBlock)), None)
    if sub is not None:
        raise TypeError(f"block {sub.name!r}: only flat blocks can be compiled, move its components up")
    vars_: list[Any] = []
    slices, first = {}, {}
    for fam in m.children(ctype=IVariable):
        members = [fam] if isinstance(fam, IVariable) else list(fam)
        if not all(issubclass(t, IVariable) for t in set(map(type, members))):
            members = list(fam.components())  # nested containers
        slices[fam.local_name] = slice(len(vars_), len(vars_) + len(members))
        if members:
            first[id(members[0])] = (len(vars_), len(members))
        vars_ += members
    return _Columns(vars_, slices, first)


def _bounds(cols: list[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Lower and upper bounds (fixed variables: both at the value) and integrality of each column."""
    n = len(cols)
    lo = _numbers(map(operator.attrgetter("lower"), cols), n)
    hi = _numbers(map(operator.attrgetter("upper"), cols), n)
    fixed = np.fromiter(map(operator.attrgetter("fixed"), cols), dtype=bool, count=n)
    if fixed.any():
        val = _numbers((v.value for v, f in zip(cols, fixed.tolist(), strict=True) if f), int(fixed.sum()))
        if np.isnan(val).any():
            raise ValueError("a fixed variable has no value; give it one with var.fix(value)")
        lo[fixed], hi[fixed] = val, val
    integer = np.fromiter(
        map(partial(operator.is_, IntegerSet), map(operator.attrgetter("domain_type"), cols)), dtype=bool, count=n
    )
    return np.nan_to_num(lo, nan=-np.inf), np.nan_to_num(hi, nan=np.inf), integer


def _numbers(values: Iterable[Any], n: int) -> NDArray[np.float64]:
    """Floats of bounds or values that are numbers, None (NaN) or Pyomo parameters (their value)."""
    items = list(values)
    try:
        out = np.array(items, dtype=float)
    except TypeError:
        out = np.array([pmo.value(v) if v is not None else None for v in items], dtype=float)
    if out.shape != (n,):
        raise ValueError(f"expected {n} numbers, got shape {out.shape}")
    return out


def _column_map(x: tuple[Any, ...], cols: _Columns) -> NDArray[np.int64]:
    """Column of every variable in ``x``: whole families are matched by identity, anything else by lookup."""
    out, p = [], 0
    while p < len(x):
        start, n = cols.first.get(id(x[p]), (-1, 0))
        if start >= 0 and all(map(operator.is_, x[p : p + n], cols.vars[start : start + n])):
            out.append(np.arange(start, start + n))
            p += n
            continue
        pos = {id(v): k for k, v in enumerate(cols.vars)}
        try:
            out.append(np.fromiter((pos[id(v)] for v in x[p:]), dtype=np.int64, count=len(x) - p))
        except KeyError as err:
            raise ValueError("a constraint refers to a variable that is not part of the model") from err
        break
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _constraint_rows(m: pmo.block, cols: _Columns) -> tuple[sp.csr_matrix, NDArray, NDArray, dict[str, slice]]:
    """Stack the ``matrix_constraint`` families of ``m``: matrix, row lower and upper bounds, row slices."""
    blocks, lo, hi, slices, n_row = [], [], [], {}, 0
    for con in m.children(ctype=IConstraint):
        if not isinstance(con, pmo.matrix_constraint):
            raise TypeError(f"constraint {con.name!r}: only matrix_constraint families can be compiled")
        if con.x is None:
            raise ValueError(f"constraint {con.name!r} has no variables; give matrix_constraint its x")
        a = con.A.tocoo()
        blocks.append(sp.csr_matrix((a.data, (a.row, _column_map(con.x, cols)[a.col])), (a.shape[0], len(cols.vars))))
        active = np.fromiter(map(operator.attrgetter("active"), con), dtype=bool, count=a.shape[0]) & con.active
        lo.append(np.where(active, con.lb, -np.inf))
        hi.append(np.where(active, con.ub, np.inf))
        slices[con.local_name] = slice(n_row, n_row + a.shape[0])
        n_row += a.shape[0]
    if not blocks:
        return sp.csr_matrix((0, len(cols.vars))), np.zeros(0), np.zeros(0), slices
    return sp.vstack(blocks, format="csr"), np.concatenate(lo), np.concatenate(hi), slices


def _objective(m: pmo.block, cols: _Columns) -> tuple[NDArray[np.float64], float, bool]:
    """Cost per column, constant and ``is_max`` of the single active linear objective."""
    objs = [o for o in m.children(ctype=IObjective) if o.active]
    if len(objs) != 1 or not isinstance(objs[0], pmo.objective) or not isinstance(objs[0].expr, LinearExpression):
        raise ValueError("the model needs exactly one active objective, a LinearExpression")
    expr = objs[0].expr
    coefs = expr.linear_coefs
    col = _column_map(expr.linear_vars, cols)
    cost = np.bincount(col, weights=_numbers(coefs, len(coefs)), minlength=len(cols.vars))  # repeated terms add up
    return cost, float(pmo.value(expr.constant)), objs[0].sense == pmo.maximize


def _new_highs() -> highspy.Highs:
    """A silent HiGHS instance. The first one of a process prints a licence banner from C++ to the stdout file
    descriptor, before any option can be set; it is sent to /dev/null so that ``--json`` output stays parseable."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with Path(os.devnull).open("w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    h.setOptionValue("output_flag", False)
    return h


def compile_highs(m: pmo.block, *, time_limit_s: float | None = None) -> _Compiled:
    """Read the variables, ``matrix_constraint`` families and linear objective of ``m`` into a ``highspy.Highs``.

    Bounds, matrix and costs go in as numpy arrays (``addVars``, ``addRows``): filling a ``HighsLp`` copies
    them element by element and takes longer than reading the model.
    """
    t0 = time.perf_counter()
    with PauseGC():
        cols = _columns(m)
        lb, ub, integer = _bounds(cols.vars)
        a, row_lo, row_hi, row_slices = _constraint_rows(m, cols)
        cost, offset, is_max = _objective(m, cols)
    t1 = time.perf_counter()
    h = _new_highs()
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    n_col = len(cols.vars)
    h.addVars(n_col, lb, ub)  # numpy buffers straight into HiGHS (HighsLp attributes copy element-wise)
    h.changeColsCost(n_col, np.arange(n_col, dtype=np.int32), cost)
    h.changeObjectiveOffset(offset)
    if is_max:
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    if integer.any():
        idx = np.flatnonzero(integer).astype(np.int32)
        h.changeColsIntegrality(len(idx), idx, np.ones(len(idx), dtype=np.uint8))
    h.addRows(a.shape[0], row_lo, row_hi, a.nnz, a.indptr.astype(np.int32), a.indices.astype(np.int32), a.data)
    t2 = time.perf_counter()
    timings = {"standard_form_s": t1 - t0, "pass_model_s": t2 - t1}
    return _Compiled(h, cols.slices, row_slices, bool(integer.any()), timings)


def solve_highs(m: pmo.block, *, time_limit_s: float | None = None) -> HighsResult:
    """Solve ``m`` with HiGHS through :func:`compile_highs`; values and duals come back as arrays."""
    comp = compile_highs(m, time_limit_s=time_limit_s)
    h = comp.highs
    t0 = time.perf_counter()
    h.run()
    t1 = time.perf_counter()
    status = h.modelStatusToString(h.getModelStatus())
    sol = h.getSolution()
    info = h.getInfo()
    x = np.asarray(sol.col_value, dtype=float)
    dual = np.asarray(sol.row_dual, dtype=float) if sol.dual_valid else np.full(h.getNumRow(), np.nan)
    gap = float(info.mip_gap) if comp.is_mip else 0.0
    return HighsResult(
        status=status,
        objective=float(info.objective_function_value),
        mip_gap=gap,
        x={k: x[s] for k, s in comp.col_slices.items()},
        row_dual={k: dual[s] for k, s in comp.row_slices.items()},
        timings={**comp.timings, "solve_s": t1 - t0},
    )
