"""Tests of scenarios.modify and scenarios.evaluate: each modification changes what it should and only that."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import twin
from scenarios.evaluate import PERCENTILES, evaluate, load_base, run_scenario
from scenarios.modify import ModificationError, apply
from scenarios.spec import Base, Scenario
from solvers import run_pf_timeseries
from twin.graph import MultiLayerGraph

MV = "1-MV-urban--0-sw"


WEEK = Base(grid=MV, days=7)  # 2016-01-01 .. 01-07


@pytest.fixture(scope="module")
def mv() -> tuple[twin.Grid, xr.Dataset]:
    return load_base(WEEK)  # cached per process: run_scenario below reuses it


def _run(base: tuple[twin.Grid, xr.Dataset], *mods: dict) -> tuple[twin.Grid, xr.Dataset]:
    grid, profiles = base
    return apply(Scenario(name="s", modifications=list(mods)), grid, profiles)


def test_inputs_are_never_modified(mv) -> None:
    grid, profiles = mv
    before_grid, before_prof = grid.copy(), profiles.copy(deep=True)
    _run(
        mv,
        {"kind": "load_growth", "percent": 20},
        {"kind": "ev", "share": 0.2},
        {"kind": "heat_pumps", "share": 0.2},
        {"kind": "weather_shift", "delta_c": -5, "start": "2016-01-02", "end": "2016-01-03"},
        {"kind": "pv", "kwp": 5, "share": 0.1},
        {"kind": "battery", "kwh": 10, "kw": 5},
        {"kind": "outage", "elements": ["line/3"]},
        {"kind": "switching", "open": ["switch/5"]},
        {"kind": "trafo_replacement", "trafo": "trafo/0", "sn_mva": 80},
    )
    for table in ("load", "sgen", "storage", "line", "trafo", "switch"):
        pd.testing.assert_frame_equal(grid.tables[table], before_grid.tables[table])
    xr.testing.assert_identical(profiles, before_prof)


def test_load_growth_scales_only_the_supply_area(mv) -> None:
    grid, profiles = mv
    area = MultiLayerGraph.from_grid(grid).loads_below("trafo/0")
    assert 0 < len(area) < len(grid.load)
    new_grid, new_prof = _run(mv, {"kind": "load_growth", "percent": 10, "trafo": "trafo/0"})
    inside = profiles["load"].isin(area)
    for var in ("load_p_mw", "load_q_mvar"):
        np.testing.assert_allclose(new_prof[var].where(inside), profiles[var].where(inside) * 1.1)
        xr.testing.assert_equal(new_prof[var].where(~inside), profiles[var].where(~inside))
    np.testing.assert_allclose(new_grid.load.loc[area, "p_mw"], grid.load.loc[area, "p_mw"] * 1.1)
    rest = grid.load.index.difference(area)
    pd.testing.assert_frame_equal(new_grid.load.loc[rest], grid.load.loc[rest])
    xr.testing.assert_identical(new_prof["sgen_p_mw"], profiles["sgen_p_mw"])


def test_load_growth_of_listed_loads_and_unknown_ids(mv) -> None:
    _, profiles = mv
    _, new_prof = _run(mv, {"kind": "load_growth", "factor": 2.0, "loads": ["load/3", "load/7"]})
    changed = (new_prof["load_p_mw"] != profiles["load_p_mw"]).any("time")
    assert sorted(changed["load"][changed].to_numpy().tolist()) == ["load/3", "load/7"]
    with pytest.raises(ModificationError, match=r"modifications\[1\] \(load_growth\): unknown load ids \['load/x'\]"):
        _run(mv, {"kind": "trafo_replacement", "trafo": "trafo/1", "sn_mva": 70}, {"kind": "load_growth",
             "factor": 2.0, "loads": ["load/3", "load/x"]})  # fmt: skip
    with pytest.raises(ModificationError, match=r"unknown trafo ids \['trafo/9'\]"):
        _run(mv, {"kind": "load_growth", "factor": 2.0, "trafo": "trafo/9"})


def test_network_changes_touch_one_element(mv) -> None:
    grid, profiles = mv
    new_grid, new_prof = _run(
        mv,
        {"kind": "trafo_replacement", "trafo": "trafo/0", "sn_mva": 80},
        {"kind": "outage", "elements": ["line/5"]},
        {"kind": "switching", "open": ["switch/0"], "close": ["switch/7"]},
    )
    assert new_grid.trafo.loc["trafo/0", "sn_mva"] == 80
    pd.testing.assert_frame_equal(new_grid.trafo.drop(columns="sn_mva"), grid.trafo.drop(columns="sn_mva"))
    pd.testing.assert_series_equal(new_grid.trafo["sn_mva"].drop("trafo/0"), grid.trafo["sn_mva"].drop("trafo/0"))
    off = new_grid.line.index[~new_grid.line["in_service"]].difference(grid.line.index[~grid.line["in_service"]])
    assert off.tolist() == ["line/5"]
    assert grid.switch.loc["switch/0", "closed"]
    assert not grid.switch.loc["switch/7", "closed"]
    changed = new_grid.switch.index[new_grid.switch["closed"] != grid.switch["closed"]]
    assert changed.tolist() == ["switch/0", "switch/7"]
    assert not new_grid.switch.loc["switch/0", "closed"]
    xr.testing.assert_identical(new_prof, profiles)
    n1_grid, _ = _run(mv, {"kind": "outage", "n_minus_1": True})
    pd.testing.assert_frame_equal(n1_grid.line, grid.line)
    with pytest.raises(ModificationError, match=r"unknown switch ids \['switch/x'\]"):
        _run(mv, {"kind": "switching", "open": ["switch/x"]})
    with pytest.raises(ModificationError, match=r"unknown line/trafo ids \['load/1'\]"):
        _run(mv, {"kind": "outage", "elements": ["load/1"]})


def test_ev_adds_chargers_and_arrival_shift_moves_them(mv) -> None:
    grid, profiles = mv
    new_grid, new_prof = _run(mv, {"kind": "ev", "n_chargers": 2000, "seed": 4})
    new_ids = new_grid.load.index.difference(grid.load.index)
    assert len(new_ids) > 0
    assert all(i.startswith("ev/") for i in new_ids)
    assert abs(int(new_prof["n_units"].sum()) - 2000) < 4 * np.sqrt(2000)  # binomial around the expected number
    xr.testing.assert_equal(new_prof["load_p_mw"].sel(load=profiles["load"]), profiles["load_p_mw"])
    _, later = _run(mv, {"kind": "ev", "n_chargers": 2000, "seed": 4, "arrival_h": 20.0})
    ev = list(new_ids)
    # same draws, every arrival 2 h (8 steps) later; departures (07:00) leave room for the whole session
    later_p, new_p = later["load_p_mw"].sel(load=ev).to_numpy(), new_prof["load_p_mw"].sel(load=ev).to_numpy()
    np.testing.assert_allclose(later_p[8:], new_p[:-8], atol=1e-12)
    with pytest.raises(ModificationError, match=r"modifications\[1\] \(ev\): load ids .* exist already"):
        _run(mv, {"kind": "ev", "share": 0.1}, {"kind": "ev", "share": 0.1})
    with pytest.raises(ModificationError, match=r"n_chargers=99999999 exceeds the \d+ households"):
        _run(mv, {"kind": "ev", "n_chargers": 99_999_999})


def test_cold_snap_raises_heat_pump_load_only_in_its_days(mv) -> None:
    snap = {"kind": "weather_shift", "delta_c": -8.0, "start": "2016-01-03", "end": "2016-01-04"}
    hp = {"kind": "heat_pumps", "share": 0.3, "seed": 2}
    _, mild = _run(mv, hp)
    _, cold = _run(mv, hp, snap)
    _, cold_first = _run(mv, snap, hp)
    ids = [i for i in mild["load"].to_numpy() if i.startswith("hp/")]
    days = pd.DatetimeIndex(mild["time"].to_numpy()).normalize()
    inside = xr.DataArray((days >= "2016-01-03") & (days <= "2016-01-04"), dims="time")
    diff = (cold["load_p_mw"] - mild["load_p_mw"]).sel(load=ids)
    assert float(diff.where(inside).sum()) > 0.1 * float(mild["load_p_mw"].sel(load=ids).where(inside).sum())
    assert bool((diff.where(inside, 0.0) >= -1e-12).all())
    assert float(abs(diff.where(~inside, 0.0)).max()) == 0.0
    others = [i for i in mild["load"].to_numpy() if not i.startswith("hp/")]
    xr.testing.assert_equal(cold["load_p_mw"].sel(load=others), mild["load_p_mw"].sel(load=others))
    np.testing.assert_allclose(cold["temperature_degc"] - mild["temperature_degc"], np.where(inside, -8.0, 0.0))
    xr.testing.assert_allclose(cold_first["load_p_mw"], cold["load_p_mw"])  # order does not matter


def test_pv_follows_the_existing_shape_and_battery_respects_limits(mv) -> None:
    grid, profiles = mv
    new_grid, new_prof = _run(
        mv,
        {"kind": "pv", "kwp": 5000.0, "buses": ["11", "12"]},  # 5 MWp: a midday surplus even in January
        {"kind": "battery", "kwh": 20.0, "kw": 10.0, "rule": "self_consumption"},
    )
    assert new_grid.sgen.loc[["pv/11", "pv/12"], "bus"].tolist() == ["11", "12"]
    res = grid.sgen.index[grid.sgen["type"] == "lv_RES"]  # no 'PV' type in this grid: the 'RES' shape is used
    existing = profiles["sgen_p_mw"].sel(sgen=res).sum("sgen") / grid.sgen.loc[res, "p_mw"].sum()
    np.testing.assert_allclose(new_prof["sgen_p_mw"].sel(sgen="pv/12"), existing * 5.0)
    xr.testing.assert_equal(new_prof["sgen_p_mw"].sel(sgen=profiles["sgen"]), profiles["sgen_p_mw"])
    p = new_prof["storage_p_mw"].transpose("time", "storage").to_numpy()
    assert new_prof["storage"].to_numpy().tolist() == ["battery/11", "battery/12"]
    assert np.abs(p).max() <= 0.010 + 1e-12
    soc = 0.010 + np.cumsum(p, axis=0) * 0.25  # starts half full (soc_start 0.5 × 20 kWh), MWh
    assert soc.min() >= -1e-12
    assert soc.max() <= 0.020 + 1e-12
    assert p.max() > 0  # it charges from the midday surplus
    assert p.min() < 0  # and covers the evening load
    with pytest.raises(ModificationError, match=r"unknown bus ids \['nowhere'\]"):
        _run(mv, {"kind": "pv", "kwp": 6.0, "buses": ["nowhere"]})


def test_pv_at_households(mv) -> None:
    grid, profiles = mv
    new_grid, new_prof = _run(mv, {"kind": "pv", "kwp": 4.0, "share": 0.1, "seed": 3})
    new_ids = new_grid.sgen.index.difference(grid.sgen.index)
    parents = [i.removeprefix("pv/") for i in new_ids]
    assert len(new_ids) > 100
    assert set(parents) <= set(grid.load.index)
    np.testing.assert_array_equal(new_grid.sgen.loc[new_ids, "bus"], grid.load.loc[parents, "bus"])
    households = np.round(grid.load.loc[parents, "p_mw"].to_numpy() / 0.002)
    units = new_grid.sgen.loc[new_ids, "p_mw"].to_numpy() / 0.004
    np.testing.assert_allclose(units, np.round(units))
    assert (units >= 1).all()
    assert (units <= households).all()
    assert abs(units.sum() - 0.1 * np.round(grid.load["p_mw"] / 0.002).sum()) < 4 * np.sqrt(units.sum())
    rated = xr.DataArray(new_grid.sgen.loc[new_ids, "p_mw"].to_numpy(), dims="sgen", coords={"sgen": list(new_ids)})
    feed = new_prof["sgen_p_mw"].sel(sgen=list(new_ids))
    np.testing.assert_allclose(feed / rated, (feed / rated).isel(sgen=0).broadcast_like(feed))  # one shape for all
    assert float(new_prof["sgen_p_mw"].sum()) > float(profiles["sgen_p_mw"].sum())


def test_peak_shaving_lowers_the_bus_peak(mv) -> None:
    grid, profiles = mv
    load_ids = grid.load.index[grid.load["bus"] == "11"]
    _, new_prof = _run(mv, {"kind": "battery", "kwh": 500.0, "kw": 100.0, "placement": "buses", "buses": ["11"],
                            "rule": "peak_shaving", "threshold_pct": 90})  # fmt: skip
    sgen_ids = grid.sgen.index[grid.sgen["bus"] == "11"]
    net = profiles["load_p_mw"].sel(load=load_ids).sum("load") - profiles["sgen_p_mw"].sel(sgen=sgen_ids).sum("sgen")
    after = net + new_prof["storage_p_mw"].sel(storage="battery/11")
    assert float(after.max()) < float(net.max()) - 0.01
    assert float(after.max()) >= 0.9 * float(net.max()) - 1e-9


@pytest.fixture(scope="module")
def case9() -> tuple[twin.Grid, xr.Dataset]:
    grid = twin.load("case9")
    rng = np.random.default_rng(0)
    time = pd.date_range("2016-01-01", periods=40, freq="1h")
    ids = grid.load.index.to_numpy()
    p = grid.load["p_mw"].to_numpy() * rng.uniform(0.3, 1.6, (40, len(ids)))
    load_p = xr.DataArray(p, dims=("time", "load"), coords={"time": time, "load": ids})
    return grid, xr.Dataset({"load_p_mw": load_p, "load_q_mvar": load_p * 0.3})


def test_evaluate_matches_a_direct_power_flow(case9) -> None:
    grid, profiles = case9
    grid = grid.copy()
    grid.tables["line"]["max_i_ka"] *= 0.5  # stressed, so that some steps exceed 100 %
    stats = evaluate(grid, profiles)
    ref = run_pf_timeseries(grid, profiles["load_p_mw"], profiles["load_q_mvar"])
    loading = ref["loading_pct"].to_numpy()
    np.testing.assert_allclose(stats["max_loading_pct"], loading.max(axis=0))
    np.testing.assert_allclose(stats["hours_over_limit"], (loading > 100).sum(axis=0) * 1.0)
    assert stats["hours_over_limit"].sum() > 0  # the case is stressed enough to test the count
    np.testing.assert_allclose(stats["min_vm_pu"], ref["vm_pu"].min("time"))
    np.testing.assert_allclose(stats["max_vm_pu"], ref["vm_pu"].max("time"))
    curve = -np.sort(-loading, axis=0)  # descending duration curve, 40 steps
    np.testing.assert_allclose(stats["loading_duration_pct"].sel(percentile=0), curve[0])
    np.testing.assert_allclose(stats["loading_duration_pct"].sel(percentile=100), curve[-1])
    share_over = (loading >= stats["loading_duration_pct"].sel(percentile=25).to_numpy()).mean(axis=0)
    assert np.all(np.abs(share_over - 0.25) <= 1 / 40 + 1e-9)
    assert stats["percentile"].to_numpy().tolist() == PERCENTILES.tolist()
    assert stats["branch_kind"].to_numpy().tolist() == ref["branch_kind"].to_numpy().astype(str).tolist()
    assert float(stats["converged_share"]) == 1.0
    assert np.isnan(float(stats["energy_not_served_mwh"]))
    assert stats.attrs["steps"] == 40
    assert stats.attrs["step_h"] == 1.0


def test_energy_not_served_comes_from_shedding(case9) -> None:
    grid, profiles = case9
    assert float(evaluate(grid, profiles, shed=True)["energy_not_served_mwh"]) == 0.0  # no overload: nothing shed
    stressed = grid.copy()
    stressed.tables["line"]["max_i_ka"] *= 0.5
    ens = float(evaluate(stressed, profiles, shed=True)["energy_not_served_mwh"])
    total_mwh = float(profiles["load_p_mw"].sum())  # 1-hour steps
    assert 0.0 < ens < 0.5 * total_mwh


def test_run_scenario_is_load_apply_evaluate(mv) -> None:
    grid, profiles = mv
    assert profiles.sizes["time"] == 96 * 7
    assert str(profiles["time"][-1].values).startswith("2016-01-07T23:45")
    scenario = Scenario(name="grow", modifications=[{"kind": "load_growth", "percent": 30}])
    stats = run_scenario(scenario, WEEK)
    assert load_base(WEEK)[0] is grid  # the base is cached, not re-read
    direct = evaluate(*apply(scenario, grid, profiles))
    xr.testing.assert_allclose(stats, direct)
    assert stats.attrs["scenario"] == "grow"
    today = evaluate(grid, profiles)
    trafos = stats["branch_kind"] == "trafo"
    assert bool((stats["max_loading_pct"][trafos] > today["max_loading_pct"][trafos]).all())
    assert float(stats["max_loading_pct"].max()) > float(today["max_loading_pct"].max())
