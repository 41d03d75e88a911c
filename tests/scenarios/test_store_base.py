"""A scenario base read from a gridtwin store (measured profiles) gives the same results as the SimBench base."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import xarray as xr

import twin
from scenarios.evaluate import load_base, read_store_profiles, run_scenario
from scenarios.spec import Base, Scenario, parse_spec
from twin.timeseries.powerflow import write_profiles
from twin.timeseries.store import Store

if TYPE_CHECKING:
    from pathlib import Path

LV = "1-LV-rural1--0-sw"
START, DAYS = "2016-01-02", 2


@pytest.fixture(scope="module")
def lv_profiles() -> xr.Dataset:
    return twin.read_simbench_profiles(LV, steps=96 * 4)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory, lv_profiles: xr.Dataset) -> str:
    """A store whose input groups hold SimBench's profiles of the first 4 days (loads, sgens, storage)."""
    path = tmp_path_factory.mktemp("base") / "lv.zarr"
    store = Store.create(path, origin="2016-01-01", secret="base-test")
    write_profiles(store, lv_profiles)
    return str(path)


def test_store_base_equals_simbench_base(store_path: str, tmp_path: Path) -> None:
    spec = tmp_path / "what_if.yaml"
    spec.write_text(
        f"base: {{grid: {LV}, start: {START}, days: {DAYS}, store: {store_path}}}\n"
        "scenarios:\n  - name: ev\n    modifications: [{kind: ev, share: 0.5}, {kind: load_growth, percent: 20}]\n"
    )
    from_store = parse_spec(spec.read_text(), str(spec)).base
    from_simbench = Base(grid=LV, start=START, days=DAYS)
    _, prof_s = load_base(from_store)
    _, prof_b = load_base(from_simbench)
    assert prof_s.attrs["source"] == f"store {store_path}"
    assert prof_s.sizes["time"] == 96 * DAYS
    for var in prof_b.data_vars:  # same series, same element order
        xr.testing.assert_allclose(prof_s[var], prof_b[var].reindex_like(prof_s[var]))
    assert set(prof_s.data_vars) == set(prof_b.data_vars)
    scenario = Scenario(name="ev", modifications=[{"kind": "ev", "share": 0.5}, {"kind": "load_growth", "percent": 20}])
    a, b = run_scenario(scenario, from_store), run_scenario(scenario, from_simbench)
    xr.testing.assert_allclose(a, b)
    assert float(a["max_loading_pct"].max()) > 0
    assert a.attrs["ev_sessions_short"] == 0  # 0.5 share, default sessions: every session fits before departure


def test_store_base_errors_name_store_group_and_ids(store_path: str, lv_profiles: xr.Dataset, tmp_path: Path) -> None:
    grid = twin.load(LV)
    t0, t1 = np.datetime64("2016-01-02"), np.datetime64("2016-01-03")
    with pytest.raises(ValueError, match=r"covers 2016-01-01 00:00:00 .. 2016-01-04 23:45:00 .* base period"):
        read_store_profiles(store_path, grid, t0, np.datetime64("2016-01-09"))
    other = grid.copy()
    other.tables["load"] = other.tables["load"].rename(index={"load/0": "meter-0"})
    with pytest.raises(ValueError, match=r"group 'loads' does not match grid") as info:
        read_store_profiles(store_path, other, t0, t1)
    assert "1 store id(s) the grid has no load of, e.g. ['load/0']" in str(info.value)
    assert "1 in-service grid load(s) without a series, e.g. ['meter-0']" in str(info.value)
    empty = tmp_path / "empty.zarr"
    Store.create(empty, origin="2016-01-01", secret="x")
    with pytest.raises(ValueError, match=r"has no 'loads' group .*write_loads"):
        read_store_profiles(str(empty), grid, t0, t1)
    gappy = tmp_path / "gappy.zarr"
    prof = lv_profiles
    dropped = list(prof["load"].to_numpy()[:2])
    prof = prof.drop_sel(load=dropped)
    p = prof["load_p_mw"].copy()
    p[100, 3] = np.nan  # 2016-01-02 01:00
    prof["load_p_mw"] = p
    store = Store.create(gappy, origin="2016-01-01", secret="x")
    write_profiles(store, prof)
    with pytest.raises(ValueError, match=r"2 in-service grid load\(s\) without a series"):
        read_store_profiles(str(gappy), grid, t0, t1)
    grid.tables["load"].loc[dropped, "in_service"] = False  # out-of-service loads need no series
    first = prof["load"].to_numpy()[3]
    with pytest.raises(
        ValueError, match=rf"1 missing value\(s\) in the base period, first load '{first}' at 2016-01-02 01"
    ):
        read_store_profiles(str(gappy), grid, t0, t1)
