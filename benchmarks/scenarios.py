"""Scenario-set benchmark: one-month load-scaling scenarios of SimBench 1-MV-urban--0-sw through scenarios.runner.

Each scenario scales every load (P and Q) of the grid by one factor, drawn from ``U(0.8, 1.6)`` with a seed, runs
:func:`solvers.run_pf_timeseries` over ``days`` × 96 quarter-hours of SimBench's own profiles (from 2016-01-01) and
keeps the statistics of :func:`summarize_loading`. The set runs on a LocalCluster with 1 and 2 workers (and,
for reference, in-process with ``scheduler="sync"``); the table gives wall time, speed-up and scenarios per hour,
and a paper estimate of 10,000 scenarios from the measured cost per scenario.

Timing: the cluster start and a per-worker warm-up (grid, profiles and numba caches loaded once per worker process,
see :func:`warm_up_worker`) are measured apart from the run of the set, which is what the speed-up compares.

Run ``python -m benchmarks.scenarios [--n 64] [--days 30] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from benchmarks.cases import SIMBENCH_CODE

if TYPE_CHECKING:
    from solvers.model import PFModel

__all__ = [
    "LoadScalingScenario",
    "build_load_scaling_set",
    "estimate_large_run",
    "format_tables",
    "main",
    "measure_cpu_ceiling",
    "run_load_scaling_scenario",
    "run_scenarios_bench",
    "summarize_loading",
    "warm_up_worker",
]

STEPS_PER_DAY = 96
STEP_H = 0.25
#: Percentiles of the loading duration curve, %.
DURATION_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 100.0)
FACTOR_RANGE = (0.8, 1.6)


@dataclass(frozen=True)
class LoadScalingScenario:
    """Payload of one scenario: every load of ``code`` times ``load_factor`` over the first ``days`` days."""

    code: str
    days: int
    load_factor: float
    seed: int


def build_load_scaling_set(
    n: int, days: int, *, seed: int = 0, code: str = SIMBENCH_CODE
) -> list[tuple[str, LoadScalingScenario]]:
    """Return ``n`` named scenarios; factor ``k`` is draw ``k`` of ``default_rng(seed).uniform(0.8, 1.6, n)``."""
    factors = np.random.default_rng(seed).uniform(*FACTOR_RANGE, size=n)
    return [(f"load-x{f:.3f}-{k:03d}", LoadScalingScenario(code, days, float(f), seed)) for k, f in enumerate(factors)]


@functools.lru_cache(maxsize=2)
def _base_case(code: str, days: int) -> tuple[PFModel, xr.Dataset]:
    """Compiled model and profiles of ``code`` for ``days`` days, built once per (worker) process."""
    import solvers
    import twin

    model = solvers.compile_grid(twin.from_simbench(code))
    profiles = twin.read_simbench_profiles(code, steps=days * STEPS_PER_DAY)
    return model, profiles


def warm_up_worker(code: str = SIMBENCH_CODE, days: int = 30) -> float:
    """Load the base case into this process's cache and run one short scenario (numba); return seconds."""
    t0 = time.perf_counter()
    _base_case(code, days)
    run_load_scaling_scenario(LoadScalingScenario(code, days, 1.0, 0), steps=STEPS_PER_DAY)
    return time.perf_counter() - t0


def run_load_scaling_scenario(payload: LoadScalingScenario, steps: int | None = None) -> xr.Dataset:
    """Run one load-scaling scenario and return its statistics (:func:`summarize_loading`).

    Parameters
    ----------
    payload : LoadScalingScenario
    steps : int, optional
        Only the first ``steps`` quarter-hours (warm-up); all ``days`` × 96 by default.
    """
    from solvers import run_pf_timeseries

    model, profiles = _base_case(payload.code, payload.days)
    prof = profiles.isel(time=slice(0, steps))
    pf = run_pf_timeseries(
        model,
        load_p_mw=prof["load_p_mw"] * payload.load_factor,
        load_q_mvar=prof["load_q_mvar"] * payload.load_factor,
        sgen_p_mw=prof["sgen_p_mw"],
    )
    return summarize_loading(pf).assign(load_factor=((), payload.load_factor, {"units": "1"}))


def summarize_loading(pf: xr.Dataset) -> xr.Dataset:
    """Per-scenario statistics of a time-series power flow (``run_pf_timeseries`` output, 15-min steps).

    Returns
    -------
    xarray.Dataset
        ``max_loading_pct`` (branch), %; ``hours_over_limit`` (branch), h above 100 % loading;
        ``loading_duration_pct`` (branch, percentile), % (loading duration curve at :data:`DURATION_PERCENTILES`);
        ``min_vm_pu``, ``max_vm_pu`` (bus), pu; scalars ``energy_loss_mwh``, MWh, and ``steps_not_converged``.
        Steps that did not converge are NaN in the power flow and left out of the statistics.
    """
    loading = pf["loading_pct"].transpose("time", "branch").to_numpy()
    ok = pf["converged"].to_numpy()
    curve = np.percentile(loading[ok], DURATION_PERCENTILES, axis=0).T if ok.any() else np.nan
    branch = pf["branch"].to_numpy().astype(object)
    bus = pf["bus"].to_numpy().astype(object)
    return xr.Dataset(
        {
            "max_loading_pct": ("branch", pf["loading_pct"].max("time").to_numpy(), {"units": "%"}),
            "hours_over_limit": ("branch", (loading > 100.0).sum(axis=0) * STEP_H, {"units": "h"}),
            "loading_duration_pct": (
                ("branch", "percentile"),
                np.broadcast_to(curve, (len(branch), len(DURATION_PERCENTILES))),
                {"units": "%"},
            ),
            "min_vm_pu": ("bus", pf["vm_pu"].min("time").to_numpy(), {"units": "pu"}),
            "max_vm_pu": ("bus", pf["vm_pu"].max("time").to_numpy(), {"units": "pu"}),
            "energy_loss_mwh": ((), float(pf["p_loss_mw"].sum()) * STEP_H, {"units": "MWh"}),
            "steps_not_converged": ((), int((~ok).sum())),
        },
        coords={"branch": branch, "bus": bus, "percentile": list(DURATION_PERCENTILES)},
    )


def _worker_threads() -> dict[str, Any]:
    """Thread settings seen inside a worker process (numba threads, the environment the runner set)."""
    import numba

    return {"numba_threads": numba.get_num_threads(), "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS")}


def _process_cpu_s() -> float:
    """CPU seconds (user + system, all threads) this process has used."""
    return time.process_time()


def _busy_loop(n: int) -> float:
    """A fixed pure-Python CPU load; returns its own seconds."""
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - t0


def measure_cpu_ceiling(n_processes: int, loops: int = 10_000_000) -> float:
    """Speed-up this machine gives ``n_processes`` CPU-bound processes right now (``n`` on idle cores).

    One process runs a fixed loop alone, then ``n_processes`` run it at once: ceiling = n × t_alone / t_together
    (wall). On a box shared with other jobs this is what any parallel run can reach at that moment.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(n_processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_busy_loop, [1000] * n_processes))  # start every process
        alone = pool.submit(_busy_loop, loops).result()
        t0 = time.perf_counter()
        list(pool.map(_busy_loop, [loops] * n_processes))
        together = time.perf_counter() - t0
    return n_processes * alone / together


def _run_on_cluster(
    items: list[tuple[str, LoadScalingScenario]], n_workers: int, stores: list[Path], days: int, progress: bool
) -> dict[str, Any]:
    """Start a LocalCluster of ``n_workers``, warm the workers up, run the set once per store; the fastest row."""
    from distributed import Client

    from scenarios.runner import run_set, start_local_cluster

    t0 = time.perf_counter()
    with start_local_cluster(n_workers) as cluster, Client(cluster) as client:
        cluster_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        client.run(warm_up_worker, items[0][1].code, days)
        warm_s = time.perf_counter() - t1
        threads = next(iter(client.run(_worker_threads).values()))
        address = cluster.scheduler_address
        ceiling = measure_cpu_ceiling(n_workers) if n_workers > 1 else 1.0
        runs = []
        for st in stores:
            cpu0 = client.run(_process_cpu_s)
            report = run_set(items, run_load_scaling_scenario, st, scheduler=address, progress=progress)
            cpu_s = sum(client.run(_process_cpu_s).values()) - sum(cpu0.values())
            runs.append(_report_fields(report, cpu_s))
    return {
        "mode": f"LocalCluster, {n_workers} worker{'s' if n_workers > 1 else ''}",
        "workers": n_workers,
        "cluster_start_s": cluster_s,
        "warm_up_s": warm_s,
        **min(runs, key=lambda r: r["run_s"]),
        "runs_s": [r["run_s"] for r in runs],
        "cpu_ceiling": ceiling,
        **threads,
    }


def _run_sync(
    items: list[tuple[str, LoadScalingScenario]], stores: list[Path], days: int, progress: bool
) -> dict[str, Any]:
    """The same set in this process (``scheduler="sync"``, numba's default threads): the reference without Dask."""
    from scenarios.runner import run_set

    t0 = time.perf_counter()
    warm_up_worker(items[0][1].code, days)
    warm_s = time.perf_counter() - t0
    runs = []
    for st in stores:
        cpu0 = _process_cpu_s()
        report = run_set(items, run_load_scaling_scenario, st, scheduler="sync", progress=progress)
        runs.append(_report_fields(report, _process_cpu_s() - cpu0))
    return {
        "mode": "in-process (sync)",
        "workers": 1,
        "cluster_start_s": 0.0,
        "warm_up_s": warm_s,
        **min(runs, key=lambda r: r["run_s"]),
        "runs_s": [r["run_s"] for r in runs],
        "cpu_ceiling": 1.0,
        **_worker_threads(),
    }


def _report_fields(report: Any, cpu_s: float) -> dict[str, Any]:
    """Row fields of one run; ``cpu_s`` = CPU seconds the scenario processes used during it."""
    if report.failed:
        from scenarios.runner import read_status

        status = read_status(report.store)
        raise RuntimeError(f"{len(report.failed)} scenarios failed, e.g. {status[report.failed[0]]}")
    return {
        "scenarios": len(report.ran),
        "run_s": report.seconds - report.setup_seconds,
        "write_s": report.write_seconds,
        "scenarios_per_hour": report.scenarios_per_hour,
        "cpu_s_per_scenario": cpu_s / len(report.ran),
        "cores_used": cpu_s / (report.seconds - report.setup_seconds),
    }


def run_scenarios_bench(
    n: int = 64,
    days: int = 30,
    *,
    workers: tuple[int, ...] = (1, 2),
    sync: bool = True,
    seed: int = 0,
    repeats: int = 1,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Run ``n`` load-scaling scenarios of ``days`` days in-process and on LocalClusters of ``workers`` workers.

    Each mode runs the set ``repeats`` times (fresh stores, same cluster) and keeps the fastest run: on a shared
    machine the minimum is the least disturbed figure (all runs are in ``runs_s``).

    Returns
    -------
    list of dict
        One row per mode: ``mode``, ``workers``, ``scenarios``, ``steps_per_scenario``, ``cluster_start_s``,
        ``warm_up_s``, ``run_s`` (the set, after start and warm-up), ``write_s`` (client's zarr writes),
        ``scenarios_per_hour``, ``worker_s_per_scenario`` (run_s × workers / scenarios), ``speedup`` (run_s of the
        1-worker cluster / run_s), ``same_results`` (results equal to the first mode's), and for clusters the numba
        threads seen inside a worker (``numba_threads``) and ``cpu_ceiling``, the speed-up the machine allowed
        that many CPU-bound processes just before the run (:func:`measure_cpu_ceiling`; 1 for one process);
        ``cpu_s_per_scenario`` (CPU seconds the workers, or this process for sync, used per scenario) and
        ``cores_used`` (those CPU seconds / run_s: below ``workers`` when other jobs took the cores).
    """
    from scenarios.runner import open_results

    items = build_load_scaling_set(n, days, seed=seed)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scenarios-") as tmp:
        modes = (["sync"] if sync else []) + [f"workers-{w}" for w in workers]
        stores = {m: [Path(tmp) / f"{m}-{k}.zarr" for k in range(repeats)] for m in modes}
        if sync:
            rows.append(_run_sync(items, stores["sync"], days, progress))
        rows += [_run_on_cluster(items, w, stores[f"workers-{w}"], days, progress) for w in workers]
        reference = open_results(stores[modes[0]][0]).drop_vars("run_seconds")
        for row, mode in zip(rows, modes, strict=True):
            row["same_results"] = all(
                reference.identical(open_results(st).drop_vars("run_seconds")) for st in stores[mode]
            )
    base = next((r["run_s"] for r in rows if r["workers"] == 1 and r["cluster_start_s"] > 0), rows[0]["run_s"])
    for row in rows:
        row["steps_per_scenario"] = days * STEPS_PER_DAY
        row["worker_s_per_scenario"] = row["run_s"] * row["workers"] / row["scenarios"]
        row["speedup"] = base / row["run_s"]
    return rows


def estimate_large_run(
    rows: list[dict[str, Any]], n_scenarios: int = 10_000, cluster_workers: tuple[int, ...] = (2, 16, 64, 256)
) -> list[dict[str, Any]]:
    """Paper estimate of ``n_scenarios`` on clusters of ``cluster_workers`` workers (one dedicated core each).

    Compute: ``n × cost / N``, ``cost`` = CPU seconds per scenario inside the workers of the largest measured
    cluster (power flow, statistics, encoding and Dask's worker-side work; CPU time, so other jobs on a shared box
    inflate it far less than wall time). A worker with a core to itself turns CPU seconds into wall seconds 1:1.
    Floor: the client writes results one after another, so the run takes at least ``n × write_s / scenarios``
    however many workers there are.
    """
    clusters = [r for r in rows if r["cluster_start_s"] > 0]
    big = max(clusters, key=lambda r: r["workers"])
    cost_s = big["cpu_s_per_scenario"]
    write_s = big["write_s"] / big["scenarios"]
    out = []
    for n_workers in cluster_workers:
        compute_h = n_scenarios * cost_s / n_workers / 3600
        floor_h = n_scenarios * write_s / 3600
        out.append(
            {
                "workers": n_workers,
                "scenarios": n_scenarios,
                "hours": max(compute_h, floor_h),
                "compute_hours": compute_h,
                "client_write_floor_hours": floor_h,
                "cpu_s_per_scenario": cost_s,
            }
        )
    return out


def format_tables(rows: list[dict[str, Any]], estimate: list[dict[str, Any]]) -> str:
    """Markdown tables of the measured rows and of the estimate."""
    lines = [
        "| mode | scenarios | steps each | cluster start s | warm-up s | run s | speed-up | scenarios/h "
        "| worker-s/scenario | CPU s/scenario | cores used | write s | numba threads | CPU ceiling | same results |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['mode']} | {r['scenarios']} | {r['steps_per_scenario']:,} | {r['cluster_start_s']:.1f} "
        f"| {r['warm_up_s']:.1f} | {r['run_s']:.1f} | {r['speedup']:.2f}× | {r['scenarios_per_hour']:,.0f} "
        f"| {r['worker_s_per_scenario']:.3f} | {r['cpu_s_per_scenario']:.3f} | {r['cores_used']:.2f} "
        f"| {r['write_s']:.1f} | {r['numba_threads']} "
        f"| {r['cpu_ceiling']:.2f}× | {r['same_results']} |"
        for r in rows
    ]
    head = estimate[0]
    lines += [
        "",
        f"Paper estimate, {head['scenarios']:,} scenarios at {head['cpu_s_per_scenario']:.3f} CPU-s each "
        "(one dedicated core per worker):",
        "",
        "| workers | hours | compute h | client write floor h |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {e['workers']} | {e['hours']:.2f} | {e['compute_hours']:.2f} | {e['client_write_floor_hours']:.2f} |"
        for e in estimate
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.scenarios``: run the benchmark, print the tables, optionally write JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scenarios", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="scenarios (default 64)")
    parser.add_argument("--days", type=int, default=30, help="days per scenario, 96 steps each (default 30)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="LocalCluster sizes (default 1 2)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode, fastest kept (default 1)")
    parser.add_argument("--no-sync", action="store_true", help="skip the in-process reference run")
    parser.add_argument("--progress", action="store_true", help="progress bars on stderr")
    parser.add_argument("--out", type=Path, help="also write the rows and the estimate as JSON")
    args = parser.parse_args(argv)
    rows = run_scenarios_bench(
        args.n,
        args.days,
        workers=tuple(args.workers),
        sync=not args.no_sync,
        repeats=args.repeats,
        progress=args.progress,
    )
    estimate = estimate_large_run(rows)
    print(format_tables(rows, estimate))
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "estimate": estimate}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
