"""Output of the ``gridtwin`` commands: strict JSON on stdout, rich tables, progress kept off stdout, summaries.

Split from :mod:`twin.cli` (which re-exports :func:`print_json`, :func:`frame_table` and
:func:`library_bars_on_stderr`): every subcommand module prints through these.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "add_size_rows",
    "frame_table",
    "key_value_table",
    "library_bars_on_stderr",
    "print_json",
    "print_pf_summary",
    "print_pf_ts_summary",
]


def print_json(doc: Any) -> None:
    """Write ``doc`` as strict JSON on stdout, the only thing a ``--json`` command writes there.

    NaN and infinities become null; numpy scalars, timestamps, paths and DataFrames (as records) are converted.
    """
    sys.stdout.write(json.dumps(_plain(doc), indent=1, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready builtins (see :func:`print_json`)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, pd.DataFrame):
        return json.loads(value.to_json(orient="records", date_format="iso"))
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series | pd.Index):
        return [_plain(item) for item in value]
    return _plain_scalar(value.item() if isinstance(value, np.generic) else value)


def _plain_scalar(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, pd.Timestamp | pd.Timedelta):
        return None if pd.isna(value) else value.isoformat()
    return str(value)


@contextmanager
def library_bars_on_stderr() -> Iterator[None]:
    """Send what library code writes to stdout inside the block to stderr.

    Some library functions draw their progress bars on rich's default console, which writes to stdout; the
    commands keep stdout for results (tables, ``--json``), so the bars go to stderr like every other progress.
    """
    with redirect_stdout(sys.stderr):
        yield


def frame_table(frame: pd.DataFrame, title: str, *, max_rows: int = 40) -> Table:
    """A rich table of ``frame`` (index as first column when named), floats with 4 significant digits.

    Parameters
    ----------
    frame : DataFrame
        The rows to show; only the first ``max_rows``.
    title : str
        The table title; "(first N of M rows)" is added when rows are left out.
    """
    shown = frame.reset_index() if frame.index.name is not None else frame
    if len(shown) > max_rows:
        title += f" (first {max_rows} of {len(shown)} rows)"
    table = Table(title=title, title_justify="left")
    for col in shown.columns:
        numeric = pd.api.types.is_numeric_dtype(shown[col]) and not pd.api.types.is_bool_dtype(shown[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for row in shown.head(max_rows).itertuples(index=False):
        table.add_row(*(_format_cell(v) for v in row))
    return table


def _format_cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else _format_number(float(value))
    return str(value)


# -- rendering -------------------------------------------------------------------------------
def print_pf_summary(out: Console, summary: dict[str, Any]) -> None:
    table = key_value_table(f"AC power flow: {summary['grid']}")
    add_size_rows(table, summary["size"])
    table.add_row("converged", "yes" if summary["converged"] else "no")
    table.add_row("iterations", str(summary["iterations"]))
    table.add_row("compile time", _format_seconds(summary["compile_time_s"]))
    table.add_row("solve time", _format_seconds(summary["solve_time_s"]))
    table.add_row("min voltage", _format_at(summary["vm_min_pu"], "pu", bus=summary["vm_min_bus"]))
    table.add_row("max voltage", _format_at(summary["vm_max_pu"], "pu", bus=summary["vm_max_bus"]))
    if summary["de_energised_buses"]:
        table.add_row("de-energised buses", str(summary["de_energised_buses"]))
    table.add_row("losses", f"{_format_number(summary['p_loss_mw'])} MW, {_format_number(summary['q_loss_mvar'])} Mvar")
    out.print(table)
    _print_top_loaded(out, summary["top_loaded"], over_time=False)
    _print_footer(out, summary)


def print_pf_ts_summary(out: Console, summary: dict[str, Any]) -> None:
    table = key_value_table(f"AC power flow time series: {summary['grid']}")
    add_size_rows(table, summary["size"])
    table.add_row("steps", f"{summary['steps']} ({summary['start']} .. {summary['end']})")
    table.add_row("compile time", _format_seconds(summary["compile_time_s"]))
    table.add_row("solve time", _format_seconds(summary["solve_time_s"]))
    table.add_row("steps per second", _format_number(summary["steps_per_s"]))
    not_converged = str(summary["not_converged"])
    if summary["not_converged"]:
        not_converged += f" (first: {', '.join(summary['not_converged_times'][:3])})"
    table.add_row("non-converged steps", not_converged)
    table.add_row("max iterations", str(summary["iterations_max"]))
    table.add_row(
        "min voltage", _format_at(summary["vm_min_pu"], "pu", bus=summary["vm_min_bus"], time=summary["vm_min_time"])
    )
    table.add_row(
        "max voltage", _format_at(summary["vm_max_pu"], "pu", bus=summary["vm_max_bus"], time=summary["vm_max_time"])
    )
    table.add_row("mean losses", f"{_format_number(summary['p_loss_mw_mean'])} MW")
    out.print(table)
    _print_top_loaded(out, summary["top_loaded"], over_time=True)
    _print_footer(out, summary)


def key_value_table(title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    return table


def add_size_rows(table: Table, size: dict[str, int]) -> None:
    """Add buses, lines, trafos, loads, gens always, other components when present."""
    always = ("bus", "line", "trafo", "load", "gen")
    for component, count in size.items():
        if component in always or count:
            table.add_row(_PLURALS.get(component, f"{component}s"), str(count))


_PLURALS = {
    "bus": "buses",
    "ext_grid": "external grids",
    "trafo3w": "3-winding trafos",
    "switch": "switches",
    "storage": "storage units",
}


def _print_top_loaded(out: Console, rows: list[dict[str, Any]], over_time: bool) -> None:
    if not rows:
        out.print("no branch has a finite loading (missing ratings?)")
        return
    title = f"{len(rows)} most loaded branches" + (" (peak over time)" if over_time else "")
    table = Table(title=title, title_justify="left")
    table.add_column("branch")
    table.add_column("kind")
    table.add_column("loading %", justify="right")
    table.add_column("i kA", justify="right")
    table.add_column("p_from MW", justify="right")
    if over_time:
        table.add_column("at time")
    for row in rows:
        cells = [row["branch"], row["kind"], f"{row['loading_pct']:.2f}"]
        cells += [_format_number(row["i_ka"]), _format_number(row["p_from_mw"])]
        if over_time:
            cells.append(row["time"])
        table.add_row(*cells)
    out.print(table)


def _print_footer(out: Console, summary: dict[str, Any]) -> None:
    for message in summary["warnings"]:
        out.print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)
    for path in summary["written"]:
        out.print(Text(f"wrote {path}"), soft_wrap=True)


def _format_at(value: float | None, unit: str, **where: str | None) -> str:
    if value is None:
        return "n/a (no energised bus)"
    place = ", ".join(f"{key} {label}" for key, label in where.items() if label is not None)
    return f"{value:.4f} {unit} at {place}"


def _format_number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
