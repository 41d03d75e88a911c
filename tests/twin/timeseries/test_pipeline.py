"""The demo path end to end: head-end files → store → clean → loads → power flow over the store → virtual sensors,
checked against what the demo injected (``DemoData.truth``) and against a direct power flow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import solvers
from twin.cli import main
from twin.timeseries.demo_run import CSV_OPTIONS, run_demo
from twin.timeseries.importer import import_files
from twin.timeseries.store import Store

SECRET = "pipeline-test-secret"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv("GRIDTWIN_SECRET", SECRET)
    path = tmp_path_factory.mktemp("demo") / "demo.zarr"
    result = run_demo(path, days=2, seed=3)
    result["path"] = path
    yield result
    mp.undo()


def test_every_row_is_accounted_for(demo_run: dict[str, Any]) -> None:
    ingest = demo_run["ingest"]
    assert ingest["rows_read"] == (
        ingest["readings_stored"] + ingest["duplicates"] + ingest["conflicts"] + ingest["rejected"]
    )
    dups = demo_run["truth"]["duplicates"]
    assert ingest["conflicts"] == int((dups["kind"] == "conflict").sum())
    assert ingest["duplicates"] == int((dups["kind"] == "exact").sum())
    # the demo's missing rows (short gaps and dead meters inside the window) show as empty slots
    assert ingest["gaps"]["missing_slots"] >= int(demo_run["truth"]["gaps"]["missing"].sum())


def test_virtual_sensors_find_the_injected_unmetered_loads(demo_run: dict[str, Any]) -> None:
    summary = demo_run["virtual_sensors"].summary
    injected = set(demo_run["truth"]["ntl"]["trafo"])
    assert set(summary.index[summary["ntl_suspected"]]) == injected
    truth = demo_run["truth"]
    meters = pd.read_csv(demo_run["files"]["meters"], dtype=str, index_col=0)
    stuck = truth["broken"].loc[truth["broken"]["kind"] == "stuck", "meter"]
    found = {m for ms in summary["stuck_meters"] for m in ms}
    store = Store.open(demo_run["path"], secret=SECRET)
    assert found == set(store.meter_ids(stuck.tolist()))  # frozen registers are named, not taken for theft
    with_stuck = set(meters.loc[stuck, "trafo"])
    honest = summary.drop(index=list(injected | with_stuck))
    # meters + power-flow losses explain the metering of the other transformers (the demo adds 0.5 % noise)
    assert honest["median_rel_error"].abs().max() < 0.005
    assert (summary.loc[list(injected), "median_rel_error"] > 0.03).all()
    assert len(honest) >= len(summary) - 6


def test_store_power_flow_equals_a_direct_run(demo_run: dict[str, Any]) -> None:
    store = Store.open(demo_run["path"], secret=SECRET)
    results, loads = store.dataset("results"), store.dataset("loads")
    assert results.sizes["time"] == loads.sizes["time"]
    assert bool(results["converged"].all())
    steps = slice(40, 44)
    p, q = loads["p_mw"].isel(time=steps).load(), loads["q_mvar"].isel(time=steps).load()
    grid = demo_run["grid"]
    direct = solvers.run_pf_timeseries(grid, p, q)
    np.testing.assert_allclose(
        results["vm_pu"].isel(time=steps).sel(bus=direct["bus"].values), direct["vm_pu"], atol=1e-9
    )


def test_reingest_only_counts_duplicates(demo_run: dict[str, Any]) -> None:
    store = Store.open(demo_run["path"], secret=SECRET)
    before = demo_run["ingest"]
    again = import_files(store, [demo_run["files"]["readings"]], format="long_csv", **CSV_OPTIONS).as_dict()
    assert again["readings_stored"] == 0
    assert again["duplicates"] == before["readings_stored"] + before["duplicates"]
    # the conflicting pair: its first value is now a duplicate (counted above), its second conflicts again
    assert again["conflicts"] == before["conflicts"]


def test_cli_ingest_info_and_pf(
    demo_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDTWIN_SECRET", SECRET)
    store = tmp_path / "cli.zarr"
    files = demo_run["files"]
    args = [
        "ingest",
        str(store),
        str(files["readings"]),
        "--device-col",
        "Dispositivo",
        "--parameter-col",
        "Parametro",
        "--time-col",
        "Data",
        "--value-col",
        "Valore",
        "--decimal",
        ",",
        "--time-format",
        "%H:%M:%S %d/%m/%Y",
        "--tz",
        "Europe/Rome",
        "--origin",
        "2016-01-01",
        "--meters",
        str(files["meters"]),
        "--json",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["readings_stored"] == demo_run["ingest"]["readings_stored"]
    assert main(["ingest", str(store), str(files["sensors"]), "--group", "sensors", "--device-tag", "sensor"]) == 0
    assert main(["clean", str(store)]) == 0
    assert main(["info", str(store), "--json"]) == 0
    capsys.readouterr()
    assert main(["sensors", str(store), "--json"]) == 0
    flagged = {k for k, v in json.loads(capsys.readouterr().out).items() if v["ntl_suspected"]}
    # without power-flow losses the same two transformers stand out (their NTL is 5-15 %, losses < 1 %)
    assert flagged == set(demo_run["truth"]["ntl"]["trafo"])


def test_cli_alarms_raise_once_and_carry_on(
    demo_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDTWIN_SECRET", SECRET)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"type": "mismatch", "name": "vs", "limit": 0.04, "min_duration": "2h"}]}))
    assert main(["alarms", str(demo_run["path"]), "--rules", str(rules), "--json"]) == 0
    active = json.loads(capsys.readouterr().out)
    assert {a["device"] for a in active} == set(demo_run["truth"]["ntl"]["trafo"])
    assert main(["alarms", str(demo_run["path"]), "--rules", str(rules), "--json"]) == 0
    captured = capsys.readouterr()
    assert "0 new alarm events" in captured.err  # the state was kept: nothing is raised twice
    assert (
        main(
            [
                "alarms",
                str(demo_run["path"]),
                "--rules",
                str(rules),
                "--ack",
                active[0]["alarm_id"],
                "--user",
                "op1",
                "--json",
            ]
        )
        == 0
    )
    states = {a["alarm_id"]: a["state"] for a in json.loads(capsys.readouterr().out)}
    assert states[active[0]["alarm_id"]] == "acknowledged"


def test_cli_erase_and_export(demo_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDTWIN_SECRET", SECRET)
    meters = pd.read_csv(demo_run["files"]["meters"], dtype=str, index_col=0)
    customer = meters["customer"].iloc[0]
    mine = meters.index[meters["customer"] == customer]
    out = tmp_path / "export.csv"
    assert (
        main(
            [
                "export-customer",
                str(demo_run["path"]),
                customer,
                "--out",
                str(out),
                "--meters",
                str(demo_run["files"]["meters"]),
            ]
        )
        == 0
    )
    exported = pd.read_csv(out)
    assert set(exported["meter"]) == set(mine)
    assert main(["erase", str(demo_run["path"]), customer]) == 0
    store = Store.open(demo_run["path"], secret=SECRET)
    assert store.pseudonymiser.customer(customer) not in set(store.dataset()["customer"].values)
    assert (
        main(["erase", str(demo_run["path"]), customer]) == 2
    )  # nothing left to erase: a clear error  # last: it changes the module's store
