"""Tests of twin.alarms: every rule type by example, chunked = one-shot with hypothesis, AlarmBook restarts and acks."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.alarms import (
    AlarmBook,
    AlarmError,
    FlatLineRule,
    MismatchRule,
    MissingDataRule,
    RuleState,
    ThresholdRule,
    TunnelRule,
    read_rules,
    rules_from_spec,
)
from twin.timeseries.store import Store

T0 = pd.Timestamp("2026-01-01")


def series(*rows: list[float], start: int = 0, dim: str = "meter", names: list[str] | None = None) -> xr.DataArray:
    """(time, dim) DataArray at 15-min slots from ``start`` slots after T0; one list per device."""
    x = np.array(rows, dtype=float).T
    time = T0 + pd.to_timedelta(15 * (start + np.arange(x.shape[0])), unit="min")
    names = names or [f"d{i}" for i in range(x.shape[1])]
    return xr.DataArray(x, dims=("time", dim), coords={"time": time, dim: names})


def slot(i: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=15 * i)


def compact(events: pd.DataFrame) -> list[tuple]:
    """(device, event, slot of time, slot of since) per event: short to compare in asserts."""
    to_slot = lambda ts: int((ts - T0) / pd.Timedelta("15min"))  # noqa: E731
    return [(r.device, r.event, to_slot(r.time), to_slot(r.since)) for r in events.itertuples()]


# --- threshold ----------------------------------------------------------------------------------------------
def test_threshold_hysteresis_raise_and_clear():
    rule = ThresholdRule("hot", "p_kw", high=10.0, hysteresis=2.0)
    events, state = rule.evaluate(series([5, 11, 9, 8.5, 7.9, 11]))
    assert compact(events) == [("d0", "raised", 1, 1), ("d0", "cleared", 4, 4), ("d0", "raised", 5, 5)]
    assert events["alarm_id"].iloc[0] == events["alarm_id"].iloc[1] == "hot|d0|2026-01-01T00:15:00"
    assert events["alarm_id"].iloc[2] != events["alarm_id"].iloc[0]
    assert state.active.tolist() == [1]


def test_threshold_touching_bounds_changes_nothing():
    rule = ThresholdRule("hot", "p_kw", high=10.0, hysteresis=2.0)
    events, _ = rule.evaluate(series([10, 10, 10]))
    assert events.empty  # exactly at `high`: not above
    events, _ = rule.evaluate(series([10.5, 8.0, 8.0, 8.0, 7.99]))
    assert compact(events) == [("d0", "raised", 0, 0), ("d0", "cleared", 4, 4)]  # exactly at high - hysteresis holds


def test_threshold_oscillation_inside_band_keeps_state():
    rule = ThresholdRule("hot", "p_kw", high=10.0, hysteresis=2.0)
    band = [9.9, 8.1, 9.5, 8.5, 10.0, 8.0] * 5
    events, state = rule.evaluate(series([11, *band]))
    assert compact(events) == [("d0", "raised", 0, 0)]
    assert state.active.tolist() == [1]
    events, state = rule.evaluate(series(band))  # inactive: the band never raises either
    assert events.empty
    assert state.active.tolist() == [0]


def test_threshold_min_duration_exactly_met_vs_one_sample_short():
    rule = ThresholdRule("hot", "p_kw", high=10.0, min_duration="30min", clear_duration="15min")
    met = [11, 11, 11, 5, 5, 5]  # above at slots 0, 1, 2: held 30 min at slot 2
    short = [11, 11, 5, 11, 11, 5]  # two samples only, twice
    events, _ = rule.evaluate(series(met, short))
    assert compact(events) == [("d0", "raised", 2, 0), ("d0", "cleared", 4, 3)]


def test_threshold_nan_inside_run_restarts_it_and_keeps_open_alarm():
    rule = ThresholdRule("hot", "p_kw", high=10.0, min_duration="30min", clear_duration="0min")
    events, _ = rule.evaluate(series([11, 11, np.nan, 11, 11, 11]))
    assert compact(events) == [("d0", "raised", 5, 3)]  # the NaN broke the first run
    events, _ = rule.evaluate(series([11, 11, 11, np.nan, np.nan, 12, 5]))
    assert compact(events) == [("d0", "raised", 2, 0), ("d0", "cleared", 6, 6)]  # NaN does not clear


def test_threshold_low_bound_and_both_bounds():
    rule = ThresholdRule("volt", "vm_pu", low=0.95, high=1.05, hysteresis=0.01)
    events, _ = rule.evaluate(series([1.0, 0.94, 0.955, 0.965, 1.06, 1.045, 1.03]))
    assert compact(events) == [
        ("d0", "raised", 1, 1),
        ("d0", "cleared", 3, 3),
        ("d0", "raised", 4, 4),
        ("d0", "cleared", 6, 6),
    ]


def test_threshold_vectorised_over_devices_in_time_order():
    rule = ThresholdRule("hot", "p_kw", high=1.0)
    events, state = rule.evaluate(series([0, 2, 2], [2, 0, 0], [0, 0, 0], names=["b", "a", "c"]))
    assert compact(events) == [("a", "raised", 0, 0), ("b", "raised", 1, 1), ("a", "cleared", 1, 1)]  # ties: by column
    assert state.device.tolist() == ["b", "a", "c"]


def test_threshold_needs_a_bound_and_valid_durations():
    with pytest.raises(AlarmError, match=r"rule 'x'.*'high' and/or 'low'"):
        ThresholdRule("x", "p_kw")
    with pytest.raises(AlarmError, match=r"rule 'x'.*'clear_duration' must be a duration"):
        ThresholdRule("x", "p_kw", high=1.0, clear_duration="-5min")


# --- flat line, missing data ----------------------------------------------------------------------------------
def test_flatline_exactly_n_samples_vs_one_short():
    rule = FlatLineRule("stuck", "p_kw", samples=4)
    events, _ = rule.evaluate(series([1, 2, 2, 2, 2, 3], [1, 2, 2, 2, 3, 3]))
    assert compact(events) == [("d0", "raised", 4, 1), ("d0", "cleared", 5, 5)]


def test_flatline_nan_breaks_run():
    rule = FlatLineRule("stuck", "p_kw", samples=3)
    events, _ = rule.evaluate(series([2, 2, np.nan, 2, 2, 2]))
    assert compact(events) == [("d0", "raised", 5, 3)]
    with pytest.raises(AlarmError, match="'samples' must be >= 2"):
        FlatLineRule("s", "p_kw", samples=1)


def test_missing_counts_from_last_reading():
    rule = MissingDataRule("silent", "p_kw", min_duration="60min")
    nan = np.nan
    events, _ = rule.evaluate(series([1, nan, nan, nan, nan, 2, nan, nan, nan, 3]))
    # last reading at slot 0; slot 4 is 60 min later; the 45-min gap after slot 5 is too short
    assert compact(events) == [("d0", "raised", 4, 0), ("d0", "cleared", 5, 5)]


def test_missing_from_the_first_slot_without_any_reading():
    events, _ = MissingDataRule("silent", "p_kw", min_duration="30min").evaluate(series([np.nan] * 3))
    assert compact(events) == [("d0", "raised", 2, 0)]


# --- tunnel, virtual-sensor mismatch ------------------------------------------------------------------------
def test_tunnel_absolute_relative_and_wider_band():
    measured = series([10, 13, 10, 100, 125, 100])
    predicted = series([10, 10, 10, 100, 100, 100])
    events, _ = TunnelRule("t", "p", predicted="q", abs_band=2.0).evaluate(measured, predicted=predicted)
    expected = [("d0", "raised", 1, 1), ("d0", "cleared", 2, 2), ("d0", "raised", 4, 4), ("d0", "cleared", 5, 5)]
    assert compact(events) == expected
    events, _ = TunnelRule("t", "p", predicted="q", rel_band=0.2).evaluate(measured, predicted=predicted)
    assert compact(events) == expected
    events, _ = TunnelRule("t", "p", predicted="q", abs_band=5.0, rel_band=0.3).evaluate(measured, predicted=predicted)
    assert events.empty


def test_tunnel_aligns_prediction_and_needs_it():
    measured = series([10, 13], [10, 10], names=["a", "b"])
    predicted = series([10, 10], [10, 10], names=["b", "a"]).transpose("meter", "time")
    predicted.loc[{"meter": "a"}] = [10, 13]
    events, _ = TunnelRule("t", "p", predicted="q", abs_band=1.0).evaluate(measured, predicted=predicted)
    assert events.empty
    with pytest.raises(AlarmError, match=r"rule 't'.*predicted=DataArray"):
        TunnelRule("t", "p", predicted="q", abs_band=1.0).evaluate(measured)


def test_mismatch_on_absolute_relative_error():
    rel = series([0.01, -0.08, -0.09, 0.04, 0.02], dim="trafo", names=["T1"])
    rule = MismatchRule("ntl", limit=0.05, hysteresis=0.02, min_duration="15min", clear_duration="0min")
    events, _ = rule.evaluate(rel)
    assert compact(events) == [("T1", "raised", 2, 1), ("T1", "cleared", 4, 4)]


# --- incremental evaluation -------------------------------------------------------------------------------
RULES = [
    ThresholdRule("th", "p", high=1.0, hysteresis=0.5, min_duration="30min", clear_duration="15min"),
    ThresholdRule("tl", "p", low=-1.0, min_duration="0min"),
    FlatLineRule("fl", "p", samples=3),
    MissingDataRule("ms", "p", min_duration="45min"),
    TunnelRule("tu", "p", predicted="q", abs_band=0.5, rel_band=0.5, min_duration="15min"),
    MismatchRule("mm", "p", limit=1.0, hysteresis=0.5, min_duration="15min"),
]
VALUES = st.sampled_from([np.nan, -2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0])


@st.composite
def batches(draw):
    n_t = draw(st.integers(1, 40))
    x = np.array(draw(st.lists(st.lists(VALUES, min_size=n_t, max_size=n_t), min_size=1, max_size=3)))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n_t - 1)), max_size=5)) - {n_t})
    return x, [0, *cuts, n_t]


def pieces(x: np.ndarray, cuts: list[int]) -> list[xr.Dataset]:
    ds = xr.Dataset({"p": series(*x), "q": series(*np.nan_to_num(x[::-1], nan=0.0))})
    return [ds.isel(time=slice(a, b)) for a, b in itertools.pairwise(cuts)]


@settings(max_examples=60, deadline=None)
@given(batches())
def test_chunked_evaluation_equals_one_shot(data):
    x, cuts = data
    for rule in RULES:
        inputs = (lambda ds: {"predicted": ds["q"]}) if isinstance(rule, TunnelRule) else (lambda ds: {})
        (whole,) = pieces(x, [0, x.shape[1]])
        expected, end_state = rule.evaluate(whole["p"], **inputs(whole))
        state, got = RuleState(), []
        for part in pieces(x, cuts):
            events, state = rule.evaluate(part["p"], state, **inputs(part))
            state = RuleState.from_json(json.loads(json.dumps(state.to_json())))  # through its saved form
            got.append(events)
        pd.testing.assert_frame_equal(pd.concat(got, ignore_index=True), expected, check_dtype=False)
        assert state.to_json() == end_state.to_json()


def test_new_device_mid_stream_and_absent_device_keeps_state():
    rule = ThresholdRule("hot", "p", high=1.0, min_duration="15min")
    _, state = rule.evaluate(series([2], [0], names=["a", "b"]))
    events, state = rule.evaluate(series([0], [2], start=1, names=["c", "a"]), state)  # b absent, c new
    assert compact(events) == [("a", "raised", 1, 0)]
    assert dict(zip(state.device, state.run_count, strict=True)) == {"b": 0, "c": 0, "a": 0}


def test_batches_must_move_forward():
    rule = ThresholdRule("hot", "p", high=1.0)
    _, state = rule.evaluate(series([0, 0]))
    with pytest.raises(AlarmError, match=r"rule 'hot'.*after the last evaluated time"):
        rule.evaluate(series([0], start=1), state)


def test_repeated_device_ids_are_an_error():
    with pytest.raises(AlarmError, match=r"rule 'hot': meter ids repeated in the batch: \['a'\]"):
        ThresholdRule("hot", "p", high=1.0).evaluate(series([0], [1], names=["a", "a"]))


def test_many_events_more_than_first_buffer():
    x = np.tile([0.0, 2.0], 300)
    events, _ = ThresholdRule("hot", "p", high=1.0).evaluate(series(x))
    assert len(events) == 599
    assert (events["event"].iloc[::2] == "raised").all()


# --- AlarmBook ------------------------------------------------------------------------------------------------
def book_data(x: np.ndarray) -> xr.Dataset:
    return xr.Dataset({"p": series(*x), "q": series(*np.zeros_like(x))})


def test_book_restart_equals_one_go(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.choice([np.nan, 0.0, 0.5, 1.0, 2.0], size=(4, 60))
    ds = book_data(x)
    one = AlarmBook(tmp_path / "one", RULES[:5])
    one.evaluate({"measurements": ds})
    first = AlarmBook(tmp_path / "two", RULES[:5])
    first.evaluate({"measurements": ds.isel(time=slice(0, 27))})
    del first
    again = AlarmBook(tmp_path / "two", RULES[:5])  # a fresh process: everything from disk
    again.evaluate({"measurements": ds})  # the whole series again: already evaluated slots are skipped
    pd.testing.assert_frame_equal(again.events, one.events)
    pd.testing.assert_frame_equal(again.active(), one.active())
    assert len(one.events) > 10


def test_book_drops_events_of_an_uncommitted_batch(tmp_path):
    ds = book_data(np.array([[0, 2, 2, 0, 2, 2, 2, 2.0]]))
    book = AlarmBook(tmp_path, [RULES[1], ThresholdRule("hot", "p", high=1.0)])
    book.evaluate({"measurements": ds.isel(time=slice(0, 3))})
    committed = (tmp_path / "state.json").read_bytes()
    book.evaluate({"measurements": ds})
    (tmp_path / "state.json").write_bytes(committed)  # as if killed between the two writes
    reopened = AlarmBook(tmp_path, list(book.rules.values()))
    assert len(reopened.events) == 1
    reopened.evaluate({"measurements": ds})
    pd.testing.assert_frame_equal(reopened.events, book.events)


def test_acknowledge_flow(tmp_path):
    book = AlarmBook(tmp_path, [ThresholdRule("hot", "p", high=1.0)])
    ds = book_data(np.array([[2, 2, 0, 0], [0, 2, 2, 2.0]]))
    book.evaluate({"measurements": ds.isel(time=slice(0, 2))})
    active = book.active()
    assert active["alarm_id"].tolist() == ["hot|d0|2026-01-01T00:00:00", "hot|d1|2026-01-01T00:15:00"]
    assert active["state"].tolist() == ["raised", "raised"]
    with pytest.raises(AlarmError, match="before it was raised"):
        book.acknowledge("hot|d1|2026-01-01T00:15:00", "alice", "2026-01-01T00:10")
    book.acknowledge("hot|d1|2026-01-01T00:15:00", "alice", "2026-01-01T00:20")
    with pytest.raises(AlarmError, match="already acknowledged"):
        book.acknowledge("hot|d1|2026-01-01T00:15:00", "bob", "2026-01-01T00:21")
    with pytest.raises(AlarmError, match=re.escape("no alarm 'hot|d9|2026-01-01T00:15:00'")):
        book.acknowledge("hot|d9|2026-01-01T00:15:00", "bob", "2026-01-01T00:21")
    book = AlarmBook(tmp_path, [ThresholdRule("hot", "p", high=1.0)])
    book.evaluate({"measurements": ds})
    alarms = book.alarms().set_index("alarm_id")
    assert alarms["state"].to_dict() == {
        "hot|d0|2026-01-01T00:00:00": "cleared",
        "hot|d1|2026-01-01T00:15:00": "acknowledged",
    }
    assert alarms.loc["hot|d1|2026-01-01T00:15:00", "acknowledged_by"] == "alice"
    assert alarms.loc["hot|d1|2026-01-01T00:15:00", "acknowledged"] == pd.Timestamp("2026-01-01T00:20")
    assert alarms.loc["hot|d0|2026-01-01T00:00:00", "cleared"] == slot(2)
    assert book.active()["alarm_id"].tolist() == ["hot|d1|2026-01-01T00:15:00"]
    book.acknowledge("hot|d0|2026-01-01T00:00:00", "bob", "2026-01-01T01:00")  # a cleared alarm can still be acked
    assert book.alarms().set_index("alarm_id").loc["hot|d0|2026-01-01T00:00:00", "state"] == "cleared"


def test_book_on_a_store(tmp_path):
    store = Store.create(tmp_path / "s.zarr", origin=T0, secret="x")
    ds = xr.Dataset({"p_kw": series([0, 5, 5, 0], dim="sensor", names=["T1"])})
    store.write_dataset("sensors", ds)
    book = AlarmBook(tmp_path / "book", [ThresholdRule("hot", "p_kw", group="sensors", high=1.0)])
    events = book.evaluate_store(Store.open(tmp_path / "s.zarr", secret="x"), until=slot(1))
    assert compact(events) == [("T1", "raised", 1, 1)]
    events = book.evaluate_store(Store.open(tmp_path / "s.zarr", secret="x"))
    assert compact(events) == [("T1", "cleared", 3, 3)]


def test_book_mismatch_on_virtual_sensors_of_a_store(tmp_path):
    store = Store.create(tmp_path / "s.zarr", origin=T0, secret="x")
    times = [slot(i) for i in range(6)]
    meters = pd.DataFrame(
        {"customer": ["c1", "c2"], "load": ["l1", "l2"], "bus": ["b", "b"], "trafo": ["T1", "T1"]},
        index=pd.Index(["m1", "m2"], name="meter"),
    ).assign(interval_min=15, parameters="energy_kwh")
    energy = [(m, "energy_kwh", t, 1.0) for m in ["m1", "m2"] for t in times]  # 2 x 1 kWh per 15 min = 8 kW
    store.append(pd.DataFrame(energy, columns=["device", "parameter", "time", "value"]), meters=meters)
    metered = [("T1", "p_kw", t, v) for t, v in zip(times, [8, 8, 10, 10, 8, 8.0], strict=True)]
    store.append(pd.DataFrame(metered, columns=["device", "parameter", "time", "value"]), group="sensors")
    book = AlarmBook(tmp_path / "book", [MismatchRule("ntl", limit=0.1, min_duration="15min", clear_duration="0min")])
    events = book.evaluate_store(store)
    assert compact(events) == [("T1", "raised", 3, 2), ("T1", "cleared", 4, 4)]  # rel_error 0.2 at slots 2 and 3


# --- rule specs -------------------------------------------------------------------------------------------------
def test_rules_from_json_and_yaml(tmp_path):
    spec = {
        "rules": [
            {"name": "hot", "type": "threshold", "variable": "p_kw", "high": 10, "min_duration": "30min"},
            {"name": "tun", "type": "tunnel", "variable": "p_kw", "predicted": "p_fc", "rel_band": 0.2},
            {"name": "ntl", "type": "mismatch", "limit": 0.1},
        ]
    }
    (tmp_path / "r.json").write_text(json.dumps(spec))
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - {name: hot, type: threshold, variable: p_kw, high: 10, min_duration: 30min}\n"
        "  - {name: tun, type: tunnel, variable: p_kw, predicted: p_fc, rel_band: 0.2}\n"
        "  - {name: ntl, type: mismatch, limit: 0.1}\n"
    )
    rules = read_rules(tmp_path / "r.json")
    assert rules == read_rules(tmp_path / "r.yaml")
    assert rules[0] == ThresholdRule("hot", "p_kw", high=10, min_duration="30min")
    assert rules[2] == MismatchRule("ntl", limit=0.1)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a", "type": "treshold", "variable": "p"}, r"rules\[0\] \(rule 'a'\): key 'type' must be one of"),
        ({"name": "a", "type": "threshold", "variable": "p", "hig": 1}, r"rule 'a'.*unknown key\(s\) \['hig'\]"),
        ({"name": "a", "type": "threshold", "variable": "p", "high": "x"}, r"rule 'a'.*key 'high' must be a number"),
        ({"name": "a", "type": "threshold", "variable": "p", "high": 1, "min_duration": "soon"}, "'min_duration'"),
        ({"name": "a", "type": "tunnel", "variable": "p", "abs_band": 1}, "rule 'a'.*key 'predicted'"),
        ({"name": "a", "type": "threshold", "high": 1}, "rule 'a'.*variable"),
        ({"type": "threshold"}, r"rules\[0\].*key 'name'"),
        (
            {"name": "a", "type": "missing", "variable": "p", "min_duration": 30},
            "rule 'a'.*'min_duration' must be a dur",
        ),
        ({"name": "a", "type": "flatline", "variable": "p", "samples": 2.5}, "rule 'a'.*'samples' must be a whole"),
        ({"name": "a", "type": "tunnel", "variable": "p", "predicted": "q"}, "rule 'a'.*'abs_band' and/or 'rel_band'"),
    ],
)
def test_rule_spec_errors_name_rule_and_key(entry, message):
    with pytest.raises(AlarmError, match=message):
        rules_from_spec({"rules": [entry]})


def test_rule_spec_file_error_names_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"rules": [{"name": "a", "type": "missing", "variable": "p"}] * 2}))
    with pytest.raises(AlarmError, match=r"r\.json: rule names must be unique; repeated: \['a'\]"):
        read_rules(path)
