"""The benchmark runner works end to end on a tiny configuration (no timing assertions)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import pytest

from benchmarks.run import main, to_markdown

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.peer
def test_bench_pf_smoke_writes_report(tmp_path: Path) -> None:
    pytest.importorskip("lightsim2grid", reason="lightsim2grid is a bench extra: pip install 'gridtwin[peers]'")
    out = tmp_path / "r.json"
    assert main(["pf", "--quick", "--smoke", "--out", str(out)]) == 0
    report = json.loads(out.read_text())

    assert set(report) >= {"suite", "machine", "settings", "suites", "results", "notes"}
    machine = report["machine"]
    assert machine["cores"] >= 1
    for key in ("cpu_model", "date_utc", "python"):
        assert machine[key]
    for dist in ("numpy", "numba", "pandapower", "lightsim2grid"):
        assert machine["versions"][dist]

    rows = report["results"]
    assert {r["suite"] for r in rows} == {"single", "snapshots", "simbench"}
    assert all(r["status"] == "ok" for r in rows), [r["status"] for r in rows if r["status"] != "ok"]
    peer_rows = [r for r in rows if r["tool"] != "gridtwin" and r["time_s"] is not None]
    assert {r["tool"] for r in peer_rows} == {"lightsim2grid", "pandapower"}
    for r in peer_rows:
        assert math.isfinite(r["ratio"]), r
        assert r["ratio"] > 0, r

    (single,) = report["suites"]["single"]
    assert single["case"] == "case14"
    for key in ("gridtwin_s", "lightsim2grid_s", "lightsim2grid_nocache_s", "pandapower_s", "gridtwin_compile_s"):
        assert single[key] > 0, key
    # the three tools solve the same grid: voltages agree
    assert single["max_dvm_lightsim2grid_pu"] < 1e-6
    assert single["max_dvm_pandapower_pu"] < 1e-6

    snaps = report["suites"]["snapshots"]
    assert snaps["steps"] == 20
    assert snaps["gridtwin_converged"] == snaps["lightsim2grid_converged"] == 20
    assert snaps["max_dvm_lightsim2grid_pu"] < 1e-6
    assert snaps["max_dvm_pandapower_pu"] < 1e-6

    simbench = report["suites"]["simbench"]
    assert simbench["gridtwin_converged"] == 20
    assert simbench["max_dvm_pandapower_pu"] < 1e-6
    # lightsim2grid's transformer magnetising branch differs from pandapower's by ~2e-5 pu here
    assert simbench["max_dvm_lightsim2grid_pu"] < 1e-4
    # with SimBench's taps applied (lightsim2grid's semantics) the MV voltages move by ~1.5 %
    assert simbench["max_dvm_lightsim2grid_simbench_taps_pu"] > 1e-3

    assert "| case14 |" in to_markdown(report)


def test_bench_reports_missing_lightsim2grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.peers

    monkeypatch.setattr(benchmarks.peers, "lightsim2grid_version", lambda: None)
    out = tmp_path / "r.json"
    assert main(["pf", "--smoke", "--only", "single", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    lightsim = [r for r in rows if r["tool"] == "lightsim2grid"]
    assert len(lightsim) == 2
    assert all(r["status"] == "not installed" and r["ratio"] is None for r in lightsim)
    assert any(r["tool"] == "pandapower" and r["ratio"] > 0 for r in rows)


def test_bench_ingest_smoke_all_tools_store_every_reading(tmp_path: Path) -> None:
    from shutil import which

    if which("influxd") is None:
        pytest.skip("influxd not installed: apt-get install influxdb (CI installs it)")
    out = tmp_path / "i.json"
    assert main(["ingest", "--rows", "30000", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {(r["tool"], r["setting"]) for r in rows} == {
        ("gridtwin", "long_csv"),
        ("gridtwin", "line_protocol"),
        ("pandas read_csv(parse_dates)+pivot+to_zarr", "long_csv"),
        ("pandas read_csv+to_datetime(ISO8601)+pivot+to_zarr", "long_csv"),
        ("InfluxDB /write, 4 writers", "line_protocol"),
    }
    assert all(r["status"] == "ok" for r in rows), [r["status"] for r in rows]
    assert {r["n_steps"] for r in rows} == {30000}  # every tool holds every reading at the end
    assert all(r["ratio"] > 0 for r in rows if r["tool"] != "gridtwin")


@pytest.mark.peer
def test_bench_all_writes_one_json_and_one_markdown(tmp_path: Path) -> None:
    pytest.importorskip("lightsim2grid", reason="lightsim2grid is a bench extra: pip install 'gridtwin[peers]'")
    out = tmp_path / "all.json"
    assert main(["all", "--suites", "pf,shed", "--quick", "--smoke", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["reports"]) == {"pf", "shed"}
    assert {r["suite"] for r in report["results"]} == {"single", "snapshots", "simbench", "shed"}
    md = out.with_suffix(".md").read_text()
    assert "| shed |" in md
    assert "| single |" in md
    assert [c["case"] for c in report["cases"]][:2] == ["case14", "case14"]  # --smoke: pf on case14
    assert report["cases"][0]["buses"] == 14
    assert md.startswith("gridtwin ")  # versions, commit and machine: how to cite the run
    assert "| pf | case14 | 14 | 20 |" in md


def test_case_sizes_match_the_nets() -> None:
    from benchmarks.cases import build_net
    from benchmarks.run import CASE_SIZES

    for name, size in CASE_SIZES.items():
        net = build_net(name)
        assert size["buses"] == len(net.bus), name
        assert size["branches"] == len(net.line) + len(net.trafo) + len(net.trafo3w), name
        assert size["loads"] == len(net.load), name
        assert size.get("sgens", len(net.sgen)) == len(net.sgen), name


def test_bench_all_case_list_names_grids_sizes_and_versions() -> None:
    from benchmarks.run import ALL_SUITES, _cases_markdown, case_list, machine_info

    full = case_list(list(ALL_SUITES))
    assert {c["suite"] for c in full} == set(ALL_SUITES)
    pf = [c for c in full if c["suite"] == "pf"]
    assert [c["case"] for c in pf[:2]] == ["case1354pegase", "case9241pegase"]
    assert pf[0]["buses"] == 1354
    assert pf[1]["branches"] == 16049
    assert (pf[2]["case"], pf[2]["steps"], pf[2]["timed"]) == ("case1354pegase", 1000, "random load snapshots")
    assert pf[3]["case"] == "1-MV-urban--0-sw (SimBench scenario 0)"
    assert pf[3]["buses"] == 144
    (scen,) = [c for c in full if c["suite"] == "scenarios"]
    assert scen["steps"] == "64 × 30 d"
    smoke = case_list(["pf", "contingency"], quick=True, smoke=True)
    assert (smoke[0]["case"], smoke[0]["buses"], smoke[0]["branches"], smoke[0]["steps"]) == ("case14", 14, 20, 1)
    assert smoke[-1]["steps"] == 24
    md = _cases_markdown({"machine": machine_info(), "cases": smoke})
    assert md.splitlines()[0].startswith("gridtwin ")
    assert "pandapower " in md.splitlines()[0]
    assert "numba " in md.splitlines()[0]
    assert (
        "| pf | case14 | 14 | 20 | 1 | one AC power flow | lightsim2grid, pandapower | gridtwin bench pf --quick |"
        in md
    )
