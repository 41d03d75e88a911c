"""Tests of scenarios.electrify: EV and heat-pump profiles, and winter overloads of electrified SimBench grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import twin
from scenarios import electrify, heat_pump_p_kw, synthesize_temperature
from scenarios.electrify import EvSessions, _ev_profiles_mw, draw_ev_sessions
from solvers import run_pf_timeseries
from twin.validate import find_problems

MV, LV = "1-MV-urban--0-sw", "1-LV-rural1--0-sw"
WINTER = slice("2016-01-03", "2016-01-06")  # 4 cold days (synthetic minimum −12 °C on Jan 4 for seed 0)
# Shares for the overload test: 60 % of households with an EV and a heat pump (a 2040s-like uptake).
SHARES = {"ev_share": 0.6, "hp_share": 0.6}


@pytest.fixture(scope="module")
def simbench() -> dict[str, tuple[twin.Grid, xr.Dataset]]:
    return {code: (twin.load(code), twin.read_simbench_profiles(code, steps=96 * 14)) for code in (MV, LV)}


def _max_loading(grid: twin.Grid, profiles: xr.Dataset) -> pd.Series:
    s = profiles.sel(time=WINTER)
    res = run_pf_timeseries(grid, s["load_p_mw"], s["load_q_mvar"], s["sgen_p_mw"], s.get("storage_p_mw"))
    assert bool(res["converged"].all())
    return res["loading_pct"].max("time").to_series()


@pytest.mark.parametrize("code", [MV, LV])
def test_winter_overload_appears_only_when_electrified(simbench, code: str) -> None:
    grid, profiles = simbench[code]
    today = _max_loading(grid, profiles)
    new_grid, new_profiles = electrify(grid, profiles, **SHARES, seed=0)
    future = _max_loading(new_grid, new_profiles)
    assert today.max() < 60.0  # measured: MV 32 %, LV 47 %
    assert future.max() > 110.0, future.nlargest(3)  # measured: MV 138 % (line/48), LV 130 % (trafo/0)
    assert ((future > 100.0) & (today < 100.0)).any()


def test_new_loads_sit_at_their_household_buses(simbench) -> None:
    grid, profiles = simbench[LV]
    before = grid.copy()
    new_grid, new_profiles = electrify(grid, profiles, ev_share=0.5, hp_share=0.8, seed=3)
    loads = new_grid.tables["load"]
    new_ids = loads.index.difference(grid.tables["load"].index)
    assert len(new_ids) > 0
    assert all(i.startswith(("ev/", "hp/")) for i in new_ids)
    parent = [i.split("/", 1)[1] for i in new_ids]
    assert (loads.loc[new_ids, "bus"].to_numpy() == grid.tables["load"].loc[parent, "bus"].to_numpy()).all()
    assert find_problems(new_grid) == []
    assert set(new_profiles["load"].to_numpy()) == set(loads.index)
    assert (new_profiles["n_units"] >= 1).all()
    pd.testing.assert_frame_equal(grid.tables["load"], before.tables["load"])  # input untouched
    p = new_profiles["load_p_mw"].sel(load=list(new_ids))
    np.testing.assert_allclose(new_profiles["load_q_mvar"].sel(load=list(new_ids)), p * np.tan(np.arccos(0.98)))
    rated = xr.DataArray(loads.loc[new_ids, "p_mw"].to_numpy(), dims="load", coords={"load": list(new_ids)})
    assert bool((p <= rated + 1e-12).all())
    xr.testing.assert_equal(new_profiles["load_p_mw"].sel(load=profiles["load"]), profiles["load_p_mw"])


def test_household_rule_scales_mv_aggregates(simbench) -> None:
    grid, profiles = simbench[MV]
    _, new_profiles = electrify(grid, profiles, ev_share=0.3, hp_share=0.0, seed=1)
    households = np.round(grid.tables["load"]["p_mw"].sum() / 0.002)
    n_ev = int(new_profiles["n_units"].sum())
    assert abs(n_ev - 0.3 * households) < 4 * np.sqrt(households * 0.3 * 0.7)
    assert not any(i.startswith("hp/") for i in new_profiles["load"].to_numpy())


def test_ev_energy_is_the_sum_of_session_energies() -> None:
    time = pd.date_range("2016-01-01", periods=96 * 5, freq="15min")
    units = np.array([1, 3, 2])
    p_mw = _ev_profiles_mw(time, units, 11.0, np.random.default_rng(7))
    table = draw_ev_sessions(time, units, 11.0, EvSessions(), np.random.default_rng(7))  # the same draws
    # each session is a box of power_kw from arrival to end; the profile holds the part inside the 5 days
    inside_h = np.clip(table["end_h"], 0, 120) - np.clip(table["arrival_h"], 0, 120)
    per_device = np.bincount(table["device"], table["power_kw"] * inside_h, minlength=3)
    np.testing.assert_allclose(p_mw.sum(axis=0) * 1000 * 0.25, per_device, rtol=1e-9)
    assert (table["arrival_h"] < 0).any()  # the day before: its sessions charge into the first night
    assert p_mw.max() <= units.max() * 11.0 / 1000 + 1e-12
    hours = time.hour.to_numpy()
    assert p_mw[(hours >= 9) & (hours < 12)].sum() < 1e-3 * p_mw.sum()  # nobody charges in the late morning


def test_ev_fleet_statistics(simbench) -> None:
    grid, profiles = simbench[MV]
    _, new = electrify(grid, profiles, ev_share=0.3, hp_share=0.0, seed=2)
    ev = new["load_p_mw"].sel(load=[i for i in new["load"].to_numpy() if i.startswith("ev/")]).sum("load")
    full_days = ev.sel(time=slice("2016-01-02", "2016-01-13"))
    kwh_per_ev_day = float(full_days.sum()) * 1000 * 0.25 / (int(new["n_units"].sum()) * 12)
    assert kwh_per_ev_day == pytest.approx(40 * 0.18, rel=0.02)
    by_hour = full_days.groupby("time.hour").mean()
    assert 17 <= int(by_hour.idxmax()) <= 20  # evening peak from arrivals ~ N(18:00, 1.5 h)


def test_heat_pump_power_rises_when_colder(simbench) -> None:
    p = heat_pump_p_kw(np.array([20.0, 15.0, 10.0, 0.0, -5.0, -10.0, -20.0]), 8.0, 3.0)
    assert p[0] == 0.0
    assert p[1] == 0.0
    assert (np.diff(p) >= 0).all()
    assert p[2] < p[3] < p[4]
    assert p.max() == pytest.approx(8.0 / 3.0 * 1.5)  # capped in deep cold
    assert heat_pump_p_kw(np.array([7.0]), 8.0, 3.0)[0] == pytest.approx(8.0 * 8 / 27 / 3.0)  # rated COP at 7 °C

    grid, profiles = simbench[LV]
    n = profiles.sizes["time"]
    energies = []
    for temp_c in (5.0, -5.0):
        _, new = electrify(grid, profiles, ev_share=0.0, hp_share=0.5, temperature=np.full(n, temp_c), seed=0)
        hp = new["load_p_mw"].sel(load=[i for i in new["load"].to_numpy() if i.startswith("hp/")])
        energies.append(float(hp.sum()))
    assert energies[1] > 1.5 * energies[0] > 0


def test_synthetic_temperature_is_german_like() -> None:
    time = pd.date_range("2016-01-01", "2016-12-31 23:45", freq="15min")
    temp = synthesize_temperature(time, seed=0)
    assert temp.sizes["time"] == 35_136
    assert -16.0 < float(temp.sel(time="2016-01").min()) < -6.0
    assert float(temp.sel(time="2016-01").mean()) < 3.0
    assert float(temp.sel(time="2016-07").mean()) > 15.0
    night, afternoon = temp.groupby("time.hour").mean().sel(hour=[3, 15]).to_numpy()
    assert afternoon - night == pytest.approx(8.0, abs=1.0)
    xr.testing.assert_equal(temp, synthesize_temperature(time, seed=0))
    assert not np.allclose(temp, synthesize_temperature(time, seed=1))


def test_same_seed_same_result(simbench) -> None:
    grid, profiles = simbench[LV]
    g1, p1 = electrify(grid, profiles, seed=5)
    g2, p2 = electrify(grid, profiles, seed=5)
    _, p3 = electrify(grid, profiles, seed=6)
    pd.testing.assert_frame_equal(g1.tables["load"], g2.tables["load"])
    xr.testing.assert_identical(p1, p2)
    assert not p1["load_p_mw"].equals(p3["load_p_mw"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ev_share": 1.5}, "ev_share"),
        ({"cop": 0.0}, "cop"),
        ({"temperature": np.zeros(3)}, "temperature needs"),
        (
            {
                "temperature": xr.DataArray(
                    np.zeros(96), dims="time", coords={"time": pd.date_range("2015-01-01", periods=96, freq="15min")}
                )
            },
            "align it",
        ),
    ],
)
def test_bad_input_is_named(simbench, kwargs: dict[str, object], match: str) -> None:
    grid, profiles = simbench[LV]
    with pytest.raises(ValueError, match=match):
        electrify(grid, profiles, **kwargs)


def test_electrifying_twice_or_foreign_profiles_is_refused(simbench) -> None:
    grid, profiles = simbench[LV]
    new_grid, new_profiles = electrify(grid, profiles)
    with pytest.raises(ValueError, match="only once"):
        electrify(new_grid, new_profiles)
    with pytest.raises(ValueError, match="lack load ids"):
        electrify(simbench[MV][0], profiles)
