"""Dispatching control plans over a real Mosquitto on loopback, the simulated fleet, execution state and profiles."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
import pytest
import xarray as xr

from twin.dispatch import (
    BrokerUnavailableError,
    ExecutionState,
    GatewayFleet,
    MosquittoBroker,
    apply_to_profiles,
    dispatch_in_process,
    dispatch_plan,
    parse_broker_url,
    prepare_commands,
    simulate_gateways,
)
from twin.dispatch.broker import _free_port, connect_client, subscribe
from twin.dispatch.messages import command_payloads, command_topic, encode_message

T0 = pd.Timestamp("2016-01-01 10:00")
SURE = {"ack_timeout_s": 5.0, "retries": 2}  # every gateway answers: a long timeout costs nothing, spares loaded CI
SILENT = {"ack_timeout_s": 0.4, "retries": 2}  # some gateway never answers: the run takes 3 × 0.4 s


@pytest.fixture(scope="module")
def broker() -> Iterator[MosquittoBroker]:
    """A private ``mosquitto`` on a loopback port (skipped only when Mosquitto is not installed)."""
    if shutil.which("mosquitto") is None and shutil.which("mosquitto", path="/usr/sbin") is None:
        pytest.skip("mosquitto is not installed (Debian/Ubuntu: apt-get install mosquitto); CI installs it")
    with MosquittoBroker() as server:
        yield server


def _commands(n: int = 4, gateways: tuple[str, ...] = ("gw1", "gw2")) -> pd.DataFrame:
    """``n`` load commands over ``gateways`` (the last via its controller): 30-min windows 15 min apart, 10·(i+1) kW."""
    gw = [gateways[i % len(gateways)] for i in range(n)]
    gw[-1] = ""
    return pd.DataFrame({
        "element": [f"load/{i}" for i in range(n)],
        "element_kind": "load",
        "controller": [f"ctrl{i}" for i in range(n)],
        "gateway": gw,
        "start": [T0 + pd.Timedelta(minutes=15 * i) for i in range(n)],
        "end": [T0 + pd.Timedelta(minutes=15 * i + 30) for i in range(n)],
        "kw": [10.0 * (i + 1) for i in range(n)],
    })  # fmt: skip


def _fleet_ids(commands: pd.DataFrame) -> list[str]:
    return sorted(set(prepare_commands(commands, "any")["target"]))


# ------------------------------------------------------------------------------------------------ URLs and tables


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1884", ("127.0.0.1", 1884, None, None)),
        ("mqtt://broker.example", ("broker.example", 1883, None, None)),
        ("mqtt://ops:s%40cret@10.0.0.5:8883", ("10.0.0.5", 8883, "ops", "s@cret")),
    ],
)
def test_parse_broker_url(url: str, expected: tuple[Any, ...]) -> None:
    address = parse_broker_url(url)
    assert (address.host, address.port, address.username, address.password) == expected
    assert "cret" not in address.url  # the password never reaches logs


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://127.0.0.1:1883", "scheme 'http'"),
        ("127.0.0.1:1883", "expected mqtt://host:port"),
        ("mqtt://:1883", "no host"),
        ("mqtt://host:99999", "bad port"),
        ("mqtt://host:abc", "bad port"),
        ("mqtt://host:1883/topic", "unexpected path"),
    ],
)
def test_bad_broker_urls_are_explained(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_broker_url(url)


def test_command_ids_are_stable_and_targets_fall_back_to_the_controller() -> None:
    commands = _commands()
    first = prepare_commands(commands, "plan-A")
    assert first["command_id"].tolist() == prepare_commands(commands.copy(), "plan-A")["command_id"].tolist()
    assert first["command_id"].is_unique
    assert set(first["command_id"]).isdisjoint(prepare_commands(commands, "plan-B")["command_id"])
    changed = commands.assign(kw=commands["kw"] + [0.0, 0.0, 1.0, 0.0])
    same = first["command_id"] == prepare_commands(changed, "plan-A")["command_id"]
    assert same.tolist() == [True, True, False, True]
    assert first["target"].tolist() == ["gw1", "gw2", "gw1", "ctrl3"]
    given = prepare_commands(commands.assign(command_id=["a", "b", "c", "d"]), "plan-A")
    assert given["command_id"].tolist() == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"element_kind": ["load", "gen", "load", "load"]}, r"row 1 \(element 'load/1'\): element_kind"),
        ({"end": [T0] * 4}, r"row 0 .*end is not after start"),
        ({"kw": [1.0, 2.0, -3.0, np.nan]}, r"row 2 \(element 'load/2'\), row 3 .*kw is negative"),
        ({"gateway": ["gw1", "", "", ""], "controller": ["c", "c", "", "c"]}, r"row 2 .*no gateway and no controller"),
        ({"command_id": ["a", "b", "a", "c"]}, r"row 0 .*row 2 .*duplicate command_id"),
        ({"element": ["load/0", "", "load/2", "load/3"]}, r"row 1 .*empty element id"),
    ],
)
def test_bad_command_rows_are_named(change: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prepare_commands(_commands().assign(**change), "plan")


def test_missing_command_columns_are_listed() -> None:
    with pytest.raises(ValueError, match=r"lack columns \['gateway', 'kw'\]"):
        prepare_commands(_commands().drop(columns=["gateway", "kw"]), "plan")


# ------------------------------------------------------------------------------------------------ MQTT round trips


def test_dispatch_round_trip_applies_every_command(broker: MosquittoBroker) -> None:
    commands = _commands(6, ("gw1", "gw2", "gw3"))
    seen: list[dict[str, Any]] = []
    with GatewayFleet(_fleet_ids(commands), broker=broker.url, on_apply=seen.append) as fleet:
        report = dispatch_plan(commands, broker.url, plan_id="plan-1", progress=True, **SURE)
    expected = prepare_commands(commands, "plan-1")
    assert report.state == "executed"
    assert report.counts == {"applied": 6, "rejected": 0, "failed": 0}
    frame = report.to_frame()
    assert frame["command_id"].tolist() == expected["command_id"].tolist()
    assert frame["gateway"].tolist() == expected["target"].tolist()
    assert (frame["attempts"] == 1).all()
    assert (frame["latency_s"] > 0).all()
    assert (frame["latency_s"] < 1.0).all()
    # each gateway received exactly its own commands, with the plan id, and applied each once
    assert sorted((c["command_id"], c["gateway"], c["plan_id"]) for c in seen) == sorted(
        zip(expected["command_id"], expected["target"], ["plan-1"] * 6, strict=True)
    )
    applied = fleet.applied.set_index("command_id").loc[expected["command_id"]]
    np.testing.assert_array_equal(applied["kw"], commands["kw"])
    np.testing.assert_array_equal(applied["start"], commands["start"])
    np.testing.assert_array_equal(applied["end"], commands["end"])
    assert report.broker == broker.url


def test_silent_gateway_is_retried_then_reported_failed(broker: MosquittoBroker) -> None:
    commands = _commands(4)
    with GatewayFleet(_fleet_ids(commands), broker=broker.url, silent=["gw2"]) as fleet:
        started = time.monotonic()
        report = dispatch_plan(commands, broker.url, plan_id="plan-silent", **SILENT)
        elapsed = time.monotonic() - started
    frame = report.to_frame().set_index("element")
    assert report.state == "partially executed"
    assert frame.loc["load/1", "status"] == "failed"
    assert frame.loc["load/1", "attempts"] == SILENT["retries"] + 1
    assert "no ack from gw2 after 3 attempts" in frame.loc["load/1", "reason"]
    assert np.isnan(frame.loc["load/1", "latency_s"])
    silent_id = frame.loc["load/1", "command_id"]
    assert fleet.deliveries[silent_id] == SILENT["retries"] + 1  # every retry reached the gateway
    others = frame.drop(index="load/1")
    assert (others["status"] == "applied").all()
    assert (others["attempts"] == 1).all()
    assert sorted(fleet.applied["command_id"]) == sorted(others["command_id"])
    assert elapsed >= (SILENT["retries"] + 1) * SILENT["ack_timeout_s"]


def test_rejections_are_final_and_carry_the_reason(broker: MosquittoBroker) -> None:
    commands = _commands(4)

    def too_big(command: dict[str, Any]) -> str | None:
        return "above contracted flexibility" if command["kw"] > 25 else None

    with GatewayFleet(_fleet_ids(commands), broker=broker.url, reject=too_big):
        report = dispatch_plan(commands, broker.url, plan_id="plan-reject", **SURE)
    frame = report.to_frame()
    assert frame["status"].tolist() == ["applied", "applied", "rejected", "rejected"]
    assert (frame["attempts"] == 1).all()  # a rejection is not retried
    assert set(frame.loc[frame["status"] == "rejected", "reason"]) == {"above contracted flexibility"}
    assert report.state == "partially executed"


def test_no_answer_at_all_fails_the_plan(broker: MosquittoBroker) -> None:
    report = dispatch_plan(_commands(2), broker.url, plan_id="plan-nobody", ack_timeout_s=0.1, retries=1)
    assert report.state == "failed"
    assert report.counts == {"applied": 0, "rejected": 0, "failed": 2}
    assert (report.commands["attempts"] == 2).all()


def test_duplicate_delivery_is_applied_once(broker: MosquittoBroker) -> None:
    payload = command_payloads(prepare_commands(_commands(1), "plan-dup"), "plan-dup")[0]
    calls: list[str] = []
    acks: list[dict[str, Any]] = []
    got_two = threading.Event()

    def on_ack(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        acks.append(json.loads(message.payload))
        if len(acks) == 2:
            got_two.set()

    with GatewayFleet(["ctrl0"], broker=broker.url, on_apply=lambda c: calls.append(c["command_id"])) as fleet:
        client = connect_client(broker.url)
        subscribed = threading.Event()
        client.on_subscribe = lambda *_args: subscribed.set()
        client.on_message = on_ack
        client.subscribe("gridtwin/gateway/ctrl0/ack", qos=1)
        assert subscribed.wait(5)
        for _ in range(2):  # what a QoS 1 redelivery looks like to the gateway
            client.publish(command_topic("ctrl0"), encode_message(payload), qos=1).wait_for_publish(5)
        assert got_two.wait(5)
        client.disconnect()
        client.loop_stop()
    assert calls == [payload["command_id"]]
    assert len(fleet.applied) == 1
    assert fleet.deliveries[payload["command_id"]] == 2
    assert [(a["command_id"], a["status"]) for a in acks] == [(payload["command_id"], "applied")] * 2


def test_broker_down_gives_a_clear_error() -> None:
    port = _free_port()
    with pytest.raises(BrokerUnavailableError, match=rf"mqtt://127.0.0.1:{port}.*'mosquitto -p {port}'.*apt-get"):
        dispatch_plan(_commands(1), f"mqtt://127.0.0.1:{port}", plan_id="plan-down")
    with (
        pytest.raises(BrokerUnavailableError, match="mosquitto -p"),
        GatewayFleet(["gw1"], broker=f"mqtt://127.0.0.1:{port}"),
    ):
        pass


def test_missing_mosquitto_binary_says_how_to_install() -> None:
    with (
        pytest.raises(FileNotFoundError, match="apt-get install mosquitto"),
        MosquittoBroker(binary="no-such-mosquitto"),
    ):
        pass


@pytest.mark.usefixtures("broker")  # skips when mosquitto is missing
def test_stopped_broker_is_down() -> None:
    with MosquittoBroker() as private:
        url = private.url
        report = dispatch_plan(_commands(1), url, plan_id="plan-up", ack_timeout_s=0.05, retries=0)
        assert report.state == "failed"  # connected: nobody answered
    assert not private.is_running
    with pytest.raises(BrokerUnavailableError, match="Connection refused"):
        dispatch_plan(_commands(1), url, plan_id="plan-up")


# ------------------------------------------------------------------------------------------------ state


def test_state_persists_across_reload(broker: MosquittoBroker, tmp_path: Path) -> None:
    path = tmp_path / "ops" / "dispatch.json"
    commands = _commands(4)
    with GatewayFleet(_fleet_ids(commands), broker=broker.url, silent=["gw1"]):
        first = dispatch_plan(commands, broker.url, plan_id="plan-7", state=path, ack_timeout_s=0.5, retries=0)
    with GatewayFleet(_fleet_ids(commands), broker=broker.url) as fleet:
        second = dispatch_plan(commands, broker.url, plan_id="plan-7", state=ExecutionState(path), **SURE)
    # the second run sends only what the first did not get applied (gw1's two commands)
    resent = first.commands["status"] != "applied"
    assert resent.tolist() == [True, False, True, False]
    assert sorted(fleet.deliveries) == sorted(first.commands.loc[resent, "command_id"])
    assert second.commands["attempts"].tolist() == [1, 0, 1, 0]
    assert second.commands.loc[~resent, "reason"].str.startswith("applied in an earlier run").all()
    dispatch_in_process(_commands(1), GatewayFleet(["ctrl0"]), plan_id="plan-8", state=path)
    reloaded = ExecutionState(path)
    assert reloaded.plan_ids() == ["plan-7", "plan-8"]
    assert "plan-7" in reloaded
    assert [r.state for r in reloaded.history("plan-7")] == ["partially executed", "executed"]
    latest = reloaded.load("plan-7")
    pd.testing.assert_frame_equal(latest.to_frame(), second.to_frame())
    pd.testing.assert_frame_equal(reloaded.history("plan-7")[0].to_frame(), first.to_frame())
    assert (latest.started, latest.finished, latest.broker) == (second.started, second.finished, second.broker)
    assert [p.name for p in path.parent.iterdir()] == ["dispatch.json"]  # no temporary files left
    with pytest.raises(KeyError, match=r"no dispatch run of plan 'plan-9'; plans saved: \['plan-7', 'plan-8'\]"):
        reloaded.load("plan-9")


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    state = ExecutionState(path)
    report = dispatch_in_process(_commands(2), GatewayFleet(["gw1", "ctrl1"]), plan_id="plan-1", state=state)
    before = path.read_bytes()

    def crash(_fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("twin.dispatch.state.os.fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        state.save(report)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_foreign_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"runs": ')
    with pytest.raises(ValueError, match=r"state.json: not a dispatch state file"):
        ExecutionState(path).load("plan")
    path.write_text('{"something": "else"}')
    with pytest.raises(ValueError, match="pick another path"):
        ExecutionState(path).plan_ids()


# ------------------------------------------------------------------------------------------------ fleet in process


def test_in_process_fallback_matches_the_mqtt_path(broker: MosquittoBroker) -> None:
    commands = _commands(6, ("gw1", "gw2", "gw3"))
    with GatewayFleet(_fleet_ids(commands), broker=broker.url, silent=["gw3"]) as over_mqtt:
        by_mqtt = dispatch_plan(commands, broker.url, plan_id="plan-same", ack_timeout_s=0.5, retries=1)
    in_process = GatewayFleet(_fleet_ids(commands), silent=["gw3"])
    local = dispatch_in_process(commands, in_process, plan_id="plan-same", retries=1)
    assert len(over_mqtt.applied) == 5
    pd.testing.assert_frame_equal(in_process.applied, over_mqtt.applied)
    columns = ["command_id", "element", "gateway", "status", "attempts"]
    pd.testing.assert_frame_equal(local.to_frame()[columns], by_mqtt.to_frame()[columns])
    assert (local.state, local.broker) == (by_mqtt.state, "in-process")


def test_fleet_rejects_bad_commands_and_failed_applies() -> None:
    def refuse(command: dict[str, Any]) -> None:
        if command["element"] == "load/1":
            raise KeyError("load/1 is not in the twin")

    fleet = GatewayFleet(["gw1", "gw2", "ctrl3"], reject=["gw2"], on_apply=refuse)
    report = dispatch_in_process(_commands(4), fleet, plan_id="plan-x")
    reasons = report.to_frame().set_index("element")["reason"]
    assert reasons["load/1"] == "gateway gw2 rejects commands (simulation)"
    assert reasons["load/0"] == ""

    def broken_rule(command: dict[str, Any]) -> str | None:
        raise RuntimeError("rule table missing")

    report = dispatch_in_process(_commands(1), GatewayFleet(["ctrl0"], reject=broken_rule), plan_id="plan-r")
    assert report.commands["reason"].tolist() == ["applying failed: RuntimeError: rule table missing"]
    bad = {"command_id": "z", "plan_id": "p", "element": "load/5", "element_kind": "load", "kw": -1.0}
    ack = fleet.handle("gw1", {**bad, "start": T0.isoformat(), "end": T0.isoformat()})
    assert ack is not None
    assert (ack["status"], ack["reason"]) == ("rejected", "kw=-1.0 is not a finite curtailment ≥ 0")
    ack = fleet.handle("gw1", {**bad, "command_id": "y", "kw": 1.0, "element": "load/1", "start": "x", "end": "y"})
    assert ack is not None
    assert ack["status"] == "rejected"
    assert "bad kw, start or end" in ack["reason"]
    ok = {**bad, "command_id": "w", "kw": 1.0, "element": "load/1", "start": T0.isoformat(), "end": "2016-01-02"}
    ack = fleet.handle("gw1", ok)
    assert ack is not None
    assert ack["reason"] == "applying failed: KeyError: 'load/1 is not in the twin'"
    assert fleet.handle("nobody", ok) is None
    with pytest.raises(ValueError, match=r"silent gateways \['gw9'\] are not in the fleet"):
        GatewayFleet(["gw1"], silent=["gw9"])
    with pytest.raises(TypeError, match=r"silent='gw1': pass a list of ids, e.g. \['gw1'\]"):
        GatewayFleet(["gw1"], silent="gw1")


# ------------------------------------------------------------------------------------------------ profiles


def _profiles() -> xr.Dataset:
    time = pd.date_range(T0, periods=6, freq="15min")
    p = np.array([[0.2, 0.05, 0.0]] * 6)
    return xr.Dataset(
        {
            "load_p_mw": (("time", "load"), p),
            "load_q_mvar": (("time", "load"), p * 0.5),
            "sgen_p_mw": (("time", "sgen"), np.full((6, 2), 0.3)),
        },
        coords={"time": time, "load": ["load/0", "load/1", "load/2"], "sgen": ["sgen/0", "sgen/1"]},
    )


def test_apply_to_profiles_lowers_exactly_the_commanded_cells() -> None:
    profiles = _profiles()
    applied = pd.DataFrame({
        "command_id": ["a", "b", "c", "d"],
        "element": ["load/0", "load/0", "load/1", "sgen/1"],
        "element_kind": ["load", "load", "load", "sgen"],
        "kw": [50.0, 30.0, 80.0, 100.0],
        "start": [T0 + pd.Timedelta("15min"), T0 + pd.Timedelta("30min"), T0, T0 + pd.Timedelta("50min")],
        "end": [T0 + pd.Timedelta(m) for m in ("45min", "60min", "10min", "2h")],
    })  # fmt: skip
    out = apply_to_profiles(applied, profiles)
    expected_p = profiles["load_p_mw"].to_numpy().copy()
    expected_p[1, 0] -= 0.05  # a alone over [10:15, 10:45): steps 10:15, 10:30
    expected_p[2, 0] -= 0.08  # a + b at 10:30
    expected_p[3, 0] -= 0.03  # b alone at 10:45 (its end, 11:00, is excluded)
    expected_p[0, 1] = 0.0  # c: 80 kW from a 50 kW load stops at 0
    np.testing.assert_allclose(out["load_p_mw"].to_numpy(), expected_p, rtol=0, atol=1e-15)
    np.testing.assert_allclose(out["load_q_mvar"].to_numpy(), expected_p * 0.5, rtol=0, atol=1e-15)  # same cos φ
    expected_sgen = np.full((6, 2), 0.3)
    expected_sgen[4:, 1] = 0.2  # d from 10:50: steps 11:00 and 11:15
    np.testing.assert_allclose(out["sgen_p_mw"].to_numpy(), expected_sgen, rtol=0, atol=1e-15)
    xr.testing.assert_identical(profiles, _profiles())  # the input is not changed


def test_apply_to_profiles_refuses_what_it_cannot_place() -> None:
    one = {"command_id": ["a"], "element_kind": ["load"], "kw": [1.0], "start": [T0], "end": [T0 + pd.Timedelta("1h")]}
    with pytest.raises(ValueError, match=r"loads not in the profiles: \['load/9'\]"):
        apply_to_profiles(pd.DataFrame({**one, "element": ["load/9"]}), _profiles())
    late = {**one, "element": ["load/0"], "start": [T0 + pd.Timedelta("5h")], "end": [T0 + pd.Timedelta("6h")]}
    with pytest.raises(ValueError, match=r"command a .* covers no step of the profiles"):
        apply_to_profiles(pd.DataFrame(late), _profiles())
    with pytest.raises(ValueError, match=r"lack columns \['kw'\]"):
        apply_to_profiles(pd.DataFrame(late).drop(columns="kw"), _profiles())
    storage = {**one, "element": ["storage/0"], "element_kind": ["storage"]}
    with pytest.raises(ValueError, match="no 'storage_p_mw' variable"):
        apply_to_profiles(pd.DataFrame(storage), _profiles())


def test_plan_dispatch_lowers_the_profiles_end_to_end(broker: MosquittoBroker) -> None:
    commands = _commands(3, ("gw1",)).iloc[:2]
    with GatewayFleet(["gw1"], broker=broker.url) as fleet:
        report = dispatch_plan(commands, broker.url, plan_id="plan-loop", **SURE)
    assert report.state == "executed"
    out = apply_to_profiles(fleet.applied, _profiles())
    drop = (_profiles()["load_p_mw"] - out["load_p_mw"]).to_numpy()
    np.testing.assert_allclose(drop[:, :2].sum(axis=0), [0.01 * 2, 0.02 * 2])  # 30 min at 15-min steps: 2 each
    assert (drop[:, 2] == 0).all()


# ------------------------------------------------------------------------------------------------ CLI entry


def test_simulate_gateways_prints_applied_commands(broker: MosquittoBroker, capsys: pytest.CaptureFixture[str]) -> None:
    runner = threading.Thread(target=simulate_gateways, args=(broker.url, ["gw1", "ctrl1"]), kwargs={"duration_s": 1.0})
    runner.start()
    report = dispatch_plan(_commands(2), broker.url, plan_id="plan-cli", ack_timeout_s=0.3, retries=5)
    runner.join(10)
    assert not runner.is_alive()
    assert report.state == "executed"
    out = capsys.readouterr().out
    assert "2 gateways listening" in out
    for command_id in report.commands["command_id"]:
        assert f"applied {command_id} plan plan-cli" in out
    assert "2 commands applied" in out


@pytest.mark.usefixtures("broker")  # skips when mosquitto is missing
def test_fleet_resubscribes_after_a_broker_restart() -> None:
    commands = _commands(2)
    with MosquittoBroker() as first:
        port = first.port
        fleet = GatewayFleet(_fleet_ids(commands), broker=first.url)
        fleet.start()
    try:
        with MosquittoBroker(port=port) as second:  # same port, no memory of the fleet's subscription
            report = dispatch_plan(commands, second.url, plan_id="plan-restart", ack_timeout_s=0.5, retries=8)
    finally:
        fleet.stop()
    assert report.state == "executed"
    assert len(fleet.applied) == 2


@pytest.mark.usefixtures("broker")  # skips when mosquitto is missing
def test_credentials_from_the_url() -> None:
    commands = _commands(2)
    with MosquittoBroker(users={"ops": "s@cret"}) as private:
        good = f"mqtt://ops:s%40cret@127.0.0.1:{private.port}"
        with GatewayFleet(_fleet_ids(commands), broker=good):
            report = dispatch_plan(commands, good, plan_id="plan-auth", **SURE)
        assert report.state == "executed"
        assert report.broker == f"mqtt://ops@127.0.0.1:{private.port}"  # no password in reports
        for bad in (private.url, f"mqtt://ops:wrong@127.0.0.1:{private.port}"):
            with pytest.raises(BrokerUnavailableError, match=r"did not accept the connection \(Not authorized\)"):
                dispatch_plan(commands, bad, plan_id="plan-auth")


def test_storage_commands_move_operation_towards_zero() -> None:
    profiles = _profiles().assign(storage_p_mw=(("time", "storage"), np.tile([0.1, -0.1], (6, 1))))
    profiles = profiles.assign_coords(storage=["storage/0", "storage/1"])
    applied = pd.DataFrame({
        "command_id": ["s0", "s1"], "element": ["storage/0", "storage/1"], "element_kind": "storage",
        "kw": [50.0, 50.0], "start": T0, "end": T0 + pd.Timedelta("30min"),
    })  # fmt: skip
    out = apply_to_profiles(applied, profiles)["storage_p_mw"].to_numpy()
    np.testing.assert_allclose(out[:, 0], [0.05, 0.05, 0.1, 0.1, 0.1, 0.1], rtol=0, atol=1e-15)  # less charging
    less_discharging = [-0.05, -0.05, -0.1, -0.1, -0.1, -0.1]
    np.testing.assert_allclose(out[:, 1], less_discharging, rtol=0, atol=1e-15)
    big = applied.assign(kw=[500.0, 500.0])
    np.testing.assert_array_equal(apply_to_profiles(big, profiles)["storage_p_mw"].to_numpy()[:2], 0.0)  # not past 0


def test_a_failing_message_handler_does_not_stop_the_client(
    broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bytes] = []
    second = threading.Event()

    def handler(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        seen.append(message.payload)
        if len(seen) == 1:
            raise RuntimeError("bad handler")
        second.set()

    listener, sender = connect_client(broker.url), connect_client(broker.url)
    try:
        subscribe(listener, "gridtwin/test/x", handler)
        for payload in (b"1", b"2"):
            sender.publish("gridtwin/test/x", payload, qos=1).wait_for_publish(5)
        assert second.wait(5)
    finally:
        for client in (listener, sender):
            client.disconnect()
            client.loop_stop()
    assert seen == [b"1", b"2"]
    assert "handling a message on gridtwin/test/x failed" in caplog.text


def test_device_ids_with_slashes_and_wildcards_are_one_topic_level() -> None:
    from twin.dispatch.messages import ack_topic, command_topic, gateway_of_topic

    for device in ("gw/trafo/0", "a+b", "x#y", "50%/x"):
        topic = command_topic(device)
        assert topic.count("/") == 3
        assert "+" not in topic.split("/")[2]
        assert "#" not in topic
        assert gateway_of_topic(topic) == device
        assert gateway_of_topic(ack_topic(device)) == device
    assert command_topic("+") == "gridtwin/gateway/+/command"  # the subscription wildcard stays a wildcard
