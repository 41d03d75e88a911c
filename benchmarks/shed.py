"""``bench shed``: build and solve times of the shedding LP (Pyomo paths vs linopy), and the MV plan end to end.

Cases: (a) SimBench "1-MV-urban--0-sw" electrified (60 % EVs and heat pumps), 2016-01-06, every device
controllable, 96 steps; (b) a synthetic radial case: 100 feeders × 100 loads = 10,000 devices × 96 steps, every
(feeder, step) and (transformer, step) limited. The same :class:`SheddingData` is built three ways:

- ``pyomo+matrix``: :func:`solvers.shedding.build.build_model` (``pyomo.kernel`` block, one ``matrix_constraint``
  per family), then :func:`solvers.shedding.highs.compile_highs` (the path :func:`plan_shedding` uses);
- ``pyomo-environ+appsi``: :func:`environ_model` (``pyomo.environ``, one ``LinearExpression`` per row) through
  ``pyomo.contrib.appsi.solvers.Highs`` (Pyomo's own row-by-row translation);
- ``linopy``: vectorised linopy model (rows bucketed by length, padded) and ``to_highspy``.

"build" is model construction plus translation into HiGHS; "solve" is ``Highs.run``. Run: ``python -m benchmarks.shed``
(``--build-only``, ``--no-appsi``, ``--repeat N``: fastest of N builds per path).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np

from solvers.shedding.data import Devices, RowBlock, SheddingData, build_data

__all__ = ["environ_model", "format_table", "run_shed_bench", "synthetic_data"]

MV = "1-MV-urban--0-sw"


def synthetic_data(n_feeder: int = 100, per_feeder: int = 100, n_t: int = 96, seed: int = 0) -> SheddingData:
    """A radial shedding problem: ``n_feeder × per_feeder`` loads, a limit per feeder and one on the transformer."""
    rng = np.random.default_rng(seed)
    n_dev = n_feeder * per_feeder
    dev = np.repeat(np.arange(n_dev), n_t)
    t = np.tile(np.arange(n_t), n_dev)
    ub = rng.uniform(0.01, 0.1, n_dev * n_t)
    devices = Devices(
        ids=np.array([f"load/{i}" for i in range(n_dev)], dtype=object),
        kind=np.full(n_dev, "load", dtype=object),
        elem_pos=np.arange(n_dev),
        bus_idx=np.arange(n_dev),
        weight=rng.uniform(1.0, 3.0, n_dev),
        pair_device=dev,
        pair_time=t,
        ub_mw=ub,
        effect_p=np.ones(len(dev)),
        effect_q=np.full(len(dev), 0.2),
        pair_pos=np.arange(n_dev * n_t).reshape(n_dev, n_t),
    )
    feeder = dev // per_feeder
    # rows: feeder f at step s (n_feeder × n_t), then the transformer at step s (n_t); coef = -%/MW relief
    row_feeder = feeder * n_t + t
    row_trafo = n_feeder * n_t + t
    row = np.concatenate([row_feeder, row_trafo])
    pair = np.concatenate([np.arange(len(dev)), np.arange(len(dev))])
    coef = np.concatenate([-rng.uniform(5, 15, len(dev)), -rng.uniform(0.05, 0.15, len(dev))])
    order = np.argsort(row, kind="stable")
    n_row = n_feeder * n_t + n_t
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n_row))])
    over = np.concatenate([rng.uniform(-20, 20, n_feeder * n_t), rng.uniform(0, 30, n_t)])
    rows = RowBlock(
        kind=np.full(n_row, "loading", dtype=object),
        entity=np.array([f"line/{i // n_t}" for i in range(n_feeder * n_t)] + ["trafo/0"] * n_t, dtype=object),
        time=np.concatenate([np.arange(n_feeder * n_t) % n_t, np.arange(n_t)]),
        indptr=indptr.astype(np.int64),
        pair=pair[order],
        coef=coef[order],
        rhs=-over,
        penalty=np.full(n_row, 1e4),
        scale=np.ones(n_row),
    )
    return build_data(devices, rows, 0.25)


def _times(t0: float, t1: float, t2: float) -> dict[str, float]:
    """Model construction, hand-over to the solver and their sum (build), seconds."""
    return {"model_s": t1 - t0, "translate_s": t2 - t1, "build_s": t2 - t0}


def _pyomo_matrix(data: SheddingData, *, solve: bool = True) -> dict[str, float]:
    from solvers.shedding.build import build_model
    from solvers.shedding.highs import compile_highs

    t0 = time.perf_counter()
    m = build_model(data)
    t1 = time.perf_counter()
    comp = compile_highs(m)
    t2 = time.perf_counter()
    if not solve:
        return _times(t0, t1, t2)
    comp.highs.run()
    t3 = time.perf_counter()
    return {**_times(t0, t1, t2), "solve_s": t3 - t2, "objective": comp.highs.getInfo().objective_function_value}


def environ_model(data: SheddingData) -> Any:
    """The continuous LP as a ``pyomo.environ`` model, one ``LinearExpression`` per row (the per-row reference).

    Same variables, rows and objective as :func:`solvers.shedding.build.build_model` (continuous mode, no
    rebound); used to time Pyomo's own translation and to check the matrix path against it.
    """
    import pyomo.environ as pyo
    from pyomo.common.gc_manager import PauseGC
    from pyomo.core.expr.numeric_expr import LinearExpression

    dev, rows = data.devices, data.rows
    ub, prev = dev.ub_mw.tolist(), dev.neighbour(-1).tolist()
    coef, pair, ptr, rhs = rows.coef.tolist(), rows.pair.tolist(), rows.indptr.tolist(), rows.rhs.tolist()
    with PauseGC():
        m = pyo.ConcreteModel()
        m.PAIRS, m.ROWS = pyo.RangeSet(0, dev.n_pair - 1), pyo.RangeSet(0, rows.n_row - 1)
        m.shed_mw = pyo.Var(m.PAIRS, bounds=lambda _, i: (0.0, ub[i]))
        m.slack = pyo.Var(m.ROWS, within=pyo.NonNegativeReals)
        m.rise_mw = pyo.Var(m.PAIRS, within=pyo.NonNegativeReals)
        x, sl, rise = list(m.shed_mw.values()), list(m.slack.values()), list(m.rise_mw.values())

        def limit(_: Any, r: int) -> tuple:
            s, e = ptr[r], ptr[r + 1]
            lin = LinearExpression(
                constant=0.0, linear_coefs=[*coef[s:e], -1.0], linear_vars=[*(x[j] for j in pair[s:e]), sl[r]]
            )
            return (None, lin, rhs[r])

        def rise_row(_: Any, i: int) -> tuple:
            j = prev[i]
            return (None, x[i] - rise[i] if j < 0 else x[i] - x[j] - rise[i], 0.0)

        m.limit_upper = pyo.Constraint(m.ROWS, rule=limit)
        m.rise_lower = pyo.Constraint(m.PAIRS, rule=rise_row)
        w = (dev.weight[dev.pair_device] * data.dt_h).tolist()
        cost = [*w, *rows.penalty.tolist(), *([data.rise_weight] * dev.n_pair)]
        m.cost = pyo.Objective(expr=LinearExpression(constant=0.0, linear_coefs=cost, linear_vars=[*x, *sl, *rise]))
    return m


def _pyomo_appsi(data: SheddingData, *, solve: bool = True) -> dict[str, float]:
    from pyomo.contrib.appsi.solvers import Highs

    t0 = time.perf_counter()
    m = environ_model(data)
    t1 = time.perf_counter()
    opt = Highs()
    opt.config.stream_solver = False
    opt.set_instance(m)
    t2 = time.perf_counter()
    if not solve:
        return _times(t0, t1, t2)
    res = opt.solve(m)
    t3 = time.perf_counter()
    return {**_times(t0, t1, t2), "solve_s": t3 - t2, "objective": float(res.best_feasible_objective)}


def _padded(indptr: np.ndarray, cols: np.ndarray, coefs: np.ndarray, rows: np.ndarray) -> tuple:
    """Rows ``rows`` of a CSR as padded (row, term) arrays (vars -1, coef 0 where absent)."""
    length = indptr[rows + 1] - indptr[rows]
    width = int(length.max(initial=0))
    term = np.arange(width)
    pos = indptr[rows][:, None] + term[None, :]
    ok = term[None, :] < length[:, None]
    pos = np.where(ok, pos, 0)
    return np.where(ok, cols[pos], -1), np.where(ok, coefs[pos], 0.0)


def _linopy(data: SheddingData, *, solve: bool = True) -> dict[str, float]:
    import linopy
    import pandas as pd
    import xarray as xr

    t0 = time.perf_counter()
    dev, rows = data.devices, data.rows
    m = linopy.Model()
    pairs = pd.RangeIndex(dev.n_pair, name="pair")
    x = m.add_variables(lower=0.0, upper=xr.DataArray(dev.ub_mw, coords=[pairs]), name="shed_mw")
    slack = m.add_variables(lower=0.0, coords=[pd.RangeIndex(rows.n_row, name="row")], name="slack")
    rise = m.add_variables(lower=0.0, coords=[pairs], name="rise_mw")
    xl, sl = x.labels.to_numpy(), slack.labels.to_numpy()
    length = np.diff(rows.indptr)
    bucket = np.ceil(np.log2(np.maximum(length, 1))).astype(int)  # rows of similar length share a padded block
    for b in np.unique(bucket):
        r = np.flatnonzero(bucket == b)
        v, c = _padded(rows.indptr, xl[rows.pair], rows.coef, r)
        v = np.hstack([v, sl[r][:, None]])
        c = np.hstack([c, -np.ones((len(r), 1))])
        dims = (f"row{b}", "_term")
        lhs = linopy.LinearExpression(xr.Dataset({"coeffs": (dims, c), "vars": (dims, v)}), m)
        m.add_constraints(lhs <= xr.DataArray(rows.rhs[r], dims=dims[0]), name=f"limit_upper_{b}")
    prev = dev.neighbour(-1)
    v = np.stack([xl, np.where(prev >= 0, xl[np.maximum(prev, 0)], -1), rise.labels.to_numpy()], axis=1)
    c = np.stack([np.ones(dev.n_pair), np.where(prev >= 0, -1.0, 0.0), -np.ones(dev.n_pair)], axis=1)
    lhs = linopy.LinearExpression(xr.Dataset({"coeffs": (("pair", "_term"), c), "vars": (("pair", "_term"), v)}), m)
    m.add_constraints(lhs <= 0.0, name="rise_lower")
    w = xr.DataArray(dev.weight[dev.pair_device] * data.dt_h, coords=[pairs])
    penalty = xr.DataArray(rows.penalty, dims="row")
    m.add_objective((w * x).sum() + (penalty * slack).sum() + data.rise_weight * rise.sum())
    t1 = time.perf_counter()
    h = m.to_highspy()
    h.setOptionValue("output_flag", False)
    t2 = time.perf_counter()
    if not solve:
        return _times(t0, t1, t2)
    h.run()
    t3 = time.perf_counter()
    return {**_times(t0, t1, t2), "solve_s": t3 - t2, "objective": h.getInfo().objective_function_value}


def _mv_case() -> tuple[Any, Any]:
    import twin
    from scenarios.electrify import electrify

    grid, prof = twin.load(MV), twin.read_simbench_profiles(MV, steps=96 * 7)
    grid, prof = electrify(grid, prof, ev_share=0.6, hp_share=0.6, seed=0)
    return grid, prof.sel(time="2016-01-06")


def run_shed_bench(
    *, synthetic: bool = True, appsi: bool = True, solve: bool = True, repeat: int = 1
) -> list[dict[str, Any]]:
    """Time build and solve per path and case, and the MV plan end to end (incl. AC re-check).

    ``solve=False`` times the builds only; ``repeat`` > 1 builds every case and path that many times, in turn,
    and keeps each path's fastest run (the dev box is shared: the minimum is the least disturbed figure).

    Returns
    -------
    list of dict
        One row per (case, path): ``case``, ``path``, ``pairs``, ``rows``, ``nnz``, ``model_s``, ``translate_s``,
        ``build_s``, ``solve_s``, ``objective``; then ``build_ratio_pyomo_linopy`` rows and one ``end_to_end``
        row for the MV plan (``total_s`` and its parts).
    """
    from solvers.shedding import plan_shedding
    from solvers.shedding.verify import prepare_data

    grid, day = _mv_case()
    plan_shedding(grid, day)  # warm-up: numba power-flow kernels, imports
    t0 = time.perf_counter()
    plan = plan_shedding(grid, day)
    e2e = {"case": "MV plan (96 steps)", "path": "end_to_end", "total_s": time.perf_counter() - t0}
    e2e.update(plan.meta["timings"])
    e2e["iterations"] = len(plan.iterations)
    cases = {"MV electrified x 96": prepare_data(grid, day)}
    if synthetic:
        cases["synthetic 10k x 96"] = synthetic_data()
    paths = {"pyomo+matrix": _pyomo_matrix}
    if appsi:
        paths["pyomo-environ+appsi"] = _pyomo_appsi
    if importlib.util.find_spec("linopy") is not None:
        paths["linopy"] = _linopy
    out: list[dict[str, Any]] = []
    for case, data in cases.items():
        size = {"pairs": data.devices.n_pair, "rows": data.rows.n_row, "nnz": len(data.rows.coef)}
        by_path: dict[str, dict[str, float]] = {}
        for _ in range(max(1, repeat)):
            for name, fn in paths.items():
                run = fn(data, solve=solve)
                if name not in by_path or run["build_s"] < by_path[name]["build_s"]:
                    by_path[name] = run
        out += [{"case": case, "path": name, **size, **run} for name, run in by_path.items()]
        if "linopy" in by_path:
            ratio = by_path["pyomo+matrix"]["build_s"] / by_path["linopy"]["build_s"]
            out.append({"case": case, "path": "build_ratio_pyomo_linopy", "ratio": ratio})
    out.append(e2e)
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """Return the rows of :func:`run_shed_bench` as a pipe-separated text table."""
    cols = ["case", "path", "pairs", "rows", "nnz", "model_s", "translate_s", "build_s", "solve_s", "objective"]
    cols += ["ratio", "total_s"]
    lines = [" | ".join(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m benchmarks.shed", description=__doc__.splitlines()[0])
    parser.add_argument("--build-only", action="store_true", help="time the builds, do not solve")
    parser.add_argument("--no-appsi", action="store_true", help="skip the pyomo.environ + appsi path (slow)")
    parser.add_argument("--repeat", type=int, default=1, help="builds per path; the fastest is kept")
    args = parser.parse_args()
    rows = run_shed_bench(appsi=not args.no_appsi, solve=not args.build_only, repeat=args.repeat)
    sys.stdout.write(format_table(rows) + "\n")
