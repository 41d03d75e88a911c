"""``gridtwin shed`` over a store: stored forecasts → plan (reachable devices only) → AC check → MQTT dispatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xarray as xr

import solvers
import twin
from solvers.shedding.verify import TOL_PCT
from twin.cli import main
from twin.comm import write_comm
from twin.commgen import generate_comm
from twin.dispatch import GatewayFleet, MosquittoBroker, apply_to_profiles
from twin.timeseries.powerflow import write_profiles
from twin.timeseries.shed import controllable_devices, forecast_member
from twin.timeseries.store import Store, StoreError

CODE = "1-LV-rural1--2-sw"


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with 30 days up to 2016-06-29 and the forecasts of the next 24 h (sunny: PV overloads trafo/0)."""
    path = tmp_path_factory.mktemp("shed") / "s.zarr"
    store = Store.create(path, origin="2016-01-01", secret="shed-test")
    write_profiles(store, twin.read_simbench_profiles(CODE).isel(time=slice(96 * 150, 96 * 180)))
    from twin.timeseries.predict import predict_store

    predict_store(store, twin.load(CODE), horizon="24h", train_days=21)
    return path


@pytest.fixture(scope="module")
def comm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    grid = twin.load(CODE)
    grid.sgen["controllable"] = True
    folder = tmp_path_factory.mktemp("comm") / "comm"
    write_comm(generate_comm(grid, seed=0), folder)
    return folder


def test_member_and_missing_forecasts(predicted: Path, tmp_path: Path) -> None:
    store = Store.open(predicted, secret="shed-test")
    ds = forecast_member(store, horizon="6h", load_quantile=0.1, gen_quantile=0.9)
    assert ds.sizes["time"] == 24
    full = store.dataset("forecasts")
    xr.testing.assert_allclose(ds["sgen_p_mw"], full["sgen_p_mw"].sel(quantile=0.9, drop=True).isel(time=slice(24)))
    with pytest.raises(ValueError, match="quantiles"):
        forecast_member(store, load_quantile=0.3)
    empty = Store.create(tmp_path / "e.zarr", origin="2016-01-01", secret="x")
    with pytest.raises(StoreError, match="gridtwin predict"):
        forecast_member(empty)


def test_cli_plan_holds_in_ac_and_uses_reachable_devices_only(
    predicted: Path, comm_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDTWIN_SECRET", "shed-test")
    from twin.comm import read_comm

    grid = twin.load(CODE)
    comm = read_comm(comm_dir, grid)
    reach = controllable_devices(grid, comm)
    assert set(reach["element_kind"]) == {"sgen"}
    # cut the link of one PV controller: that unit must not be used
    cut_ctrl = reach["controller"].iloc[0]
    cut_element = reach.index[0]
    links = comm.links
    links.loc[(links["a"] == cut_ctrl) | (links["b"] == cut_ctrl), "status"] = "down"
    write_comm(comm, comm_dir)
    argv = ["shed", str(predicted), "--grid", CODE, "--comm", str(comm_dir), "--asset", "trafo/0", "--margin", "0.05"]
    assert main([*argv, "--gen-quantile", "0.9", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["feasible"], doc["reason"]
    assert doc["commands"], "a sunny P90 day overloads the transformer: the plan must curtail"
    used = {c["element"] for c in doc["commands"]}
    assert cut_element not in used
    assert used <= set(reach.index)
    assert doc["iterations"][-1]["max_loading_pct"] <= 95.0 + TOL_PCT
    # the plan is in the store and in a JSON file next to it
    store = Store.open(predicted, secret="shed-test")
    assert "plan" in store.groups()
    assert (Path(str(predicted) + ".plans") / f"{doc['plan_id']}.json").exists()


def test_dispatch_through_mosquitto_closes_the_loop(
    predicted: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDTWIN_SECRET", "shed-test")
    grid = twin.load(CODE)
    grid.sgen["controllable"] = True
    comm = generate_comm(grid, seed=0)
    folder = predicted.parent / "comm_ok"
    write_comm(comm, folder)
    gateways = sorted({*controllable_devices(grid, comm)["gateway"]} - {""}) or ["gw"]
    store = Store.open(predicted, secret="shed-test")
    member = forecast_member(store, gen_quantile=0.9)
    with MosquittoBroker() as broker, GatewayFleet(gateways, broker=broker.url) as fleet:
        argv = ["shed", str(predicted), "--grid", CODE, "--comm", str(folder), "--asset", "trafo/0"]
        assert main([*argv, "--gen-quantile", "0.9", "--dispatch", broker.url, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        applied = fleet.applied
    assert doc["execution"]["state"] == "executed"
    assert len(applied) == len(doc["commands"]) > 0
    after = apply_to_profiles(applied, member)
    res = solvers.run_pf_timeseries(
        grid, after["load_p_mw"], after["load_q_mvar"], after["sgen_p_mw"], storage_p_mw=after["storage_p_mw"]
    )
    before = solvers.run_pf_timeseries(
        grid, member["load_p_mw"], member["load_q_mvar"], member["sgen_p_mw"], storage_p_mw=member["storage_p_mw"]
    )
    assert float(before["loading_pct"].sel(branch="trafo/0").max()) > 100.0
    # the plan's own acceptance: within TOL_PCT (1e-3 % points, 1.6 W on this 160 kVA transformer) of the limit
    assert float(res["loading_pct"].sel(branch="trafo/0").max()) <= 100.0 + TOL_PCT


def test_shed_without_comm_says_what_to_pass(predicted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["shed", str(predicted), "--grid", CODE]) == 2
    assert "--all-controllable" in capsys.readouterr().err
