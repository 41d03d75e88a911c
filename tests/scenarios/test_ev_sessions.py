"""Tests of the EV session model and placement rules (scenarios.electrify, the ``ev`` modification and its spec)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from scenarios.electrify import EvSessions, _ev_power_mw, _units_per_load, draw_ev_sessions, feeder_distance_km
from scenarios.evaluate import load_base
from scenarios.modify import ModificationError, apply
from scenarios.spec import Base, Scenario, SpecError, parse_spec
from twin.grid import Grid

MV_WEEK = Base(grid="1-MV-urban--0-sw", days=7)
TIME = pd.date_range("2016-01-01", periods=96 * 10, freq="15min")  # 10 days, 15 min


@pytest.fixture(scope="module")
def mv() -> tuple[Grid, xr.Dataset]:
    return load_base(MV_WEEK)


def _feeder_grid(tie_closed: bool = False) -> Grid:
    """S -T- A0 -1 km- A1 -2 km- A2 (open switch on the A2-B1 tie) B1 -0.5 km- B0 -T- S; loads at A1, A2, B1, B0."""
    line = {"r_ohm_per_km": 0.2, "x_ohm_per_km": 0.08, "max_i_ka": 0.2}
    trafo = {"sn_mva": 0.4, "vn_hv_kv": 20.0, "vn_lv_kv": 0.4, "vk_percent": 6.0, "vkr_percent": 1.0}
    tables = {
        "bus": pd.DataFrame({"vn_kv": [20.0] + [0.4] * 5}, index=["S", "A0", "A1", "A2", "B0", "B1"]),
        "line": pd.DataFrame(
            {"from_bus": ["A0", "A1", "B0", "A2"], "to_bus": ["A1", "A2", "B1", "B1"], **line},
            index=["lA1", "lA2", "lB1", "lT"],
        ).assign(length_km=[1.0, 2.0, 0.5, 0.1]),
        "trafo": pd.DataFrame({"hv_bus": ["S", "S"], "lv_bus": ["A0", "B0"], **trafo}, index=["T1", "T2"]),
        "switch": pd.DataFrame({"bus": ["B1"], "element": ["lT"], "et": "l", "closed": [tie_closed]}, index=["swT"]),
        "load": pd.DataFrame({"bus": ["A1", "A2", "B1", "B0"], "p_mw": [0.01, 0.004, 0.02, 0.006]}, index=list("abcd")),
        "ext_grid": pd.DataFrame({"bus": ["S"]}, index=["X"]),
    }
    return Grid(name="feeders", tables=tables)


# -- sessions ----------------------------------------------------------------------------------------------------------
def test_arrival_and_departure_follow_the_requested_distributions() -> None:
    spec = EvSessions(arrival_mean_h=8.0, arrival_std_h=1.0, departure_mean_h=17.0, departure_std_h=0.75)
    table = draw_ev_sessions(TIME, np.array([400]), 11.0, spec, np.random.default_rng(3))
    day = np.floor((table["arrival_h"] + 12.0) / 24.0)  # arrivals lie within ±12 h of 08:00 of their day
    arrival_clock = table["arrival_h"] - 24.0 * day
    assert stats.kstest(arrival_clock, stats.norm(8.0, 1.0).cdf).pvalue > 0.01
    assert arrival_clock.mean() == pytest.approx(8.0, abs=0.03)
    assert arrival_clock.std() == pytest.approx(1.0, rel=0.03)
    departure_clock = table["departure_h"] - 24.0 * day  # the same day: 17:00 comes after 08:00
    assert stats.kstest(departure_clock, stats.norm(17.0, 0.75).cdf).pvalue > 0.01
    assert (table["departure_h"] > table["arrival_h"]).all()
    # the histogram of arrivals by hour of day holds the normal's mass per hour
    counts = np.bincount(np.floor(arrival_clock).astype(int), minlength=24)[:24] / len(table)
    expected = np.diff(stats.norm(8.0, 1.0).cdf(np.arange(25)))
    np.testing.assert_allclose(counts, expected, atol=0.01)


def test_overnight_departure_is_the_next_morning_and_one_car_per_charger() -> None:
    table = draw_ev_sessions(TIME, np.array([50]), 11.0, EvSessions(), np.random.default_rng(0))
    parked = table["departure_h"] - table["arrival_h"]
    assert parked.mean() == pytest.approx(24.0 - 18.0 + 7.0, abs=0.2)  # 18:00 → 07:00
    arrival = table["arrival_h"].to_numpy().reshape(50, -1)  # a unit's sessions are consecutive rows, by day
    departure = table["departure_h"].to_numpy().reshape(50, -1)
    assert (departure[:, :-1] <= arrival[:, 1:]).all()


@pytest.mark.parametrize("rule", ["immediate", "spread"])
def test_session_energy_is_delivered_between_arrival_and_departure(rule: str) -> None:
    spec = EvSessions(kwh_per_session=30.0, rule=rule)
    table = draw_ev_sessions(TIME, np.array([1]), 11.0, spec, np.random.default_rng(5))
    p_kw = _ev_power_mw(TIME, table, 1)[:, 0] * 1000.0
    energy_at = np.concatenate([[0.0], np.cumsum(p_kw * 0.25)])  # kWh delivered up to each step boundary
    full = table[(table["arrival_h"] >= 0) & (table["departure_h"] <= len(TIME) * 0.25)]
    assert len(full) >= 8
    np.testing.assert_allclose(full["delivered_kwh"], 30.0)  # 30 kWh need 2.7 h of 11 kW: always feasible
    first = np.floor(full["arrival_h"] / 0.25).astype(int)
    last = np.ceil(full["departure_h"] / 0.25).astype(int)
    np.testing.assert_allclose(energy_at[last] - energy_at[first], 30.0, rtol=1e-9)
    if rule == "immediate":
        assert p_kw.max() == pytest.approx(11.0)
        np.testing.assert_allclose(full["end_h"] - full["arrival_h"], 30.0 / 11.0)
    else:  # constant power over the whole stay, well below the charger's rating
        np.testing.assert_allclose(full["power_kw"], 30.0 / (full["departure_h"] - full["arrival_h"]))
        assert p_kw.max() < 4.0


def test_infeasible_energy_is_capped_and_counted(mv) -> None:
    grid, profiles = mv
    scenario = Scenario(name="s", modifications=[{"kind": "ev", "share": 0.01, "kw": 3.7, "kwh_per_session": 80}])
    _, new = apply(scenario, grid, profiles)
    # 13 h parked × 3.7 kW ≈ 48 kWh < 80 kWh: every session is short by about 32 kWh
    n_sessions = int(new["n_units"].sum()) * 8  # 7 days + the day before
    assert new.attrs["ev_sessions_short"] == n_sessions
    assert new.attrs["ev_unserved_kwh"] == pytest.approx(n_sessions * (80 - 3.7 * 13), rel=0.05)
    ev = new["load_p_mw"].sel(load=[i for i in new["load"].to_numpy() if i.startswith("ev/")])
    assert float(ev.max()) <= float(new["n_units"].max()) * 3.7e-3 + 1e-12


def test_km_per_day_sets_the_mean_energy() -> None:
    spec = EvSessions(km_per_day=60.0, kwh_per_km=0.2)
    table = draw_ev_sessions(TIME, np.array([300]), 11.0, spec, np.random.default_rng(1))
    assert table["energy_kwh"].mean() == pytest.approx(12.0, rel=0.03)


# -- placement ---------------------------------------------------------------------------------------------------------
def test_feeder_distance_follows_closed_lines_only() -> None:
    dist = feeder_distance_km(_feeder_grid())
    assert dist["A2"] == pytest.approx(3.0, abs=1e-4)
    assert dist["B1"] == pytest.approx(0.5, abs=1e-4)
    assert dist["S"] == 0.0
    closed = feeder_distance_km(_feeder_grid(tie_closed=True))
    assert closed["A2"] == pytest.approx(0.6, abs=1e-4)  # now through the tie from B1


def test_placement_rules_pick_the_intended_loads() -> None:
    grid = _feeder_grid()  # households: a 5, b 2, c 10, d 3 (one per 2 kW)
    rng = np.random.default_rng(0)
    largest = _units_per_load(grid, 12 / 20, rng, "largest_loads")
    assert largest.to_dict() == {"a": 2, "c": 10}  # c filled first, then a
    end = _units_per_load(grid, 6 / 20, rng, "feeder_end")
    assert end.to_dict() == {"a": 4, "b": 2}  # A2 (3 km) first, then A1 (1 km)
    with pytest.raises(ValueError, match="placement='nearest'"):
        _units_per_load(grid, 0.5, rng, "nearest")  # type: ignore[arg-type]


def test_ev_modification_places_chargers_by_rule_and_area(mv) -> None:
    grid, profiles = mv
    loads = grid.load[~grid.load.index.str.startswith(("ev/", "hp/"))]
    households = np.maximum(1, np.round(loads["p_mw"] / 0.002)).astype(int)
    biggest = loads["p_mw"].idxmax()
    _, new = apply(
        Scenario(name="s", modifications=[{"kind": "ev", "n_chargers": 100, "placement": "largest_loads"}]),
        grid,
        profiles,
    )
    assert new["n_units"].to_series().to_dict() == {f"ev/{biggest}": 100}
    dist = feeder_distance_km(grid).reindex(loads["bus"]).to_numpy()
    far = loads.index[np.argmax(dist)]
    n_far = int(households[far])
    _, new = apply(
        Scenario(name="s", modifications=[{"kind": "ev", "n_chargers": n_far, "placement": "feeder_end"}]),
        grid,
        profiles,
    )
    assert new["n_units"].to_series().to_dict() == {f"ev/{far}": n_far}
    bus = grid.load.loc[far, "bus"]
    at_bus = grid.load.index[grid.load["bus"] == bus]
    new_grid, new = apply(
        Scenario(name="s", modifications=[{"kind": "ev", "share": 1, "buses": [bus]}]), grid, profiles
    )
    assert sorted(new["new_load"].to_numpy()) == sorted(f"ev/{i}" for i in at_bus)
    assert (new_grid.load.loc[new["new_load"].to_numpy(), "bus"] == bus).all()
    with pytest.raises(ModificationError, match=r"unknown bus ids \['bus/nowhere'\]"):
        apply(Scenario(name="s", modifications=[{"kind": "ev", "share": 1, "buses": ["bus/nowhere"]}]), grid, profiles)


def test_same_seed_same_chargers_and_profiles(mv) -> None:
    grid, profiles = mv

    def run(seed: int) -> xr.Dataset:
        mod = {"kind": "ev", "share": 0.2, "arrival": {"mean_h": 19, "std_h": 2}, "charging": "spread", "seed": seed}
        return apply(Scenario(name="s", modifications=[mod]), grid, profiles)[1]

    first, again, other = run(11), run(11), run(12)
    xr.testing.assert_identical(first, again)
    assert not first["n_units"].equals(other["n_units"]) or not first["load_p_mw"].equals(other["load_p_mw"])


# -- spec --------------------------------------------------------------------------------------------------------------
def _spec_error(mod: str) -> str:
    text = f"base: {{grid: 1-MV-urban--0-sw, days: 7}}\nscenarios:\n  - name: a\n    modifications:\n{mod}"
    with pytest.raises(SpecError) as info:
        parse_spec(text, "ev.yaml")
    return str(info.value)


def test_ev_spec_errors_name_the_key_and_line() -> None:
    msg = _spec_error("      - kind: ev\n        share: 0.2\n        arrival: {mean_h: 25, std_h: 1}\n")
    assert "ev.yaml:7: scenarios[0].modifications[0].arrival.mean_h: Input should be less than 24" in msg
    msg = _spec_error("      - {kind: ev, share: 0.2, kwh_per_session: 20, km_per_day: 30}\n")
    assert "ev.yaml:5: scenarios[0].modifications[0]: give at most one of 'kwh_per_session' or 'km_per_day'" in msg
    msg = _spec_error("      - {kind: ev, share: 0.2, placement: nearest}\n")
    assert "scenarios[0].modifications[0].placement: Input should be 'random', 'largest_loads' or 'feeder_end'" in msg
    msg = _spec_error("      - kind: ev\n        share: 0.2\n        departure: {mean_h: 7, sd_h: 1}\n")
    assert "ev.yaml:7: scenarios[0].modifications[0].departure.sd_h: Extra inputs are not permitted" in msg
    assert "allowed keys: ['mean_h', 'std_h']" in msg
    msg = _spec_error("      - {kind: ev, share: 0.2, arrival_h: 19, arrival: {mean_h: 18}}\n")
    assert "'arrival_h', not both" in msg
    msg = _spec_error("      - {kind: ev, share: 0.2, loads: [load/1], buses: [bus/1]}\n")
    assert "give at most one area: 'loads' (ids) or 'buses'" in msg


def test_ev_spec_defaults_shorthand_and_monte_carlo_draw() -> None:
    text = """\
base: {grid: 1-MV-urban--0-sw, days: 7}
scenarios:
  - name: a
    modifications: [{kind: ev, share: 0.2, arrival_h: 20}]
monte_carlo:
  n: 3
  seed: 2
  modifications: [{kind: ev, share: 0.2, departure: {mean_h: 6.5}}]
  draw: {ev.arrival.mean_h: {dist: uniform, low: 17, high: 21}}
"""
    scenarios = parse_spec(text, "ev.yaml").expand()
    ev = scenarios[0].modifications[0]
    assert (ev.arrival.mean_h, ev.arrival.std_h, ev.departure.mean_h, ev.charging) == (20.0, 1.5, 7.0, "immediate")
    assert ev.sessions.km_per_day == 40.0
    drawn = [s.modifications[0] for s in scenarios[1:]]
    assert all(17 <= m.arrival.mean_h <= 21 and m.departure.mean_h == 6.5 for m in drawn)
    assert len({m.arrival.mean_h for m in drawn}) == 3
    assert parse_spec(text, "ev.yaml").expand() == scenarios
    bad = text.replace("ev.arrival.mean_h", "ev.arrival.median_h")
    with pytest.raises(SpecError, match=r"'arrival' has no field 'median_h'; fields: \['mean_h', 'std_h'\]"):
        parse_spec(bad, "ev.yaml")
