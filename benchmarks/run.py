"""Run the benchmark suites side by side with the peers, print a Markdown table and write JSON.

Usage::

    python -m benchmarks.run pf [--quick] [--repeats N] [--out results.json] [--full-year]
    gridtwin bench pf ...          # the CLI forwards its arguments to :func:`main`

All tools run in this one process, one after another, on the same pandapower net. A time is the
median of ``--repeats`` timed calls after one untimed warm-up call (numba JIT, caches). The ratio
of a peer row is ``peer time / gridtwin time`` of the same suite and case, so ``> 1`` means
gridtwin is faster.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks import cases
from benchmarks.peers import GridtwinPeer, LightsimPeer, PandapowerPeer, PeerNotInstalled, lightsim2grid_version
from benchmarks.timing import timed

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

__all__ = [
    "CASE_SIZES",
    "SuiteConfig",
    "case_list",
    "machine_info",
    "main",
    "summarize",
    "to_markdown",
    "year_memory_worker",
]

SUITES = ("single", "snapshots", "simbench", "year")


@dataclass(frozen=True)
class SuiteConfig:
    """Sizes of the ``pf`` suites (full run, ``--quick`` or the hidden ``--smoke``)."""

    single_cases: tuple[str, ...] = cases.SINGLE_PF_CASES
    snapshot_case: str = cases.SNAPSHOT_CASE
    n_snapshots: int = 1000
    simbench_code: str = cases.SIMBENCH_CODE
    n_simbench_steps: int = 2976
    pp_steps: int = 20
    repeats: int = 7
    year_steps: int = cases.SIMBENCH_YEAR_STEPS
    tol_pu: float = 1e-8
    max_iter: int = 30


@dataclass
class Row:
    """One line of the results table (and of the JSON ``results`` list)."""

    suite: str
    case: str
    tool: str
    setting: str
    key: str
    status: str = "ok"
    time_s: float | None = None
    times_s: list[float] = field(default_factory=list)
    n_steps: int | None = None
    per_step_s: float | None = None
    ratio: float | None = None
    max_dvm_pu: float | None = None
    is_reference: bool = False
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _max_abs_diff(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    diff = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    return float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")


def _peer_row(row: Row, fn: Callable[[], None]) -> Row:
    """Fill ``row`` by ``fn``; a peer that is not installed or fails is reported in the row, not raised."""
    try:
        fn()
    except PeerNotInstalled:
        row.status = "not installed"
    except Exception as err:  # a peer's failure is a result of the benchmark, reported in the table
        row.status = f"failed: {type(err).__name__}: {err}"
    return row


def _set_ratio(rows: list[Row], reference: Row) -> None:
    """Ratio = peer time / reference time (per step for batches)."""
    for row in rows:
        if row.tool == reference.tool or row.status != "ok":
            continue
        mine = row.per_step_s if row.per_step_s is not None else row.time_s
        ref = reference.per_step_s if reference.per_step_s is not None else reference.time_s
        if mine is not None and ref:
            row.ratio = mine / ref


# ---------------------------------------------------------------- suite 1: single power flow


def run_single_pf(name: str, cfg: SuiteConfig) -> list[Row]:
    """Warm single AC power flow on ``name``: gridtwin on a compiled model vs lightsim2grid and pandapower."""
    net = cases.build_net(name)
    init = cases.initial_voltage_method(net)
    opts = {"tol_pu": cfg.tol_pu, "max_iter": cfg.max_iter, "init": init}
    gt = GridtwinPeer(net, name, **opts)
    compile_s, compile_times, _ = timed(gt.compile, cfg.repeats)
    solve_s, solve_times, vm_ref = timed(gt.run_pf, cfg.repeats)
    e2e_s, e2e_times, _ = timed(gt.run_pf_end_to_end, cfg.repeats)
    vonly_s, vonly_times, _ = timed(gt.run_voltages, cfg.repeats)
    base = {"suite": "single", "case": name}
    ref = Row(**base, tool="gridtwin", setting="run_pf(model), compiled", key="gridtwin", time_s=solve_s)
    ref.times_s = solve_times
    ref.is_reference = True
    ref.extra = {"n_bus": len(net.bus), "init": init}
    rows = [
        ref,
        Row(**base, tool="gridtwin", setting="compile_grid(grid)", key="gridtwin_compile", time_s=compile_s),
        Row(**base, tool="gridtwin", setting="run_pf(grid), end to end", key="gridtwin_end_to_end", time_s=e2e_s),
        Row(
            **base,
            tool="gridtwin",
            setting="solve_voltages(model), voltages only",
            key="gridtwin_voltages_only",
            time_s=vonly_s,
        ),
    ]
    rows[1].times_s, rows[2].times_s, rows[3].times_s = compile_times, e2e_times, vonly_times
    n_own = len(rows)
    rows += _lightsim_single_rows(net, opts, base, vm_ref, cfg.repeats)
    rows.append(_pandapower_single_row(net, opts, base, vm_ref, cfg.repeats))
    _set_ratio(rows, ref)
    for row in rows[n_own:]:
        if row.status == "ok" and row.time_s:
            row.extra["ratio_vs_gridtwin_end_to_end"] = row.time_s / e2e_s
            if row.tool == "lightsim2grid" and row.key != "lightsim2grid_with_results":
                # like with like: ac_pf returns voltages only, so is compared with solve_voltages
                row.extra["ratio_vs_gridtwin_voltages_only"] = row.time_s / vonly_s
                row.note = f"{row.time_s / vonly_s:.2f} vs solve_voltages"
    return rows


def _lightsim_single_rows(
    net: Any, opts: dict[str, Any], base: dict[str, str], vm_ref: NDArray[np.float64], repeats: int
) -> list[Row]:
    settings = {True: "ac_pf, cache reused (default)", False: "ac_pf, prevent_ac_cache_reuse()"}
    keys = {True: "lightsim2grid", False: "lightsim2grid_nocache"}
    rows = [Row(**base, tool="lightsim2grid", setting=s, key=keys[r]) for r, s in settings.items()]
    peer: list[LightsimPeer] = []

    def _build() -> None:
        peer.append(LightsimPeer(net, **opts))

    _peer_row(rows[0], _build)
    if not peer:
        for row in rows[1:]:
            row.status = rows[0].status
        return rows
    for row, reuse in zip(rows, settings, strict=True):

        def _measure(row: Row = row, reuse: bool = reuse) -> None:
            row.time_s, row.times_s, vm = timed(lambda: peer[0].run_pf(reuse_cache=reuse), repeats)
            row.max_dvm_pu = _max_abs_diff(vm, vm_ref)
            row.extra["algorithm"] = peer[0].algorithm

        _peer_row(row, _measure)
    full = Row(
        **base, tool="lightsim2grid", setting="ac_pf + get_V/line/trafo results", key="lightsim2grid_with_results"
    )

    def _measure_full() -> None:
        full.time_s, full.times_s, _ = timed(peer[0].run_pf_with_results, repeats)
        full.note = "like run_pf(model): voltages and branch results"

    rows.append(_peer_row(full, _measure_full))
    return rows


def _pandapower_single_row(
    net: Any, opts: dict[str, Any], base: dict[str, str], vm_ref: NDArray[np.float64], repeats: int
) -> Row:
    setting = f"runpp(lightsim2grid=False, init={opts['init']!r})"
    row = Row(**base, tool="pandapower", setting=setting, key="pandapower")

    def _measure() -> None:
        peer = PandapowerPeer(net, **opts)
        row.time_s, row.times_s, vm = timed(peer.run_pf, repeats)
        row.max_dvm_pu = _max_abs_diff(vm, vm_ref)

    return _peer_row(row, _measure)


# ---------------------------------------------------------------- suites 2 and 3: batches


def run_batch(suite: str, name: str, snaps: cases.Snapshots, net: Any, cfg: SuiteConfig) -> list[Row]:
    """Solve ``snaps`` on ``net`` with gridtwin's batch, lightsim2grid's TimeSeriesCPP and a pandapower loop."""
    init = cases.initial_voltage_method(net)
    opts = {"tol_pu": cfg.tol_pu, "max_iter": cfg.max_iter, "init": init}
    n = snaps.n_steps
    base = {"suite": suite, "case": name}
    gt = GridtwinPeer(net, name, **opts)
    gt.compile()
    gt.prepare_series(snaps)
    t_s, times, res = timed(gt.run_series, cfg.repeats)
    ref = Row(**base, tool="gridtwin", setting="run_pf_timeseries(model)", key="gridtwin", time_s=t_s, n_steps=n)
    ref.times_s = times
    ref.per_step_s, ref.is_reference = t_s / n, True
    ref.extra = {"n_converged": res.n_converged, "n_bus": len(net.bus), "init": init}
    rows = [ref, _lightsim_batch_row(net, opts, snaps, base, res.vm_pu, cfg.repeats)]
    rows.append(_pandapower_batch_row(net, opts, snaps.head(cfg.pp_steps + 1), n, base, res.vm_pu))
    _set_ratio(rows, ref)
    return rows


def _lightsim_batch_row(
    net: Any,
    opts: dict[str, Any],
    snaps: cases.Snapshots,
    base: dict[str, str],
    vm_ref: NDArray[np.float64],
    repeats: int,
) -> Row:
    setting = "TimeSeriesCPP compute + compute_flows"
    row = Row(**base, tool="lightsim2grid", setting=setting, key="lightsim2grid", n_steps=snaps.n_steps)

    def _measure() -> None:
        peer = LightsimPeer(net, **opts)
        peer.prepare_series(snaps)
        row.time_s, row.times_s, res = timed(peer.run_series, repeats)
        row.per_step_s = row.time_s / snaps.n_steps
        row.max_dvm_pu = _max_abs_diff(res.vm_pu, vm_ref)
        row.extra = {"n_converged": res.n_converged, "algorithm": peer.algorithm}
        row.note = "single thread (TimeSeriesCPP chains steps); flows = current at the from end only"

    return _peer_row(row, _measure)


def _pandapower_batch_row(
    net: Any,
    opts: dict[str, Any],
    snaps: cases.Snapshots,
    n_total: int,
    base: dict[str, str],
    vm_ref: NDArray[np.float64],
) -> Row:
    row = Row(**base, tool="pandapower", setting="runpp loop, init='results'", key="pandapower", n_steps=n_total)

    def _measure() -> None:
        peer = PandapowerPeer(net, **opts)
        vm, step_s = peer.run_series_steps(snaps)
        row.per_step_s = statistics.median(step_s)
        row.time_s = row.per_step_s * n_total
        row.times_s = step_s
        row.max_dvm_pu = _max_abs_diff(vm, vm_ref[: snaps.n_steps])
        row.note = f"extrapolated: median of {len(step_s)} timed steps × {n_total}"

    return _peer_row(row, _measure)


def run_snapshots(cfg: SuiteConfig) -> list[Row]:
    """Random load snapshots (factor U[0.8, 1.2] per step and load, seed 0) on the snapshot case."""
    net = cases.build_net(cfg.snapshot_case)
    snaps = cases.build_load_snapshots(net, cfg.n_snapshots, seed=0)
    return run_batch("snapshots", cfg.snapshot_case, snaps, net, cfg)


def run_simbench(cfg: SuiteConfig) -> list[Row]:
    """The first steps of a SimBench grid's own load and sgen profiles."""
    net = cases.build_net(cfg.simbench_code)
    snaps = cases.read_simbench_snapshots(cfg.simbench_code, cfg.n_simbench_steps, net)
    rows = run_batch("simbench", cfg.simbench_code, snaps, net, cfg)
    for row in rows:
        if row.tool == "lightsim2grid":
            row.note += (
                "; switches applied and SimBench taps neutralised by benchmarks.peers.to_lightsim_net; the remaining "
                "Δvm comes from the transformer magnetising branch (zero with pfe_kw = i0_percent = 0)"
            )
    rows.append(_simbench_tap_row(net, cfg))
    return rows


def _simbench_tap_row(net: Any, cfg: SuiteConfig) -> Row:
    """Base-case Δvm of lightsim2grid with SimBench's taps applied (its own semantics) vs gridtwin (pandapower's)."""
    init = cases.initial_voltage_method(net)
    opts = {"tol_pu": cfg.tol_pu, "max_iter": cfg.max_iter, "init": init}
    row = Row(
        suite="simbench",
        case=cfg.simbench_code,
        tool="lightsim2grid",
        setting="ac_pf, base case, SimBench taps applied",
        key="lightsim2grid_simbench_taps",
        note="accuracy only: lightsim2grid applies tap_pos=-1 without a tap changer type, pandapower 3.5.6 and "
        "gridtwin apply no tap",
    )

    def _measure() -> None:
        gt = GridtwinPeer(net, cfg.simbench_code, **opts)
        gt.compile()
        peer = LightsimPeer(net, **opts, apply_simbench_taps=True)
        row.max_dvm_pu = _max_abs_diff(peer.run_pf(reuse_cache=True), gt.run_pf())

    return _peer_row(row, _measure)


# ---------------------------------------------------------------- suite 4: memory of a year


def year_memory_worker(code: str, n_steps: int, tol_pu: float, max_iter: int) -> dict[str, Any]:
    """Run a SimBench year with gridtwin in this process and return peak-memory figures (MiB).

    Meant to run in a fresh subprocess (see :func:`run_year_memory`): ``ru_maxrss`` is the peak of
    the whole process since it started.
    """
    import resource

    import solvers

    net = cases.build_net(code)
    gt = GridtwinPeer(net, code, tol_pu=tol_pu, max_iter=max_iter, init=cases.initial_voltage_method(net))
    gt.compile()
    snaps = cases.read_simbench_snapshots(code, n_steps, net)
    gt.prepare_series(snaps.head(8))
    gt.run_series()  # JIT warm-up
    inputs = snaps.to_dataarrays()
    del snaps
    kib = 1024.0
    rss_before = _current_rss_mib()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib
    t0 = time.perf_counter()
    ds = solvers.run_pf_timeseries(gt.model, **inputs, tol_mva=gt.tol_mva, max_iter=max_iter)
    elapsed = time.perf_counter() - t0
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib
    return {
        "n_steps": int(ds.sizes["time"]),
        "n_converged": int(ds["converged"].sum()),
        "time_s": elapsed,
        "rss_before_pf_mib": rss_before,
        "peak_rss_before_pf_mib": peak_before,
        "peak_rss_mib": peak_after,
        "pf_peak_increase_mib": max(peak_after - rss_before, 0.0),
        "result_nbytes_mib": ds.nbytes / kib**2,
    }


def _current_rss_mib() -> float:
    with Path("/proc/self/statm").open() as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024.0**2


def run_year_memory(cfg: SuiteConfig) -> list[Row]:
    """Peak memory of gridtwin's batch over a SimBench year, measured in a subprocess."""
    args = [cfg.simbench_code, cfg.year_steps, cfg.tol_pu, cfg.max_iter]
    code = (
        "import json, sys; from benchmarks.run import year_memory_worker; "
        f"print(json.dumps(year_memory_worker(*{args!r})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    row = Row(
        suite="year", case=cfg.simbench_code, tool="gridtwin", setting="run_pf_timeseries, peak RSS", key="gridtwin"
    )
    if proc.returncode != 0:
        row.status = f"failed: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
        return [row]
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    row.time_s, row.n_steps, row.extra = fig["time_s"], fig["n_steps"], fig
    row.per_step_s = fig["time_s"] / fig["n_steps"]
    row.is_reference = True
    row.note = (
        f"peak RSS {fig['peak_rss_mib']:.0f} MiB (before PF {fig['rss_before_pf_mib']:.0f} MiB); "
        f"result {fig['result_nbytes_mib']:.0f} MiB"
    )
    return [row]


# ---------------------------------------------------------------- machine, table, CLI


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, versions and date of this run."""
    import numba

    mem_kib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0].split()
        mem_kib = int(first[1])
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cores_logical": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "memory_gib": None if mem_kib is None else round(mem_kib / 1024**2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            d: _version(d)
            for d in ("gridtwin", "numpy", "scipy", "numba", "xarray", "pandas", "pandapower", "simbench")
        }
        | {"lightsim2grid": lightsim2grid_version()},
        "gridtwin_commit": _git_commit(),
    }


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "–"
    if x < 1e-3:
        return f"{x * 1e6:.0f} µs"
    if x < 1.0:
        return f"{x * 1e3:.2f} ms"
    return f"{x:.2f} s"


def to_markdown(report: dict[str, Any]) -> str:
    """Markdown table of a report's ``results``: time, per-step time, ratio (peer / gridtwin), max Δvm."""
    head = "| suite | case | tool | what is timed | time | per step | ratio | max Δvm (pu) | note |"
    lines = [head, "|" + "---|" * 9]
    for r in report["results"]:
        ratio = "ref" if r["is_reference"] else ("–" if r["ratio"] is None else f"{r['ratio']:.2f}")
        dvm = "–" if r["max_dvm_pu"] is None else f"{r['max_dvm_pu']:.1e}"
        note = r["note"] if r["status"] == "ok" else r["status"]
        per_step = _fmt_s(r["per_step_s"]) if r["n_steps"] else ""
        lines.append(
            f"| {r['suite']} | {r['case']} | {r['tool']} | {r['setting']} | {_fmt_s(r['time_s'])} | {per_step} "
            f"| {ratio} | {dvm} | {note} |"
        )
    return "\n".join(lines)


def summarize(rows: list[Row]) -> dict[str, Any]:
    """Flat per-case figures keyed by row key: ``<key>_s``, ``ratio_<key>``, ``max_dvm_<key>_pu``, ``<key>_converged``.

    ``single`` is a list (one entry per case); the batch suites hold one case each, a dict.
    """
    by_case: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        entry = by_case.setdefault((r.suite, r.case), {"case": r.case})
        if r.n_steps is not None:
            entry["steps"] = r.n_steps
        if r.status != "ok":
            entry[f"{r.key}_status"] = r.status
        fields = {
            f"{r.key}_s": r.time_s,
            f"ratio_{r.key}": r.ratio,
            f"max_dvm_{r.key}_pu": r.max_dvm_pu,
            f"{r.key}_converged": r.extra.get("n_converged"),
        }
        entry.update({k: v for k, v in fields.items() if v is not None})
    out: dict[str, Any] = {}
    for (suite, _), entry in by_case.items():
        if suite == "single":
            out.setdefault(suite, []).append(entry)
        else:
            out[suite] = entry
    return out


NOTES = [
    "ratio = peer time / gridtwin time of the same suite and case (per step for batches); > 1: gridtwin is faster",
    "times are medians of the repeats after one untimed warm-up call (numba JIT and caches excluded)",
    "every tool stops when the largest bus mismatch < tol_pu (pu of sn_mva): pandapower tolerance_mva=tol_pu and "
    "lightsim2grid tol=tol_pu (both compare per-unit mismatches), gridtwin tol_mva=tol_pu*sn_mva",
    "pandapower runs its own numba Newton-Raphson (runpp lightsim2grid=False), not lightsim2grid's",
    "lightsim2grid: init_from_pandapower(pp_orig_file='pandapower_v3'); ac_pf timed with the default cache reuse "
    "and after prevent_ac_cache_reuse(); TimeSeriesCPP results copied out of C++ memory inside the timing",
    "gridtwin batches build every bus and branch result (xarray) inside the timing; lightsim2grid's only V and "
    "the from-end current",
    "max Δvm: largest |vm_pu(peer) - vm_pu(gridtwin)| over all buses (and all compared steps)",
    "pandapower batches: a loop of runpp over the first steps, the first untimed; time = median step × n_steps",
    "SimBench: lightsim2grid gets the net with closed bus-bus switches fused, open branch ends on fresh buses "
    "and taps without a tap changer neutralised (pandapower 3.5.6 / gridtwin semantics); the row "
    "'SimBench taps applied' shows the voltage difference of lightsim2grid's own tap semantics",
]


def run_cim_import(repeats: int) -> list[Row]:
    """CGMES import time of each case of :func:`benchmarks.cim_import.cim_cases`, gridtwin as reference."""
    from benchmarks.cim_import import cim_cases, time_imports

    rows: list[Row] = []
    for name, path, skipped in cim_cases():
        status = skipped or ("" if path.exists() else f"not found: {path}")
        if status:
            rows.append(Row(suite="cim", case=name, tool="gridtwin", setting="cim.load", key="gridtwin", status=status))
            continue
        print(f"[bench] CGMES import: {name}", file=sys.stderr)
        case_rows = []
        for r in time_imports(path, repeats):
            row = Row(
                suite="cim",
                case=name,
                tool=r["tool"],
                setting=r["setting"],
                key=r["tool"],
                status=r["status"],
                time_s=r.get("time_s"),
                is_reference=r["tool"] == "gridtwin",
            )
            row.times_s = r.get("times_s", [])
            row.note = f"{r['n_bus']} buses" if "n_bus" in r else ""
            case_rows.append(row)
        _set_ratio(case_rows, case_rows[0])
        rows += case_rows
    return rows


def run_ingest(n_rows: int, *, full: bool) -> list[Row]:
    """Readings into the store vs a pandas baseline and InfluxDB (``benchmarks/ingest.py``); with ``full``, also the
    10,000-meter year (ingest, clean, aggregate) and the SimBench MV year over a store, each in a subprocess for its
    peak memory."""
    from benchmarks.ingest import run_ingest_bench

    case = f"{n_rows:,} readings, 10,000 meters"
    rows: list[Row] = []
    for r in run_ingest_bench(n_rows, log=lambda m: print(m, file=sys.stderr)):
        row = Row(
            suite="ingest",
            case=case,
            tool=r["tool"],
            setting=r["format"],
            key=f"{r['tool']}/{r['format']}",
            status=r["status"],
            time_s=r.get("seconds"),
            n_steps=r.get("rows"),
            ratio=r.get("ratio"),
            is_reference=r["tool"] == "gridtwin",
        )
        if "rows_per_s" in r:
            row.note = f"{r['rows_per_s'] / 1e6:.2f} M rows/s"
            row.extra = {"rows_per_s": r["rows_per_s"]}
        rows.append(row)
    if full:
        for name, call in (
            ("10,000 meters x 365 days", "scale_worker()"),
            ("SimBench MV year, store", "pf_store_year_worker()"),
        ):
            print(f"[bench] {name} (subprocess)", file=sys.stderr)
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"import json; from benchmarks.ingest import {call.split('(')[0]}; print(json.dumps({call}))",
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=Path(__file__).resolve().parent.parent,
            )
            row = Row(suite="ingest", case=name, tool="gridtwin", setting="peak RSS", key=name, is_reference=True)
            if proc.returncode:
                row.status = f"failed: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
            else:
                fig = json.loads(proc.stdout.strip().splitlines()[-1])
                row.extra, row.time_s = (
                    fig,
                    sum(v for k, v in fig.items() if k.endswith("_s") and k not in {"solve_s", "io_s"})
                    or fig.get("seconds"),
                )
                row.note = f"peak RSS {fig['peak_rss_mib']:.0f} MiB"
            rows.append(row)
    return rows


def run_predict() -> list[Row]:
    """48-hour, 3-quantile overload prediction for the SimBench MV grid, seconds per stage (benchmarks/predict.py)."""
    from benchmarks.predict import CODE, run_predict_bench

    rows = []
    for r in run_predict_bench():
        row = Row(
            suite="predict",
            case=CODE,
            tool="gridtwin",
            setting=r["setting"],
            key=r["setting"],
            time_s=r["seconds"],
            is_reference=True,
            extra=r["stages"],
        )
        row.note = ", ".join(f"{k} {v:.2f} s" for k, v in r["stages"].items()) + f"; {r['at_risk']} assets at risk"
        rows.append(row)
    return rows


def run_shed(quick: bool = False) -> list[Row]:
    """Shedding LP build and solve per path (Pyomo kernel, Pyomo environ + appsi, linopy); the MV plan end to end."""
    from benchmarks.shed import run_shed_bench

    rows = []
    for r in run_shed_bench(synthetic=not quick, appsi=not quick, repeat=3):
        path = r["path"]
        if path == "build_ratio_pyomo_linopy":
            rows.append(Row(suite="shed", case=r["case"], tool="pyomo/linopy", setting="build ratio", key=r["case"]))
            rows[-1].note = f"Pyomo build / linopy build = {r['ratio']:.2f}× (target ≤ 2×)"
            continue
        time_s = r.get("total_s", r.get("build_s", 0.0) + r.get("solve_s", 0.0))
        row = Row(
            suite="shed",
            case=r["case"],
            tool="linopy" if path == "linopy" else "gridtwin",
            setting=path,
            key=f"{r['case']}|{path}",
            time_s=time_s,
            is_reference=path != "linopy",
            extra={k: v for k, v in r.items() if isinstance(v, int | float)},
        )
        if path == "end_to_end":
            row.note = f"total {time_s:.2f} s (target < 5 s), {r.get('iterations')} AC rounds"
        else:
            row.note = f"build {r['build_s']:.2f} s, solve {r['solve_s']:.2f} s, {r['pairs']} pairs, {r['nnz']} nnz"
        rows.append(row)
    return rows


def _config(args: argparse.Namespace) -> SuiteConfig:
    if args.smoke:
        cfg = SuiteConfig(
            single_cases=(cases.SMOKE_CASE,),
            snapshot_case=cases.SMOKE_CASE,
            n_snapshots=20,
            n_simbench_steps=20,
            pp_steps=3,
            repeats=2,
            year_steps=96,
        )
    elif args.quick:
        cfg = SuiteConfig(n_snapshots=200, n_simbench_steps=672, pp_steps=5, repeats=3)
    else:
        cfg = SuiteConfig()
    changes: dict[str, Any] = {"tol_pu": args.tol_pu, "max_iter": args.max_iter}
    if args.repeats is not None:
        changes["repeats"] = args.repeats
    return SuiteConfig(**(asdict(cfg) | changes))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "suite",
        choices=["pf", "cim", "ingest", "predict", "shed"],
        help="suite: 'pf' (AC power flow), 'cim' (CGMES import), 'ingest' (meter readings), 'predict' (overloads), "
        "'shed' (shedding LP build/solve vs linopy; --quick: MV case only); also 'all', and 'scenarios', "
        "'contingency', 'api' with their own options (see 'gridtwin bench api --help')",
    )
    p.add_argument("--rows", type=int, default=10_000_000, help="ingest: readings to ingest (default 10 million)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and steps (smoke check of the suite)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 7, quick 3)")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (default bench-pf-<UTC time>.json)")
    p.add_argument(
        "--full-year",
        action="store_true",
        help="pf: also a SimBench year's peak memory; ingest: also a 10,000-meter year and the store PF year (slow)",
    )
    p.add_argument("--only", choices=SUITES, action="append", help="run only this part (repeatable)")
    p.add_argument("--tol-pu", type=float, default=1e-8, help="stopping mismatch, pu of sn_mva (default 1e-8)")
    p.add_argument("--max-iter", type=int, default=30, help="Newton iterations at most (default 30)")
    p.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # case14, 20 steps: for tests
    return p


ALL_SUITES = ("pf", "cim", "ingest", "predict", "shed", "scenarios", "contingency", "api")

#: Sizes of the benchmark grids as pandapower builds them (``benchmarks.cases.build_net``); branches = lines +
#: transformers. Checked against the nets by ``tests/benchmarks/test_bench_smoke.py``; see ``benchmarks/CASES.md``.
CASE_SIZES: dict[str, dict[str, int]] = {
    "case14": {"buses": 14, "branches": 20, "loads": 11},
    "case1354pegase": {"buses": 1354, "branches": 1991, "loads": 621},
    "case9241pegase": {"buses": 9241, "branches": 16049, "loads": 4461},
    "1-MV-urban--0-sw": {"buses": 144, "branches": 149, "loads": 139, "sgens": 134},
}


_CIM_CASE = (
    "ENTSO-E RealGrid, SmallGrid; PEGASE 9241 (PowSyBl)",
    1,
    "CGMES import",
    "pandapower, PowSyBl",
    "bench cim",
)


def _case(suite: str, case: str, steps: int | str, timed: str, peer: str, command: str) -> dict[str, Any]:
    size = CASE_SIZES.get(case.split(" ", maxsplit=1)[0], {})
    return {"suite": suite, "case": case, **size, "steps": steps, "timed": timed, "peer": peer, "command": command}


def case_list(suites: list[str], *, quick: bool = False, smoke: bool = False) -> list[dict[str, Any]]:
    """The grids, sizes, steps, timed work and peers of the suites that ``bench all`` runs (``benchmarks/CASES.md``)."""
    cfg = _config(argparse.Namespace(smoke=smoke, quick=quick, tol_pu=1e-8, max_iter=30, repeats=None))
    mv, q, peers = (
        f"{cases.SIMBENCH_CODE} (SimBench scenario 0)",
        " --quick" if quick else "",
        "lightsim2grid, pandapower",
    )
    table: dict[str, list[tuple[str, int | str, str, str, str]]] = {
        "pf": [(c, 1, "one AC power flow", peers, f"bench pf{q}") for c in cfg.single_cases]
        + [
            (cfg.snapshot_case, cfg.n_snapshots, "random load snapshots", peers, f"bench pf{q}"),
            (
                f"{cfg.simbench_code} (SimBench scenario 0)",
                cfg.n_simbench_steps,
                "time-series AC PF",
                peers,
                f"bench pf{q}",
            ),
        ],
        "cim": [_CIM_CASE],
        "ingest": [
            (
                "synthetic, 10,000 meters",
                1_000_000 if quick else 10_000_000,
                "readings: file → durable store",
                "pandas + to_zarr, InfluxDB 1.x",
                f"bench ingest{q}",
            )
        ],
        "predict": [(mv, "28 d history, 48 h × 3 quantiles", "forecast + batched PF", "none", "bench predict")],
        "shed": [
            (
                f"{cases.SIMBENCH_CODE} electrified, 2016-01-06",
                96,
                "shedding LP build + solve",
                "linopy",
                f"bench shed{q}",
            )
        ]
        + (
            []
            if quick
            else [("synthetic radial, 100 × 100 loads", 96, "shedding LP build + solve", "linopy", "bench shed")]
        ),
        "scenarios": [
            (
                mv,
                f"{16 if quick else 64} × {7 if quick else 30} d",
                "set on 1 / 2 Dask workers",
                "none",
                "bench scenarios",
            )
        ],
        "contingency": [
            ("case1354pegase", 24 if quick else 96, "N-1 over the steps", "lightsim2grid", "bench contingency")
        ],
        "api": [
            (
                "1-LV-rural1--2-sw demo site",
                f"{10 if quick else 60} s",
                f"{10 if quick else 50} clients: reads, ingest, plans",
                "none",
                "bench api",
            )
        ],
    }
    return [_case(suite, *row) for suite in suites for row in table[suite]]


def _cases_markdown(report: dict[str, Any]) -> str:
    """The run's machine and versions (how to cite it) and its case list, as Markdown."""
    m = report["machine"]
    v = m["versions"]
    lines = [
        f"gridtwin {v.get('gridtwin')} (commit {m.get('gridtwin_commit') or 'unknown'}), pandapower "
        f"{v.get('pandapower')}, lightsim2grid {v.get('lightsim2grid')}, numba {v.get('numba')}, Python "
        f"{m['python']}; {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['date_utc']}",
        "",
        "| suite | case | buses | branches | steps | what is timed | peer | command |",
        "|" + "---|" * 8,
    ]
    lines += [
        f"| {c['suite']} | {c['case']} | {c.get('buses', '–')} | {c.get('branches', '–')} | {c['steps']} "
        f"| {c['timed']} | {c['peer']} | gridtwin {c['command']} |"
        for c in report["cases"]
    ]
    return "\n".join(lines)


def _embedded_markdown(reports: dict[str, Any]) -> str:
    """The tables of the suites with their own formats (scenarios, contingency, api), for ``bench all``'s Markdown."""
    parts = []
    if "scenarios" in reports:
        from benchmarks.scenarios import format_tables

        sc = reports["scenarios"]
        parts.append("### scenarios\n\n" + format_tables(sc["rows"], sc["estimate"]))
    if "contingency" in reports:
        c = reports["contingency"]
        parts.append(
            f"### contingency\n\n{c['case']}, {c['n_steps']} steps, {c['n_outages']} outages ({c['n_islanding']} "
            f"islanding): gridtwin {c['gridtwin_s']:.2f} s, lightsim2grid {c['lightsim2grid_s']:.2f} s, ratio "
            f"{c['ratio']:.2f}, max |Δ loading| {c['max_abs_dloading_pct']:.2e} %"
        )
    if "api" in reports:
        from benchmarks.api import ApiBenchReport, format_report

        parts.append("### api\n\n" + format_report(ApiBenchReport(**reports["api"])))
    return "".join("\n\n" + part for part in parts)


def run_all(argv: list[str]) -> int:
    """``all``: every suite in turn, one JSON (each suite's report under ``reports``) and one Markdown file.

    Row-based suites go into one table; ``scenarios`` and ``contingency`` (their own formats) are embedded as their
    JSON / figures. ``--quick`` passes on to the suites that have it; ``--suites a,b`` runs a subset.
    """
    p = argparse.ArgumentParser(prog="python -m benchmarks.run all", description=run_all.__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="quick variants where a suite has one")
    p.add_argument("--suites", default=",".join(ALL_SUITES), help=f"comma-separated subset of {ALL_SUITES}")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default bench-all-<UTC time>.json); .md beside")
    p.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # pf on case14 only: for tests
    args = p.parse_args(argv)
    suites = [x for x in args.suites.split(",") if x]
    unknown = sorted(set(suites) - set(ALL_SUITES))
    if unknown:
        p.error(f"unknown suites {unknown}; choose from {ALL_SUITES}")
    out = args.out or Path(f"bench-all-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json")
    reports: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for suite in suites:
        part = out.with_name(f"{out.stem}-{suite}.json")
        if suite == "scenarios":
            main(["scenarios", "--out", str(part), *(["--n", "16", "--days", "7"] if args.quick else [])])
        elif suite == "contingency":
            from benchmarks.contingency import run_contingency_bench

            part.write_text(json.dumps(run_contingency_bench(n_steps=24 if args.quick else 96), default=float))
        elif suite == "api":
            from benchmarks import api

            api.main(["--out", str(part), *(["--clients", "10", "--duration", "10"] if args.quick else [])])
        else:
            flags = [*(["--quick"] if args.quick and suite in ("pf", "ingest", "shed") else [])]
            flags += ["--smoke"] if args.smoke and suite == "pf" else []
            main([suite, *flags, "--out", str(part)])
        reports[suite] = json.loads(part.read_text())
        rows += reports[suite].get("results", []) if isinstance(reports[suite], dict) else []
    report = {"suite": "all", "machine": machine_info(), "cases": case_list(suites, quick=args.quick, smoke=args.smoke)}
    report |= {"reports": reports, "results": rows}
    out.write_text(json.dumps(report, indent=2, default=float))
    md = _cases_markdown(report) + "\n\n" + to_markdown(report) + _embedded_markdown(reports)
    out.with_suffix(".md").write_text(md + "\n")
    print(f"\nall suites: {', '.join(suites)}\n\n{md}\n\nJSON written to {out}, Markdown to {out.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the suites named by ``argv``; print the table, write JSON; return the exit status.

    ``scenarios``, ``contingency`` and ``api`` have their own options and tables (``benchmarks/scenarios.py``,
    ``benchmarks/contingency.py``, ``benchmarks/api.py``): their arguments are passed on.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "all":
        return run_all(argv[1:])
    if argv and argv[0] in ("scenarios", "contingency", "api"):
        module = importlib.import_module(f"benchmarks.{argv[0]}")
        return int(module.main(argv[1:]) or 0)
    args = _parser().parse_args(argv)
    cfg = _config(args)
    parts = args.only or [s for s in SUITES if s != "year" or args.full_year]
    if args.suite in ("cim", "ingest", "predict", "shed"):
        parts = []
    t0 = time.perf_counter()
    rows: list[Row] = []
    if args.suite == "cim":
        rows += run_cim_import(args.repeats or 3)
    if args.suite == "predict":
        rows += run_predict()
    if args.suite == "shed":
        rows += run_shed(args.quick)
    if args.suite == "ingest":
        rows += run_ingest(1_000_000 if args.quick else args.rows, full=args.full_year)
    if "single" in parts:
        for name in cfg.single_cases:
            print(f"[bench] single power flow: {name}", file=sys.stderr)
            rows += run_single_pf(name, cfg)
    if "snapshots" in parts:
        print(f"[bench] {cfg.n_snapshots} load snapshots: {cfg.snapshot_case}", file=sys.stderr)
        rows += run_snapshots(cfg)
    if "simbench" in parts:
        print(f"[bench] {cfg.n_simbench_steps} SimBench steps: {cfg.simbench_code}", file=sys.stderr)
        rows += run_simbench(cfg)
    if "year" in parts:
        print(f"[bench] SimBench year memory ({cfg.year_steps} steps): {cfg.simbench_code}", file=sys.stderr)
        rows += run_year_memory(cfg)
    report = {
        "suite": args.suite,
        "machine": machine_info(),
        "settings": asdict(cfg) | {"parts": parts, "quick": args.quick, "smoke": args.smoke},
        "suites": summarize(rows),
        "results": [asdict(r) for r in rows],
        "notes": NOTES,
        "wall_time_s": time.perf_counter() - t0,
    }
    out = args.out or Path(f"bench-{args.suite}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json")
    out.write_text(json.dumps(report, indent=2, default=float))
    m = report["machine"]
    print(f"\n{m['cpu_model']}, {m['cores']} cores, numba threads {m['numba_threads']}, {m['date_utc']}\n")
    print(to_markdown(report))
    print(f"\nJSON written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
