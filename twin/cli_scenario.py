"""CLI ``gridtwin scenario run|compare``: what-if scenario sets on Dask, and their comparison report.

Both have ``--json``: one JSON document on stdout; progress and status go to stderr.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console


def add_scenario_parsers(sub: argparse._SubParsersAction, fill: Any) -> None:
    """Register ``scenario run`` and ``scenario compare`` on the ``gridtwin`` sub-parsers."""
    sc = sub.add_parser(
        "scenario",
        help="what-if scenario sets (YAML): run them on a Dask cluster, compare the results",
        description=fill(
            "'run FILE.yaml' expands the scenario set of FILE (explicit scenarios, a cartesian product or Monte "
            "Carlo draws with a seed; see docs/design/scenarios.md), applies each scenario's modifications (load "
            "growth, EVs, heat pumps, PV, batteries, outages, switching, transformer replacement, cold snaps) to "
            "the base grid and period, runs the time-series AC power flow and writes per-asset statistics (max "
            "loading, hours over the limit, loading duration curve, voltage extremes) to OUT with a 'scenario' "
            "dimension. It runs on a local Dask cluster (--workers) or any scheduler (--scheduler tcp://HOST:PORT); "
            "finished scenarios are kept, so a rerun only runs the missing ones; a failing scenario is recorded and "
            "the others go on. 'compare OUT' prints the comparison table and writes a standalone HTML report."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  gridtwin scenario run ev_growth.yaml --out ev_growth.zarr --workers 2\n"
            "  gridtwin scenario run ev_growth.yaml --out ev_growth.zarr --scheduler tcp://10.0.0.5:8786\n"
            "  gridtwin scenario compare ev_growth.zarr --report ev_growth.html"
        ),
    )
    sc_sub = sc.add_subparsers(dest="scenario_command", required=True, metavar="SUBCOMMAND")
    run = sc_sub.add_parser("run", help="run a scenario set")
    run.add_argument("spec", type=Path, metavar="FILE.yaml")
    run.add_argument("--out", type=Path, help="results store (default: FILE.zarr next to the spec)")
    run.add_argument("--scheduler", help="Dask scheduler address, or 'sync' to run in this process")
    run.add_argument("--workers", type=int, help="local cluster workers (default: one per core)")
    run.add_argument("--shed", action="store_true", help="also the load shedding each scenario needs (slower)")
    run.add_argument("--json", action="store_true", help="print what ran, was skipped and failed as JSON")
    run.set_defaults(handler=_run_scenarios)
    cmp_ = sc_sub.add_parser("compare", help="comparison table and HTML report of a results store")
    cmp_.add_argument("store", type=Path, metavar="OUT")
    cmp_.add_argument("--report", type=Path, help="HTML report (default: OUT.html)")
    cmp_.add_argument("--grid", help="grid for the network plot (default: the spec's base grid)")
    cmp_.add_argument("--json", action="store_true", help="print the comparison table as JSON (one record each)")
    cmp_.set_defaults(handler=_compare_scenarios)


def _run_scenarios(args: argparse.Namespace, out: Console, err: Console) -> int:
    from scenarios import load_spec, run_scenario
    from scenarios.runner import run_set

    with err.status(f"reading {args.spec} ..."):
        spec = load_spec(args.spec)
        items = [(s.name, s) for s in spec.expand()]
    store = args.out or args.spec.with_suffix(".zarr")
    fn = functools.partial(run_scenario, base=spec.base, shed=args.shed)
    from scenarios.runner import ScenarioSetupError

    try:
        report = run_set(items, fn, store, scheduler=args.scheduler, n_workers=args.workers, progress=err.is_terminal)
    except ScenarioSetupError as error:
        raise ValueError(str(error)) from error
    (Path(str(store) + ".spec.yaml")).write_text(args.spec.read_text())
    status = 0 if not report.failed else 1
    if args.json:
        from twin.cli_output import print_json

        print_json({**asdict(report), "scenarios_per_hour": report.scenarios_per_hour})
        return status
    out.print(str(report), markup=False, highlight=False)
    if report.failed:
        out.print(f"failed: {', '.join(report.failed)} (errors in 'gridtwin scenario compare {store}')")
    out.print(f"results: {store}; compare with 'gridtwin scenario compare {store}'")
    return status


def _compare_scenarios(args: argparse.Namespace, out: Console, err: Console) -> int:
    import twin
    from scenarios import load_spec
    from scenarios.report import compare_rich, compare_table, write_report
    from scenarios.runner import open_results
    from twin.cli_output import print_json

    results = open_results(args.store)
    spec_copy = Path(str(args.store) + ".spec.yaml")
    code = args.grid or (load_spec(spec_copy).base.grid if spec_copy.exists() else None)
    if code is None:
        raise ValueError(f"no spec copy next to {args.store}: pass --grid CASE for the network plot")
    if not args.json:
        wide = out if out.is_terminal else Console(width=220)  # pipes and files: no 80-column squeeze
        wide.print(compare_rich(results))
    with err.status(f"writing the HTML report (network plot of {code}) ..."):
        path = write_report(results, twin.load(code), args.report or args.store.with_suffix(".html"))
    if args.json:
        print_json({"scenarios": compare_table(results).reset_index(), "report": str(path)})
        return 0
    out.print(f"report: {path}")
    return 0
