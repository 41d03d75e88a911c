"""Compare scenario results: a severity-ranked table (pandas, Markdown, rich) and a standalone HTML report.

The input is the results Dataset of a scenario store (``scenarios.runner.open_results(store)``), dims ``scenario``,
``branch``, ``bus`` and ``percentile``; see ``docs/design/scenarios_report.md`` for the variables. The HTML report
is one offline file (Bokeh's JavaScript inlined, no ``<script src>``): the comparison table, the failed scenarios
with their errors, hours over limit per scenario, loading duration curves of the most loaded assets (a select
widget picks the asset) and a network map coloured by max loading (a select widget picks the scenario).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import holoviews as hv
import numpy as np
import pandas as pd

from scenarios.report_plots import (
    branch_segments,
    build_duration_curves,
    build_hours_bars,
    build_network_maps,
    bus_positions,
)

if TYPE_CHECKING:
    import xarray as xr
    from rich.table import Table

    from twin.grid import Grid

__all__ = ["check_results", "compare_markdown", "compare_rich", "compare_table", "write_report"]

REQUIRED_VARS: dict[str, tuple[str, ...]] = {
    "max_loading_pct": ("scenario", "branch"),
    "hours_over_limit": ("scenario", "branch"),
    "loading_duration_pct": ("scenario", "branch", "percentile"),
    "min_vm_pu": ("scenario", "bus"),
    "max_vm_pu": ("scenario", "bus"),
    "energy_not_served_mwh": ("scenario",),
    "status": ("scenario",),
}

_COLUMNS = {
    "status": "status",
    "worst_branch": "worst asset",
    "worst_kind": "kind",
    "max_loading_pct": "max loading (%)",
    "n_overloaded": "assets > limit",
    "hours_over_limit_h": "hours over limit (h)",
    "min_vm_pu": "min V (pu)",
    "min_vm_bus": "at bus",
    "max_vm_pu": "max V (pu)",
    "energy_not_served_mwh": "ENS (MWh)",
}
_DECIMALS = {"max_loading_pct": 1, "hours_over_limit_h": 2, "min_vm_pu": 4, "max_vm_pu": 4, "energy_not_served_mwh": 3}


def check_results(results: xr.Dataset) -> None:
    """Raise ValueError naming each missing variable or wrong dims of a scenario results Dataset."""
    problems = [f"variable {name!r} is missing" for name in REQUIRED_VARS if name not in results]
    problems += [
        f"variable {name!r} has dims {results[name].dims}, expected {dims}"
        for name, dims in REQUIRED_VARS.items()
        if name in results and set(results[name].dims) != set(dims)
    ]
    if "branch_kind" not in results.coords:
        problems.append("coordinate 'branch_kind' (on branch: 'line'/'trafo') is missing")
    if problems:
        raise ValueError(
            "scenario results: " + "; ".join(problems) + ". Pass the Dataset of scenarios.runner.open_results(store) "
            "(see docs/design/scenarios_report.md)"
        )


def _argextreme(da: xr.DataArray, dim: str, *, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per scenario: the extreme value over ``dim`` (NaN when all NaN) and the id where it occurs ("" then)."""
    values = da.transpose("scenario", dim).to_numpy().astype(float)
    filled = np.where(np.isnan(values), -np.inf if largest else np.inf, values)
    pos = filled.argmax(axis=1) if largest else filled.argmin(axis=1)
    has = ~np.isnan(values).all(axis=1)
    ids = da[dim].to_numpy().astype(str)[pos]
    extreme = values[np.arange(len(values)), pos]
    return np.where(has, extreme, np.nan), np.where(has, ids, "")


def compare_table(results: xr.Dataset, limit_pct: float = 100.0) -> pd.DataFrame:
    """One row per scenario with its worst asset, overloads, voltage extremes and energy not served.

    Rows are sorted by severity: scenarios that ran come first, by energy not served, then total hours over limit,
    then highest loading (all descending), then lowest voltage (ascending); failed scenarios follow in the
    Dataset's order with NaN values and their error in ``status``.

    Parameters
    ----------
    results : xarray.Dataset
        Scenario results (see the module docstring).
    limit_pct : float
        Loading above which an asset counts as overloaded, %.

    Returns
    -------
    pandas.DataFrame
        Index ``scenario``; columns ``status``, ``worst_branch``, ``worst_kind``, ``max_loading_pct`` (%),
        ``n_overloaded`` (assets with max loading above ``limit_pct``), ``hours_over_limit_h`` (sum over assets,
        h), ``min_vm_pu`` and ``min_vm_bus``, ``max_vm_pu``, ``energy_not_served_mwh`` (MWh).
    """
    check_results(results)
    status = results["status"].to_numpy().astype(str)
    failed = status != "ok"
    loading = results["max_loading_pct"]
    max_loading, worst = _argextreme(loading, "branch", largest=True)
    min_vm, min_bus = _argextreme(results["min_vm_pu"], "bus", largest=False)
    kind = pd.Series(results["branch_kind"].to_numpy().astype(str), index=results["branch"].to_numpy().astype(str))
    hours = results["hours_over_limit"].transpose("scenario", "branch").to_numpy().astype(float)
    table = pd.DataFrame(
        {
            "status": status,
            "worst_branch": worst,
            "worst_kind": kind.reindex(worst).fillna("").to_numpy(),
            "max_loading_pct": max_loading,
            "n_overloaded": pd.array(np.where(failed, None, (loading > limit_pct).sum("branch").to_numpy()), "Int64"),
            "hours_over_limit_h": np.where(failed, np.nan, np.nansum(hours, axis=1)),
            "min_vm_pu": min_vm,
            "min_vm_bus": min_bus,
            "max_vm_pu": results["max_vm_pu"].max("bus", skipna=True).to_numpy(),
            "energy_not_served_mwh": results["energy_not_served_mwh"].to_numpy().astype(float),
        },
        index=pd.Index(results["scenario"].to_numpy().astype(str), name="scenario"),
    )
    order = table.assign(_failed=failed, _order=np.arange(len(table))).sort_values(
        ["_failed", "energy_not_served_mwh", "hours_over_limit_h", "max_loading_pct", "min_vm_pu", "_order"],
        ascending=[True, False, False, False, True, True],
        na_position="last",
        kind="stable",
    )
    return table.loc[order.index]


def _formatted(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table as text: rounded numbers, blanks for NaN, readable column names."""
    shown = table.reset_index()
    shown["n_overloaded"] = shown["n_overloaded"].astype(object).where(shown["n_overloaded"].notna(), "").astype(str)
    for col, decimals in _DECIMALS.items():
        shown[col] = [f"{v:.{decimals}f}" if np.isfinite(v) else "" for v in shown[col]]
    return shown.rename(columns=_COLUMNS).astype(str)


def compare_markdown(results: xr.Dataset, limit_pct: float = 100.0) -> str:
    """The comparison table (:func:`compare_table`) as a Markdown pipe table, worst scenario first."""
    shown = _formatted(compare_table(results, limit_pct))
    cells = shown.map(lambda s: s.replace("|", "\\|"))
    rows = [list(shown.columns), ["---"] * len(shown.columns), *cells.to_numpy().tolist()]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def compare_rich(results: xr.Dataset, limit_pct: float = 100.0) -> Table:
    """The comparison table (:func:`compare_table`) as a :class:`rich.table.Table`; failed scenarios in red."""
    from rich.table import Table

    table = compare_table(results, limit_pct)
    shown = _formatted(table)
    out = Table(title=f"Scenario comparison (worst first; limit {limit_pct:g} %)")
    for name in shown.columns:
        out.add_column(
            name, justify="left" if name in {"scenario", "status", "worst asset", "kind", "at bus"} else "right"
        )
    for row, status in zip(shown.to_numpy().tolist(), table["status"], strict=True):
        out.add_row(*row, style=None if status == "ok" else "red")
    return out


def _holomap_model(hmap: hv.HoloMap, label: str) -> Any:
    """Render a HoloMap as a Bokeh column: a select widget over its keys and one plot per key (no server)."""
    from bokeh.layouts import column
    from bokeh.models import CustomJS, Div, Select

    if not len(hmap):
        return Div(text=f"<p>No {html.escape(label)} to show: no scenario ran successfully.</p>")
    items = list(hmap.items())
    keys = [" / ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k, _ in items]
    frames = [hv.render(frame, backend="bokeh") for _, frame in items]
    for k, frame in enumerate(frames):
        frame.visible = k == 0
    select = Select(title=label, value=keys[0], options=keys, width=400)
    select.js_on_change(
        "value",
        CustomJS(
            args={"frames": frames, "keys": keys},
            code="for (let i = 0; i < frames.length; i++) { frames[i].visible = keys[i] === cb_obj.value }",
        ),
    )
    return column(select, *frames)


def _table_model(table: pd.DataFrame) -> Any:
    shown = _formatted(table)
    shown.columns = [str(c) for c in shown.columns]
    return hv.render(
        hv.Table(shown).opts(title="Scenarios, worst first", width=1000, height=40 + 28 * len(shown)), backend="bokeh"
    )


def _header(results: xr.Dataset, table: pd.DataFrame, grid: Grid, notes: list[str]) -> str:
    failed = table[table["status"] != "ok"]
    items = "".join(
        f"<li><b>{html.escape(str(s))}</b>: {html.escape(str(st))}</li>" for s, st in failed["status"].items()
    )
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        f"<h1>gridtwin scenario comparison: {html.escape(grid.name)}</h1>"
        f"<p>{len(table)} scenarios ({len(table) - len(failed)} ok, {len(failed)} failed), "
        f"{results.sizes['branch']} assets, {results.sizes['bus']} buses.</p>"
        f"<h3>Failed scenarios</h3><ul>{items or '<li>none</li>'}</ul>"
        f"<h3>Notes</h3><ul>{note_items or '<li>none</li>'}</ul>"
    )


def write_report(
    results: xr.Dataset, grid: Grid, path: str | Path, n_assets: int = 8, limit_pct: float = 100.0
) -> Path:
    """Write the scenario comparison as one standalone, offline HTML file and return its path.

    Parameters
    ----------
    results : xarray.Dataset
        Scenario results (see the module docstring).
    grid : twin.Grid
        The grid the scenarios ran on: bus coordinates (or a layout when it has none) and branch ends.
    path : str or Path
        The HTML file to write (its folder must exist); replaced when present.
    n_assets : int
        How many of the most loaded assets get a loading duration curve.
    limit_pct : float
        Loading limit, %.

    Returns
    -------
    Path
    """
    from twin.report import report_path, write_offline_page

    path = report_path(path)
    table = compare_table(results, limit_pct)
    positions = bus_positions(grid)
    _, missing = branch_segments(results, grid, positions[0])
    notes = [f"Bus positions on the map: {positions[1]}."]
    if missing:
        notes.append(
            f"{len(missing)} assets of the results are not in grid {grid.name!r} (added by a scenario?) and not on "
            f"the map: {', '.join(missing)}"
        )
    hv.extension("bokeh", logo=False)
    sections = [
        ("Comparison", _table_model(table)),
        ("Hours over limit", hv.render(build_hours_bars(results), backend="bokeh")),
        ("Loading duration curves", _holomap_model(build_duration_curves(results, n_assets, limit_pct), "asset")),
        ("Network: max loading", _holomap_model(build_network_maps(results, grid, limit_pct, positions), "scenario")),
    ]
    title = f"gridtwin scenarios {grid.name}"
    return write_offline_page(path, _header(results, table, grid, notes), sections, title)
