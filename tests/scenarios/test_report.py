"""Scenario comparison: the severity table, its Markdown/rich forms and the standalone HTML report."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from rich.console import Console

import twin
from scenarios.report import compare_markdown, compare_rich, compare_table, write_report
from scenarios.report_plots import branch_segments, build_duration_curves, bus_positions

if TYPE_CHECKING:
    from pathlib import Path

    from twin.grid import Grid

LV = "1-LV-rural1--0-sw"
ERROR = "failed: power flow did not converge at 2016-06-01 12:00 (max mismatch 3.1 MW at bus 7)"


@pytest.fixture(scope="module")
def grid() -> Grid:
    return twin.load(LV)


def make_results(grid: Grid) -> xr.Dataset:
    """Results in the runner's format: base (no overload), pv_peak (one), ev_2030 (two, worst), broken (failed)."""
    branch = np.array([*grid.line.index, *grid.trafo.index], dtype=object)
    kind = np.array(["line"] * len(grid.line) + ["trafo"] * len(grid.trafo), dtype=object)
    bus = grid.bus.index.to_numpy(object)
    scenario = ["base", "pv_peak", "ev_2030", "broken"]
    rng = np.random.default_rng(3)
    peak = np.tile(rng.uniform(10.0, 80.0, len(branch)), (4, 1))
    hours = np.zeros((4, len(branch)))
    peak[1, 2], hours[1, 2] = 105.0, 1.0
    peak[2, 0], hours[2, 0] = 130.0, 12.0
    peak[2, -1], hours[2, -1] = 115.0, 5.0
    percentile = np.arange(0, 101, 5)
    duration = peak[:, :, None] * (1.0 - 0.6 * percentile / 100.0)
    min_vm = np.full((4, len(bus)), 0.98)
    min_vm[2, 5] = 0.91
    max_vm = np.full((4, len(bus)), 1.02)
    ens = np.array([0.0, 0.0, 0.0, np.nan])
    for arr in (peak, hours, duration, min_vm, max_vm):
        arr[3] = np.nan
    return xr.Dataset(
        {
            "max_loading_pct": (("scenario", "branch"), peak),
            "hours_over_limit": (("scenario", "branch"), hours),
            "loading_duration_pct": (("scenario", "branch", "percentile"), duration),
            "min_vm_pu": (("scenario", "bus"), min_vm),
            "max_vm_pu": (("scenario", "bus"), max_vm),
            "energy_not_served_mwh": ("scenario", ens),
            "status": ("scenario", np.array(["ok", "ok", "ok", ERROR], dtype=object)),
        },
        coords={
            "scenario": scenario,
            "branch": branch,
            "branch_kind": ("branch", kind),
            "bus": bus,
            "percentile": percentile,
        },
    )


@pytest.fixture(scope="module")
def results(grid: Grid) -> xr.Dataset:
    return make_results(grid)


def test_table_ranks_worse_scenarios_first_and_counts_overloads(results: xr.Dataset) -> None:
    table = compare_table(results)
    assert table.index.tolist() == ["ev_2030", "pv_peak", "base", "broken"]
    assert table["n_overloaded"].tolist()[:3] == [2, 1, 0]
    assert pd.isna(table.loc["broken", "n_overloaded"])
    ev = table.loc["ev_2030"]
    assert ev["worst_branch"] == "line/0"
    assert ev["worst_kind"] == "line"
    assert ev["max_loading_pct"] == pytest.approx(130.0)
    assert ev["hours_over_limit_h"] == pytest.approx(17.0)
    assert ev["min_vm_pu"] == pytest.approx(0.91)
    assert ev["min_vm_bus"] == str(results["bus"].values[5])
    assert table.loc["base", "hours_over_limit_h"] == 0.0
    # a higher limit counts fewer overloads
    assert compare_table(results, limit_pct=120.0)["n_overloaded"].tolist()[:3] == [1, 0, 0]


def test_energy_not_served_outranks_overloads(results: xr.Dataset) -> None:
    shed = results.copy(deep=True)
    shed["energy_not_served_mwh"].loc["base"] = 0.4
    assert compare_table(shed).index.tolist()[:2] == ["base", "ev_2030"]


def test_failed_scenarios_keep_their_error(results: xr.Dataset) -> None:
    table = compare_table(results)
    broken = table.loc["broken"]
    assert broken["status"] == ERROR
    assert np.isnan(broken["max_loading_pct"])
    assert broken["worst_branch"] == ""
    md = compare_markdown(results)
    lines = md.strip().splitlines()
    assert len(lines) == 2 + len(results["scenario"])
    assert lines[2].startswith("| ev_2030 | ok | line/0 | line | 130.0 | 2 |")
    assert "| broken | failed: power flow did not converge" in lines[-1]
    console = Console(width=250, record=True)
    console.print(compare_rich(results))
    text = console.export_text()
    assert ERROR in text
    assert text.index("ev_2030") < text.index("pv_peak") < text.index("broken")


def test_missing_variable_is_named(results: xr.Dataset) -> None:
    with pytest.raises(ValueError, match=r"'hours_over_limit' is missing.*open_results"):
        compare_table(results.drop_vars("hours_over_limit"))


def test_duration_curves_show_the_most_loaded_assets(results: xr.Dataset) -> None:
    curves = build_duration_curves(results, n_assets=3)
    assert list(curves.keys()) == ["line/0", "trafo/0", "line/2"]
    overlay = curves["line/0"]
    scenarios = set(overlay.get(0).keys())
    assert scenarios == {"base", "pv_peak", "ev_2030"}


def _scripts_with_src(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc=[^>]*>", page) + re.findall(r"<link[^>]*\bhref=\"https?:[^>]*>", page)


def _check_report(page: str, results: xr.Dataset) -> None:
    assert _scripts_with_src(page) == []
    for scenario in ("base", "pv_peak", "ev_2030", "broken"):
        assert scenario in page
    assert "power flow did not converge" in page
    # the three plot kinds: duration curves, bar chart, network segments with hover on asset ids
    assert "Loading duration curve of line/0 (line)" in page
    assert "Hours over limit per scenario" in page
    assert "Max loading per branch (%) in ev_2030" in page
    for model in ('"type":"object","name":"Segment"', '"name":"VBar"', '"name":"Line"', '"name":"DataTable"'):
        assert model in page
    branch = results["branch"].to_numpy().astype(str)
    assert all(f'"{b}"' in page for b in branch)
    tooltips = '"tooltips":[["branch","@{branch}"],["kind","@{kind}"],["from_bus","@{from_bus}"],["to_bus","@{to_bus}"]'
    assert page.count(tooltips) == 3  # one network map per ok scenario
    assert '"tooltips":[["bus","@{bus}"],["min_vm_pu","@{min_vm_pu}"]' in page
    # the HoloMaps become select widgets (assets, scenarios) that switch plots in the browser, no server needed
    assert page.count('"name":"Select"') == 2
    assert '"options":["ev_2030","pv_peak","base"]' in page or '"options":["base","pv_peak","ev_2030"]' in page


def test_report_is_standalone_with_geodata(tmp_path: Path, grid: Grid, results: xr.Dataset) -> None:
    out = write_report(results, grid, tmp_path / "compare.html", n_assets=3)
    page = out.read_text(encoding="utf-8")
    _check_report(page, results)
    assert "positions: geodata" in page
    pos, source = bus_positions(grid)
    assert source == "geodata"
    assert pos.loc["0"].tolist() == pytest.approx([11.4110, 53.6407])


def test_report_lays_out_a_grid_without_coordinates(tmp_path: Path, grid: Grid, results: xr.Dataset) -> None:
    bare = grid.copy()
    bare.bus["x"] = np.nan
    bare.bus["y"] = np.nan
    pos, source = bus_positions(bare)
    assert source == "layout"
    assert np.isfinite(pos.to_numpy()).all()
    assert set(pos.index) == set(grid.bus.index)
    # the radial LV feeder is drawn as a tree: the supply at the top, each branch spans one level
    assert pos.loc[str(grid.ext_grid["bus"].iloc[0]), "y"] == pos["y"].max()
    ends = pd.concat(
        [grid.line[["from_bus", "to_bus"]], grid.trafo[["hv_bus", "lv_bus"]].set_axis(["from_bus", "to_bus"], axis=1)]
    )
    step = np.abs(pos.loc[ends["from_bus"], "y"].to_numpy() - pos.loc[ends["to_bus"], "y"].to_numpy())
    assert step.tolist() == [1.0] * len(ends)
    assert not pos.duplicated().any()
    seg, missing = branch_segments(results, bare)
    assert missing == []
    assert np.isfinite(seg[["x0", "y0", "x1", "y1"]].to_numpy()).all()
    page = write_report(results, bare, tmp_path / "bare.html").read_text(encoding="utf-8")
    _check_report(page, results)
    assert "positions: layout" in page


def test_a_meshed_grid_without_coordinates_gets_distinct_positions() -> None:
    case14 = twin.load("case14")
    case14.bus["x"] = np.nan
    pos, source = bus_positions(case14)
    assert source == "layout"
    assert np.isfinite(pos.to_numpy()).all()
    assert len(pos) == 14
    assert not pos.round(6).duplicated().any()


def test_assets_missing_from_the_grid_are_named(tmp_path: Path, grid: Grid, results: xr.Dataset) -> None:
    smaller = grid.copy()
    smaller.tables["line"] = smaller.line.drop(index="line/3")
    seg, missing = branch_segments(results, smaller)
    assert missing == ["line/3"]
    assert "line/3" not in seg.index
    page = write_report(results, smaller, tmp_path / "smaller.html").read_text(encoding="utf-8")
    assert "not on the map: line/3&lt;" in page


def test_trafo3w_windings_meet_at_a_star_point() -> None:
    import pandapower as pp

    net = pp.create_empty_network()
    buses = [pp.create_bus(net, vn_kv=v, geodata=(x, 0.0)) for v, x in ((110, 0.0), (20, 3.0), (10, 6.0), (10, 9.0))]
    pp.create_ext_grid(net, buses[0])
    pp.create_transformer3w(net, buses[0], buses[1], buses[2], std_type="63/25/38 MVA 110/20/10 kV")
    pp.create_line(net, buses[2], buses[3], 1.0, "NAYY 4x150 SE")
    small = twin.from_pandapower(net)
    ids = ["line/0", "trafo3w/0/hv", "trafo3w/0/mv", "trafo3w/0/lv"]
    res = xr.Dataset(coords={"branch": ids})
    seg, missing = branch_segments(res, small)
    assert missing == []
    assert seg.loc["trafo3w/0/mv", ["from_bus", "to_bus"]].tolist() == ["1", "trafo3w/0"]
    assert seg.loc["trafo3w/0/hv", ["x0", "x1"]].tolist() == pytest.approx([0.0, 3.0])  # star at the mean
    assert seg.loc["line/0", ["x0", "x1"]].tolist() == pytest.approx([6.0, 9.0])


def test_report_when_every_scenario_failed(tmp_path: Path, grid: Grid, results: xr.Dataset) -> None:
    failed = results.isel(scenario=[3])
    assert compare_table(failed)["status"].tolist() == [ERROR]
    page = write_report(failed, grid, tmp_path / "failed.html").read_text(encoding="utf-8")
    assert "1 scenarios (0 ok, 1 failed)" in page
    assert "No asset to show: no scenario ran successfully." in page
    assert "No scenario to show: no scenario ran successfully." in page
    assert _scripts_with_src(page) == []


def test_report_needs_an_existing_folder(tmp_path: Path, grid: Grid, results: xr.Dataset) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(results, grid, tmp_path / "nope" / "r.html")
