"""The ``gridtwin`` command: parse arguments, show progress, print summaries.

Subcommands: ``pf`` (one AC power flow), ``pf-ts`` (a SimBench time series), ``bench`` (the
benchmark suite of ``benchmarks/run.py``) and ``cases`` (the built-in grid names). The numerics
live in :mod:`solvers`; this module only loads inputs, calls them, summarises and writes results.
Errors that a user can fix (unknown case, bad file, no convergence) print one red line with a
hint and give exit status 2; ``--traceback`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

import twin
from twin.cli_output import (
    add_size_rows,
    frame_table,
    key_value_table,
    library_bars_on_stderr,
    print_json,
    print_pf_summary,
    print_pf_ts_summary,
)
from twin.cli_plan import add_plan_parsers
from twin.cli_scenario import add_scenario_parsers
from twin.cli_serve import add_serve_parsers
from twin.cli_store import add_store_parsers, is_store, run_pf_ts_store
from twin.io.load import builtin_case_names
from twin.io.simbench import is_simbench_code
from twin.report import summarize_pf, summarize_pf_ts
from twin.results_io import WRITABLE_SUFFIXES, write_results

if TYPE_CHECKING:
    import xarray as xr

    from twin.grid import Grid

__all__ = ["CommandError", "frame_table", "library_bars_on_stderr", "main", "print_json"]

EXIT_OK = 0
EXIT_USAGE = 2  # user errors: unknown case, bad file, no convergence, bad arguments (argparse uses 2 too)

_GRID_FILE_SUFFIXES = (".m", ".mat", ".json", ".p", ".zarr", ".zip", ".xml")
_HELP_WIDTH = 88

_SIMBENCH_EXAMPLES = ("1-LV-rural1--0-sw", "1-MV-urban--0-sw", "1-HV-mixed--0-sw", "1-EHV-mixed--0-sw")
_CASES_HELP = (
    "CASE is a pandapower built-in case ('case9', 'case118', 'case1354pegase', 'cigre_mv'; "
    "see 'gridtwin cases'), a SimBench code ('1-MV-urban--0-sw') or a file: MATPOWER .m/.mat, "
    "pandapower .json/.p, a gridtwin grid file (.json/.zarr from 'gridtwin import-cim') or CGMES (.zip, "
    "a folder of .xml profiles)."
)
_OUT_HELP = (
    "write the results to FILE; the suffix picks the format: .zarr (Zarr v3 store, written atomically), "
    ".nc (netCDF), .csv (FILE_bus.csv, FILE_branch.csv, FILE_summary.csv) or .json "
    "({'bus': {var: {id: value}}, 'branch': ..., 'summary': ...}, NaN as null)"
)


class CommandError(Exception):
    """A failure the user can fix; printed as one line with a hint, exit status 2.

    Parameters
    ----------
    message : str
        What went wrong.
    hint : str
        What to try instead.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gridtwin`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        Exit status: 0 on success (also for ``--help``), 2 on user errors.
    """
    parser = _build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "bench":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:
        return _exit_code(exit_)
    args.extra = extra
    out, err = Console(), Console(stderr=True)
    try:
        return args.handler(args, out, err)
    except (CommandError, ValueError, KeyError, OSError) as error:
        if args.traceback:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        hint = getattr(error, "hint", "")
        line = Text(f"error: {message}", style="bold red")
        if hint:
            line.append(f" Hint: {hint}", style="red")
        err.print(line, soft_wrap=True)
        return EXIT_USAGE


# -- parser ----------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridtwin",
        description="gridtwin: grid digital twin and fast AC power flow.",
        epilog=(
            "examples:\n"
            "  gridtwin pf case118\n"
            "  gridtwin pf case1354pegase --out results.zarr\n"
            "  gridtwin pf grid.m --json > summary.json\n"
            "  gridtwin pf-ts 1-MV-urban--0-sw --steps 96 --out day.nc\n"
            "  gridtwin import-cim model.zip --out grid.zarr\n"
            "  gridtwin demo demo.zarr\n"
            "  gridtwin serve demo.zarr\n"
            "  gridtwin ingest store.zarr meters.csv --tz Europe/Rome\n"
            "  gridtwin cases --json\n"
            "  gridtwin bench --help\n"
            "\nRun 'gridtwin COMMAND --help' for the options of a command. Exit status: 0 ok, 2 error."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback on errors instead of one line"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_pf_parser(sub)
    _add_pf_ts_parser(sub)
    _add_import_cim_parser(sub)
    add_store_parsers(sub, _fill)
    add_plan_parsers(sub, _fill)
    add_scenario_parsers(sub, _fill)
    add_serve_parsers(sub, _fill)
    bench = sub.add_parser(
        "bench",
        help="run the benchmark suite (arguments go to benchmarks/run.py; see 'gridtwin bench --help')",
        add_help=False,
    )
    bench.set_defaults(handler=_run_bench_command)
    cases = sub.add_parser(
        "cases",
        help="list the built-in case names",
        description="List the pandapower built-in cases that CASE accepts, and how SimBench codes look.",
    )
    cases.add_argument("--plain", action="store_true", help="one name per line, nothing else (for scripts)")
    cases.add_argument("--json", action="store_true", help="print the names as JSON on stdout (for scripts)")
    cases.set_defaults(handler=_list_cases_command)
    return parser


def _add_solver_options(parser: argparse.ArgumentParser, case_help: str) -> None:
    """Add the options ``pf`` and ``pf-ts`` share."""
    parser.add_argument("case", metavar="CASE", help=case_help)
    parser.add_argument("--out", metavar="FILE", type=Path, help=_OUT_HELP)
    parser.add_argument(
        "--tol-mva",
        type=float,
        default=1e-8,
        metavar="MVA",
        help="tolerance on the largest bus power mismatch, MVA (default: %(default)g)",
    )
    parser.add_argument(
        "--max-iter", type=int, default=30, metavar="N", help="maximum Newton iterations (default: %(default)s)"
    )
    parser.add_argument(
        "--top", type=int, default=10, metavar="N", help="how many most loaded branches to list (default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout (for scripts)")


def _add_import_cim_parser(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser(
        "import-cim",
        help="import CGMES (CIM) files into a gridtwin grid file",
        description=_fill(
            "Read the profiles of one CGMES 2.4.15 model (EQ, TP, SSH, SV and boundary sets) with cimpy, map them "
            "to gridtwin's tables (ids are the CIM mRIDs) and print the import report: objects per class, what "
            "was imported, what was skipped and why. With --out the grid is saved as a gridtwin grid file that "
            "'gridtwin pf FILE' and twin.load() open."
        ),
        epilog=(
            "examples:\n"
            "  gridtwin import-cim model.zip --out grid.zarr\n"
            "  gridtwin demo demo.zarr\n"
            "  gridtwin ingest store.zarr meters.csv --tz Europe/Rome\n"
            "  gridtwin import-cim EQ.xml TP.xml SSH.xml SV.xml --out grid.json\n"
            "  gridtwin pf model.zip            # solve a CGMES model directly"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="XML files, a folder of them, or a .zip")
    imp.add_argument("--out", type=Path, default=None, help="save the grid: .json (readable) or .zarr (large grids)")
    imp.add_argument("--json", action="store_true", help="print the report as JSON on stdout (for scripts)")
    imp.set_defaults(handler=_run_import_cim_command)


def _run_import_cim_command(args: argparse.Namespace, out: Console, err: Console) -> int:
    import cim
    from twin.io.gridfile import write_grid

    if args.out is not None and args.out.suffix not in (".json", ".zarr"):
        raise CommandError(f"{args.out}: grid files are .json or .zarr", "pick one of those suffixes")
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise CommandError(f"no such file: {', '.join(missing)}", "check the paths")
    paths = args.paths[0] if len(args.paths) == 1 else list(args.paths)
    with err.status("Reading CGMES ..."), _collect_warnings() as caught:
        grid = cim.load(paths)
    report = grid.meta.get("cim_report")
    if report is not None:
        report = report.reset_index()
    if args.out is not None:
        with err.status(f"Writing {args.out} ..."):
            write_grid(grid, args.out)
    if args.json:
        rows = [] if report is None else json.loads(report.to_json(orient="records"))
        print_json(
            {
                "grid": grid.name,
                "size": {c: int(n) for c, n in grid.summary().items()},
                "report": rows,
                "warnings": caught,
                "written": str(args.out) if args.out else None,
            }
        )
        return EXIT_OK
    table = Table(title=f"CGMES import: {grid.name}")
    if report is not None:
        for col in report.columns:
            table.add_column(str(col))
        for row in report.itertuples(index=False):
            table.add_row(*[str(v) for v in row])
    out.print(table)
    size = key_value_table("grid size")
    add_size_rows(size, {c: int(n) for c, n in grid.summary().items()})
    out.print(size)
    for w in caught:
        err.print(Text(f"warning: {w}", style="yellow"), soft_wrap=True)
    if args.out is not None:
        out.print(f"written: {args.out}")
    return EXIT_OK


def _add_pf_parser(sub: argparse._SubParsersAction) -> None:
    pf = sub.add_parser(
        "pf",
        help="run one AC power flow and summarise it",
        description=_fill(
            "Load a grid, run an AC power flow (Newton-Raphson) and print a summary: grid size, iterations, "
            "compile and solve time, min/max voltage (pu) with bus ids, losses (MW, Mvar) and the most loaded "
            "branches (loading in % of the thermal rating, current in kA, active power at the from end in MW).",
            _CASES_HELP,
        ),
        epilog=(
            "examples:\n"
            "  gridtwin pf case9\n"
            "  gridtwin pf case1354pegase --out results.zarr\n"
            "  gridtwin pf cigre_mv --tol-mva 1e-6 --out res.csv   # res_bus.csv, res_branch.csv, res_summary.csv\n"
            "  gridtwin pf case118 --slack 68 --json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_solver_options(pf, "grid: built-in case name, SimBench code, or a .m/.mat/.json/.p file")
    pf.add_argument("--slack", metavar="ID", help="bus, gen or ext_grid id to use as the reference (slack) bus")
    pf.set_defaults(handler=_run_pf_command)


def _add_pf_ts_parser(sub: argparse._SubParsersAction) -> None:
    ts = sub.add_parser(
        "pf-ts",
        help="run AC power flows over a SimBench load/generation time series",
        description=_fill(
            "Run AC power flows for the first N 15-minute steps of a SimBench grid's yearly profiles "
            "(loads and static generators, from 2016-01-01 00:00) with one compiled model, and print steps, "
            "solve time, steps per second, non-converged steps, the lowest voltage (pu, bus, time) and the "
            "branches with the highest loading (% of rating) over the period.",
            "CASE must be a SimBench code such as '1-MV-urban--0-sw'. Steps that do not converge are counted "
            "and NaN in the results; the exit status stays 0.",
            "CASE may also be a gridtwin time-series store (see 'gridtwin ingest'): then every slot of its 'loads' "
            "group (and 'sgens'/'storage' when present) is solved for the grid given with --grid, streamed window "
            "by window (memory bounded by the window, not the series), and the results are written to the store's "
            "'results' group.",
        ),
        epilog=(
            "examples:\n"
            "  gridtwin pf-ts 1-LV-rural1--0-sw --steps 96\n"
            "  gridtwin pf-ts 1-MV-urban--0-sw --steps 35136 --out year.zarr\n"
            "  gridtwin pf-ts store.zarr --grid 1-MV-urban--0-sw"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_solver_options(ts, "SimBench code, e.g. 1-MV-urban--0-sw, or a gridtwin time-series store folder")
    ts.add_argument("--steps", type=int, metavar="N", help="SimBench: number of 15-minute steps from the year's start")
    ts.add_argument("--grid", metavar="CASE", help="store: the grid the store's loads belong to (case, code or file)")
    ts.add_argument(
        "--method",
        choices=("auto", "chord", "nr"),
        default="auto",
        help="'nr': full Newton per step; 'chord': steps of a chunk share one factorised Jacobian (default: auto)",
    )
    ts.set_defaults(handler=_run_pf_ts_command)


def _fill(*paragraphs: str) -> str:
    """Wrap help paragraphs (the raw formatter keeps the examples in epilogs as written)."""
    return "\n\n".join(textwrap.fill(p, width=_HELP_WIDTH) for p in paragraphs)


def _exit_code(exit_: SystemExit) -> int:
    code = exit_.code
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_USAGE


def _package_version() -> str:
    try:
        return version("gridtwin")
    except PackageNotFoundError:
        return "unknown"


# -- handlers --------------------------------------------------------------------------------
def _run_pf_command(args: argparse.Namespace, out: Console, err: Console) -> int:
    import solvers

    _check_out_suffix(args.out)
    grid = _load_grid(args.case, err)
    with err.status(f"Solving {grid.name} ({grid.n_bus} buses) ..."), _collect_warnings() as caught:
        try:
            ds = solvers.run_pf(grid, tol_mva=args.tol_mva, max_iter=args.max_iter, slack=args.slack)
        except solvers.PowerFlowNotConverged as error:
            raise CommandError(str(error), "try --max-iter 50, a looser --tol-mva, or another --slack bus") from error
    return _finish(args, ds, summarize_pf(grid, ds, args.top), caught, out, err, print_pf_summary)


def _run_pf_ts_command(args: argparse.Namespace, out: Console, err: Console) -> int:
    import solvers

    if is_store(args.case):
        return run_pf_ts_store(args, out, err)
    if args.steps is None:
        raise CommandError("--steps is required for a SimBench code", "e.g. --steps 2976 for a month")
    if not is_simbench_code(args.case):
        raise CommandError(
            f"{args.case!r} is not a SimBench code; pf-ts reads the yearly profiles that come with SimBench grids",
            "use a code like '1-MV-urban--0-sw' or '1-LV-rural1--0-sw'",
        )
    if args.steps < 1:
        raise CommandError(f"--steps must be at least 1, got {args.steps}", "use e.g. --steps 96 for one day")
    _check_out_suffix(args.out)
    grid = _load_grid(args.case, err)
    with err.status(f"Reading {args.steps} steps of SimBench profiles ..."):
        profiles = twin.read_simbench_profiles(args.case, steps=args.steps)
    t0 = time.perf_counter()
    with err.status("Compiling the grid ..."):
        model = solvers.compile_grid(grid)
    t1 = time.perf_counter()
    inputs = {name: profiles[name] for name in ("sgen_p_mw", "storage_p_mw") if name in profiles}
    with _collect_warnings() as caught, library_bars_on_stderr():
        ds = solvers.run_pf_timeseries(
            model,
            profiles["load_p_mw"],
            profiles["load_q_mvar"],
            **inputs,
            method=args.method,
            tol_mva=args.tol_mva,
            max_iter=args.max_iter,
            progress=err.is_terminal,
        )
    t2 = time.perf_counter()
    summary = summarize_pf_ts(grid, ds, args.top, compile_s=t1 - t0, solve_s=t2 - t1)
    return _finish(args, ds, summary, caught, out, err, print_pf_ts_summary)


def _finish(
    args: argparse.Namespace,
    ds: xr.Dataset,
    summary: dict[str, Any],
    caught: list[str],
    out: Console,
    err: Console,
    render: Callable[[Console, dict[str, Any]], None],
) -> int:
    """Write the results (``--out``), then print the summary as JSON (``--json``) or as tables."""
    summary["warnings"] = caught
    summary["written"] = _write(ds, args.out, err)
    if args.json:
        print_json(summary)
    else:
        render(out, summary)
    return EXIT_OK


def _run_bench_command(args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        from benchmarks.run import main as run_benchmarks
    except ModuleNotFoundError as error:
        hint = (
            "run from a gridtwin source checkout, where benchmarks/run.py exists"
            if error.name in (None, "benchmarks", "benchmarks.run")
            else f"install {error.name!r} (peer tools come with: pip install 'gridtwin[peers]')"
        )
        raise CommandError(f"the benchmark suite is not available ({error})", hint) from error
    try:
        return int(run_benchmarks(list(args.extra)))
    except SystemExit as exit_:
        return _exit_code(exit_)


def _list_cases_command(args: argparse.Namespace, out: Console, err: Console) -> int:
    names = builtin_case_names()
    if args.json:
        print_json({"builtin": names, "simbench_examples": list(_SIMBENCH_EXAMPLES)})
        return EXIT_OK
    if args.plain:
        sys.stdout.write("".join(f"{name}\n" for name in names))
        return EXIT_OK
    table = Table(title="Built-in cases (pandapower)", show_header=False, box=None)
    columns = 4
    rows = [names[i : i + columns] for i in range(0, len(names), columns)]
    for row in rows:
        table.add_row(*row)
    out.print(table)
    out.print(
        Text(
            f"\nSimBench codes are accepted too, e.g. {', '.join(_SIMBENCH_EXAMPLES)} "
            "(all codes: simbench.collect_all_simbench_codes()); 'gridtwin pf-ts' needs one. "
            "Files: MATPOWER .m/.mat, pandapower .json/.p."
        )
    )
    return EXIT_OK


# -- steps shared by the handlers ------------------------------------------------------------
def _load_grid(case: str, err: Console) -> Grid:
    path = Path(case)
    looks_like_file = path.suffix.lower() in _GRID_FILE_SUFFIXES or len(path.parts) > 1
    if looks_like_file and not path.exists():
        raise CommandError(f"{case}: no such file", "check the path, or give a built-in case name")
    with err.status(f"Loading {case} ..."):
        try:
            return twin.load(case)
        except (ValueError, OSError) as error:
            hint = (
                "check that the file is a MATPOWER (.m/.mat), pandapower (.json/.p), gridtwin (.json/.zarr) or "
                "CGMES (.zip/.xml) grid"
                if path.exists()
                else "run 'gridtwin cases' for the built-in names, or give a path to a .m/.json file"
            )
            raise CommandError(str(error), hint) from error


@contextmanager
def _collect_warnings() -> Iterator[list[str]]:
    """Collect warning messages raised inside the block (deduplicated) instead of printing them."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    for item in caught:
        text = f"{item.category.__name__}: {item.message}"
        if text not in messages:
            messages.append(text)


def _check_out_suffix(path: Path | None) -> None:
    """Fail before solving when ``--out`` names a format :func:`write_results` cannot write."""
    if path is not None and path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise CommandError(
            f"--out {path}: unknown result format {path.suffix or '(no suffix)'!r}",
            f"end the file name with one of {', '.join(WRITABLE_SUFFIXES)}",
        )


def _write(ds: xr.Dataset, path: Path | None, err: Console) -> list[str]:
    if path is None:
        return []
    with err.status(f"Writing {path} ..."):
        return [str(p) for p in write_results(ds, path)]
