"""``--json`` on every ``gridtwin`` subcommand: stdout holds one JSON document and nothing else.

Each command runs on small inputs: a one-day demo store (built once by ``gridtwin demo --json``), case9, a
two-scenario set of one day. ``pf-ts CODE``, ``import-cim``, ``predict``, ``shed`` and ``backtest`` have their
``--json`` tested next to their other tests (tests/twin/test_cli.py, test_gridfile.py, test_backtest.py,
tests/twin/timeseries/test_predict.py, test_shed_store.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from twin.cli import _build_parser, main
from twin.timeseries.demo import DEFAULT as DEMO_GRID

SECRET = "cli-json-test-secret"
LV = "1-LV-rural1--0-sw"
SPEC = f"""\
base:
  grid: {LV}
  start: 2016-01-04
  days: 1
scenarios:
  - name: today
  - name: evs
    modifications:
      - {{kind: ev, share: 0.5}}
"""
NO_JSON = {"bench", "serve", "token revoke"}  # bench forwards to benchmarks/run.py; serve runs in the foreground


@dataclass(frozen=True)
class Inputs:
    """What the commands run on (built once per module)."""

    demo: dict[str, Any]
    store: Path
    meters: Path
    sensors_file: Path
    customer: str
    rules: Path
    spec: Path
    scenario_run: dict[str, Any]
    results: Path


def run_json(argv: list[str], status: int = 0) -> Any:
    """Run ``gridtwin ARGV`` in process; check the exit status and return stdout parsed as one JSON document."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    assert code == status, f"exit {code}; stderr: {stderr.getvalue()}"
    return json.loads(stdout.getvalue())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inputs]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRIDTWIN_SECRET", SECRET)
        root = tmp_path_factory.mktemp("cli_json")
        store = root / "demo.zarr"
        demo = run_json(["demo", str(store), "--days", "1", "--no-loop", "--json"])
        meters = Path(demo["meters"]["files"]["meters"])
        rules = root / "rules.json"
        rules.write_text(
            json.dumps({"rules": [{"type": "mismatch", "name": "vs", "limit": 0.04, "min_duration": "1h"}]})
        )
        spec = root / "what_if.yaml"
        spec.write_text(SPEC)
        results = root / "what_if.zarr"
        scenario_run = run_json(["scenario", "run", str(spec), "--out", str(results), "--scheduler", "sync", "--json"])
        yield Inputs(
            demo=demo,
            store=store,
            meters=meters,
            sensors_file=Path(demo["meters"]["files"]["sensors"]),
            customer=str(pd.read_csv(meters, dtype=str)["customer"].iloc[0]),
            rules=rules,
            spec=spec,
            scenario_run=scenario_run,
            results=results,
        )


@pytest.fixture
def store(inputs: Inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the demo store (commands below change it)."""
    monkeypatch.setenv("GRIDTWIN_SECRET", SECRET)
    return Path(shutil.copytree(inputs.store, tmp_path / "store.zarr"))


Case = Callable[[Inputs, Path, Path], list[str]]
CASES: dict[str, tuple[Case, set[str]]] = {  # argv without --json, keys of the document (or of its first record)
    "pf": (lambda i, s, t: ["pf", "case9"], {"grid", "converged", "vm_min_pu", "top_loaded", "written"}),
    "pf-ts store": (
        lambda i, s, t: ["pf-ts", str(s), "--grid", DEMO_GRID],
        {"steps", "windows", "not_converged", "min_vm_pu", "max_loading_pct", "written"},
    ),
    "cases": (lambda i, s, t: ["cases"], {"builtin", "simbench_examples"}),
    "info": (lambda i, s, t: ["info", str(s)], {"path", "freq", "groups"}),
    "ingest": (
        lambda i, s, t: ["ingest", str(s), str(i.sensors_file), "--group", "sensors", "--device-tag", "sensor"],
        {"rows_read", "readings_stored", "duplicates", "conflicts", "rejected", "rejected_by_reason"},
    ),
    "clean": (
        lambda i, s, t: ["clean", str(s), "--target", "energy2_kwh"],
        {"store", "source", "written", "pipeline", "chunks", "seconds"},
    ),
    "sensors": (
        lambda i, s, t: ["sensors", str(s)],
        {"n_meters", "complete_slots", "median_rel_error", "silent_meters", "stuck_meters", "ntl_suspected"},
    ),
    "alarms": (
        lambda i, s, t: ["alarms", str(s), "--rules", str(i.rules)],
        {"alarm_id", "rule", "device", "since", "state"},
    ),
    "erase": (lambda i, s, t: ["erase", str(s), i.customer], {"customer", "meters", "load_columns"}),
    "export-customer": (
        lambda i, s, t: ["export-customer", str(s), i.customer, "--out", str(t / "c.json"), "--meters", str(i.meters)],
        {"customer", "written", "sizes", "variables"},
    ),
    "retention": (
        lambda i, s, t: ["retention", str(s), "--keep", "A_plus=1", "--apply"],
        {"retention_days", "cleared_slots"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_json_output_is_one_parseable_document(name: str, inputs: Inputs, store: Path, tmp_path: Path) -> None:
    build, keys = CASES[name]
    doc = run_json([*build(inputs, store, tmp_path), "--json"])
    assert doc, f"{name}: empty JSON"
    if name == "sensors":  # {trafo: record}
        doc = next(iter(doc.values()))
    elif isinstance(doc, list):  # records
        doc = doc[0]
    assert keys <= set(doc), f"{name}: missing {keys - set(doc)}"


def test_every_subcommand_has_json() -> None:
    missing = [name for name, parser in _leaf_parsers(_build_parser()) if name not in NO_JSON and not _has_json(parser)]
    assert missing == []


def test_every_json_subcommand_is_tested_here_or_next_to_its_tests() -> None:
    elsewhere = {"predict", "shed", "backtest", "import-cim", "pf-ts"}  # tests next to their other tests
    elsewhere |= {"demo", "scenario run", "scenario compare", "gateways simulate"}  # tests below
    elsewhere |= {"token create", "token list"}  # tests/api/test_cli_serve.py
    names = {name for name, parser in _leaf_parsers(_build_parser()) if _has_json(parser)}
    assert names - {n.split(" store")[0] for n in CASES} - elsewhere == set()


def test_demo_json(inputs: Inputs) -> None:
    meters = inputs.demo["meters"]
    assert inputs.demo["loop"] is None  # --no-loop
    assert meters["power_flow"]["steps"] >= 96  # a day of 15-minute slots (and the next midnight)
    assert meters["power_flow"]["not_converged"] == 0
    assert meters["ingest"]["rows_read"] > 0
    assert set(meters["ntl_suspected"]) <= {row["trafo"] for row in meters["virtual_sensors"]}
    assert {"synthesising meters", "total"} <= set(meters["seconds"])


def test_scenario_run_json(inputs: Inputs) -> None:
    run = inputs.scenario_run
    assert run["ran"] == ["today", "evs"]
    assert run["failed"] == []
    assert run["store"] == str(inputs.results)
    again = run_json(
        ["scenario", "run", str(inputs.spec), "--out", str(inputs.results), "--scheduler", "sync", "--json"]
    )
    assert again["ran"] == []
    assert again["skipped"] == ["today", "evs"]


def test_scenario_compare_json_lists_each_scenario(inputs: Inputs, tmp_path: Path) -> None:
    doc = run_json(["scenario", "compare", str(inputs.results), "--report", str(tmp_path / "r.html"), "--json"])
    rows = {row["scenario"]: row for row in doc["scenarios"]}
    assert set(rows) == {"today", "evs"}
    assert rows["evs"]["max_loading_pct"] >= rows["today"]["max_loading_pct"]
    assert Path(doc["report"]).is_file()


def test_erase_json_counts_and_a_second_erase_fails(inputs: Inputs, store: Path) -> None:
    doc = run_json(["erase", str(store), inputs.customer, "--json"])
    assert doc["customer"] == inputs.customer
    assert doc["meters"] >= 1
    assert main(["erase", str(store), inputs.customer, "--json"]) == 2  # nothing left: a clear error


def test_retention_json_reports_the_cleared_slots(store: Path) -> None:
    doc = run_json(["retention", str(store), "--keep", "A_plus=1", "energy_kwh=100000", "--apply", "--json"])
    assert doc["retention_days"] == {"A_plus": 1.0, "energy_kwh": 100000.0}
    assert doc["cleared_slots"]["measurements/A_plus"] > 0  # the demo's data lie in 2016: older than a day
    assert doc["cleared_slots"]["measurements/energy_kwh"] == 0


def test_gateways_simulate_json_lists_the_applied_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from twin.dispatch import MosquittoBroker, dispatch_plan

    if shutil.which("mosquitto") is None and shutil.which("mosquitto", path="/usr/sbin") is None:
        pytest.skip("mosquitto is not installed (Debian/Ubuntu: apt-get install mosquitto); CI installs it")
    t0 = pd.Timestamp("2016-01-01 10:00")
    commands = pd.DataFrame({
        "element": ["load/0"],
        "element_kind": ["load"],
        "controller": ["ctrl0"],
        "gateway": ["gw1"],
        "start": [t0],
        "end": [t0 + pd.Timedelta("30min")],
        "kw": [12.5],
    })  # fmt: skip
    codes: list[int] = []
    with MosquittoBroker() as broker:
        argv = ["gateways", "simulate", "gw1", "gw2", "--silent", "gw2", "--broker", broker.url, "--duration", "2.5"]
        fleet = threading.Thread(target=lambda: codes.append(main([*argv, "--json"])))
        fleet.start()
        time.sleep(0.5)
        report = dispatch_plan(commands, broker.url, plan_id="p1", ack_timeout_s=0.5, retries=2)
        fleet.join()
    assert codes == [0]
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["gateways"] == ["gw1", "gw2"]
    assert doc["silent"] == ["gw2"]
    assert [row["element"] for row in doc["applied"]] == ["load/0"]
    assert doc["applied"][0]["kw"] == 12.5
    assert report.state == "executed"
    assert "applied" in captured.err  # live lines go to stderr with --json


def _leaf_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command name, parser) of every runnable subcommand, nested ones as 'scenario run'."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield prefix.strip(), parser
        return
    for name, child in actions[0].choices.items():
        yield from _leaf_parsers(child, f"{prefix} {name}")


def _has_json(parser: argparse.ArgumentParser) -> bool:
    return any("--json" in action.option_strings for action in parser._actions)
