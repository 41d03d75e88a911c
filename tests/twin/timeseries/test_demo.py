"""Tests of the embedded demo data (twin/timeseries/demo.py): energy balance, injected defects, files, streaming."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from twin.timeseries import demo

LV = "1-LV-rural1--0-sw"  # one MV/LV transformer, 13 loads: quick
KWH_PER_MW_STEP = 250.0  # 1 MW over 15 min


@pytest.fixture(scope="module")
def rural() -> demo.DemoData:
    return demo.synthesise(days=3, seed=1)


@pytest.fixture(scope="module")
def rural_clean() -> demo.DemoData:
    return demo.synthesise(days=3, seed=1, defects=None)


def _span_kwh(readings: pd.DataFrame) -> pd.Series:
    """Last minus first register per device (first copy of duplicated rows)."""
    r = readings.drop_duplicates(["device", "time"], keep="first")
    g = r.groupby("device", sort=False)["value"]
    return g.last() - g.first()


def _rows(readings: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(readings[["device", "time"]])


# -- formats ----------------------------------------------------------------------------------------------------------
def test_default_grid_has_many_metered_transformers(rural: demo.DemoData) -> None:
    sensors = rural.sensors["device"].unique()
    assert len(sensors) == 90
    assert set(sensors) <= set(rural.grid.trafo.index)
    assert (rural.grid.trafo.loc[sensors, "vn_lv_kv"] == 0.4).all()
    assert len(rural.meters) > 10_000
    assert (rural.meters["trafo"] != "").mean() > 0.99  # all LV meters; the few MV loads have no single trafo


def test_meters_table_format(rural: demo.DemoData) -> None:
    m = rural.meters
    assert m.index.name == "meter"
    assert list(m.columns) == ["customer", "load", "bus", "trafo", "interval_min", "parameters"]
    assert m.index.is_unique
    assert m["customer"].is_unique
    assert m["customer"].str.fullmatch(r"C\d{5}").all()
    assert (m["bus"] == rural.grid.load.loc[m["load"], "bus"].to_numpy()).all()
    assert set(m["trafo"]) - {""} <= set(rural.grid.trafo.index)
    assert (m["interval_min"] == 15).all()
    assert (m["parameters"] == "A+").all()
    per_load = m.groupby("load").size()
    assert per_load.between(1, 4).all()
    assert len(per_load) == len(rural.grid.load)
    assert per_load.nunique() == 4


def test_readings_format(rural: demo.DemoData) -> None:
    r = rural.readings
    assert list(r.columns) == ["device", "parameter", "time", "value"]
    assert r["device"].dtype == object
    assert r["parameter"].dtype == object
    assert r["time"].dtype == "datetime64[ns]"
    assert r["value"].dtype == np.float64
    assert (r["parameter"] == "A+").all()
    assert np.allclose(r["value"] * 1000, np.round(r["value"] * 1000), atol=1e-6)  # 3 decimals
    order = pd.MultiIndex.from_arrays([pd.Categorical(r["device"], rural.meters.index), r["time"]])
    assert order.is_monotonic_increasing
    assert r["time"].min() == pd.Timestamp("2016-01-04")
    assert r["time"].max() == pd.Timestamp("2016-01-07")
    s = rural.sensors
    assert list(s.columns) == ["device", "parameter", "time", "value"]
    assert set(s["parameter"]) == {"p_kw", "q_kvar"}
    assert s["time"].min() == pd.Timestamp("2016-01-04 00:15")  # interval-ending labels


# -- energy balance -------------------------------------------------------------------------------------------------
def test_meters_sum_to_load_profile(rural_clean: demo.DemoData) -> None:
    span = _span_kwh(rural_clean.readings)
    per_load = span.groupby(rural_clean.meters.loc[span.index, "load"].to_numpy()).sum()
    true = rural_clean.load_p_mw.sum("time").to_series() * KWH_PER_MW_STEP
    n_meters = rural_clean.meters.groupby("load").size()
    assert set(per_load.index) == set(true.index)
    assert (np.abs(per_load - true[per_load.index]) <= 0.001 * n_meters[per_load.index] + 1e-6).all()
    counts = rural_clean.readings.groupby("device").size()
    assert (counts == 3 * 96 + 1).all()


def test_meters_differ_within_a_load(rural_clean: demo.DemoData) -> None:
    r = rural_clean.readings
    load = rural_clean.meters["load"].value_counts().index[0]  # a load with 4 meters
    wide = r[r["device"].isin(rural_clean.meters.index[rural_clean.meters["load"] == load])].pivot(
        index="time", columns="device", values="value"
    )
    shares = wide.diff().iloc[1:]
    shares = shares.div(shares.sum(axis=1), axis=0)
    assert shares.std().min() > 0.01  # each meter's share of the load varies over time
    assert wide.iloc[0].nunique() == 4  # different start registers


def test_defective_meters_elsewhere_still_sum_to_loads(rural: demo.DemoData) -> None:
    span = _span_kwh(rural.readings)
    load_of = rural.meters["load"]
    bad_loads = set(load_of[list(rural.defective_meters)])
    ok = span[~load_of[span.index].isin(bad_loads).to_numpy()]
    per_load = ok.groupby(load_of[ok.index].to_numpy()).sum()
    true = rural.load_p_mw.sum("time").to_series()[per_load.index] * KWH_PER_MW_STEP
    assert len(per_load) == len(rural.grid.load) - len(bad_loads)
    assert np.abs(per_load - true).max() < 0.005


def test_transformer_metering_is_meters_plus_losses_or_ntl(rural_clean: demo.DemoData) -> None:
    d = rural_clean
    p = d.sensors[d.sensors["parameter"] == "p_kw"]
    sensor_kwh = p.groupby("device")["value"].sum() * 0.25
    meter_kwh = _span_kwh(d.readings).groupby(d.meters["trafo"]).sum()[sensor_kwh.index]
    rel = (sensor_kwh - meter_kwh) / meter_kwh
    ntl = d.truth["ntl"].set_index("trafo")
    assert len(ntl) == 2
    normal = rel.drop(ntl.index)
    noise = 0.005 / np.sqrt(3 * 96)  # relative noise of a 3-day energy sum
    assert (normal > -3 * noise).all()
    assert normal.median() > 0.0005
    assert normal.max() < 0.02  # ... and small
    assert np.abs(rel[ntl.index] - ntl["share_pct"] / 100).max() < 0.01
    assert np.allclose(ntl["energy_kwh"], ntl["share_pct"] / 100 * meter_kwh[ntl.index], rtol=1e-6)
    assert not d.grid.load.index.str.startswith("ntl").any()


def test_transformer_metering_follows_the_load_step_by_step(rural_clean: demo.DemoData) -> None:
    d = rural_clean
    p = d.sensors[d.sensors["parameter"] == "p_kw"].pivot(index="time", columns="device", values="value")
    trafo = d.meters.drop_duplicates("load").set_index("load")["trafo"]
    load_kw = d.load_p_mw.to_pandas().T.groupby(trafo).sum().T * 1000
    sensors = p.columns.drop(d.truth["ntl"]["trafo"])
    rel = (p[sensors] - load_kw[sensors]) / load_kw[sensors]
    assert rel.index.equals(load_kw.index)
    assert rel.abs().max().max() < 0.05
    assert 0.003 < rel.stack().std() < 0.007  # ~0.5 % metering noise


# -- injected defects -------------------------------------------------------------------------------------------------
def test_missing_rows_are_the_listed_gaps_and_dead_periods(rural: demo.DemoData, rural_clean: demo.DemoData) -> None:
    missing = _rows(rural_clean.readings).difference(_rows(rural.readings))
    listed = []
    gaps = rural.truth["gaps"]
    dead = rural.truth["broken"].query("kind == 'dead'")
    for meter, start, end in zip(
        [*gaps["meter"], *dead["meter"]], [*gaps["start"], *dead["start"]], [*gaps["end"], *dead["end"]], strict=True
    ):
        listed += [(meter, t) for t in pd.date_range(start, end, freq="15min")]
    assert len(listed) == len(set(listed))
    assert set(missing) == set(listed)
    assert (
        gaps["missing"] == [len(pd.date_range(s, e, freq="15min")) for s, e in zip(gaps.start, gaps.end, strict=True)]
    ).all()
    assert len(gaps) == round(0.02 * len(rural.meters))
    assert gaps["missing"].between(1, 8).all()
    extra = _rows(rural.readings).difference(_rows(rural_clean.readings))
    assert len(extra) == 0


def test_duplicates_are_listed(rural: demo.DemoData) -> None:
    r = rural.readings
    dup = r[r.duplicated(["device", "time"], keep="first")]
    truth = rural.truth["duplicates"]
    assert len(dup) == len(truth) == 6
    assert list(zip(dup["device"], dup["time"], strict=True)) == list(zip(truth["meter"], truth["time"], strict=True))
    assert np.array_equal(dup["value"].to_numpy(), truth["value"].to_numpy())
    first = r.drop_duplicates(["device", "time"]).set_index(["device", "time"])["value"]
    orig = first[list(zip(truth["meter"], truth["time"], strict=True))].to_numpy()
    same = np.isclose(orig, truth["value"].to_numpy(), atol=1e-9)
    assert list(same) == [kind == "exact" for kind in truth["kind"]]
    assert not set(truth["meter"]) & rural.defective_meters


def test_resets_and_stuck_registers_are_listed(rural: demo.DemoData, rural_clean: demo.DemoData) -> None:
    key = ["device", "time"]
    bad = rural.readings.drop_duplicates(key).set_index(key)["value"]
    good = rural_clean.readings.set_index(key)["value"]
    diff = (bad - good.reindex(bad.index)).round(3)
    changed = set(diff[diff != 0].index.get_level_values("device"))
    stuck = rural.truth["broken"].query("kind == 'stuck'")
    resets = rural.truth["resets"]
    assert changed == set(resets["meter"]) | set(stuck["meter"])
    assert sorted(resets["kind"]) == ["exchange", "exchange", "reset", "reset", "reset", "rollover"]
    for meter, t, kind, jump in resets.itertuples(index=False):
        d = diff.xs(meter)
        before, after = bad.xs(meter)[bad.xs(meter).index < t], bad.xs(meter)[bad.xs(meter).index >= t]
        assert after.iloc[0] < before.iloc[-1]  # the register goes back at the listed time
        assert after.diff().min() >= 0
        assert before.diff().min() >= 0
        if kind == "rollover":
            assert jump == -demo.ROLLOVER_KWH
            assert before.max() < demo.ROLLOVER_KWH <= before.iloc[-1] + 1.0
        else:
            assert (d[d.index < t] == 0).all()
            assert np.allclose(d[d.index >= t], jump, atol=1e-3)  # registers carry 3 decimals (Wh resolution)
            assert after.iloc[0] < (2.0 if kind == "reset" else 32.0)  # restarts from 0 / a new meter's reading
    for meter, _, start, end in stuck.itertuples(index=False):
        v = bad.xs(meter)
        assert v[start:end].nunique() == 1
        assert v[start:end].iloc[0] == v[v.index < start].iloc[-1]
        assert end == v.index.max()


def test_clean_meters_are_monotonic(rural: demo.DemoData) -> None:
    r = rural.readings.drop_duplicates(["device", "time"])
    ok = r[~r["device"].isin(set(rural.truth["resets"]["meter"]))]
    step = ok.groupby("device")["value"].diff()
    assert step.min() >= 0
    assert ok["value"].min() > 0
    assert ok.groupby("device")["value"].first().median() > 1000  # registers of aged meters, not from zero


# -- files ------------------------------------------------------------------------------------------------------------
def _read_italian_csv(path) -> pd.DataFrame:
    raw = pd.read_csv(path, decimal=",", dtype={"Dispositivo": str, "Parametro": str, "Data": str})
    local = pd.to_datetime(raw["Data"], format="%H:%M:%S %d/%m/%Y")
    # in the repeated hour after the autumn change, rows after a step back in local time are standard time
    back = local.groupby(raw["Dispositivo"]).diff() < pd.Timedelta("-30min")
    dst = ~back.groupby(raw["Dispositivo"]).cummax()
    utc = local.dt.tz_localize(demo.TZ_FILES, ambiguous=dst.to_numpy()).dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.DataFrame(
        {"device": raw["Dispositivo"], "parameter": raw["Parametro"], "time": utc, "value": raw["Valore"]}
    )


def _check_same(parsed: pd.DataFrame, readings: pd.DataFrame, jitter_s: int) -> None:
    assert len(parsed) == len(readings)
    assert (parsed["device"].to_numpy() == readings["device"].to_numpy()).all()
    assert (parsed["parameter"].to_numpy() == readings["parameter"].to_numpy()).all()
    assert np.array_equal(parsed["value"].to_numpy(), readings["value"].to_numpy())
    late = (parsed["time"] - readings["time"].to_numpy()).dt.total_seconds()
    assert late.between(0, jitter_s - 1).all()
    assert late.nunique() == jitter_s


def test_files_parse_back(tmp_path) -> None:
    d = demo.synthesise(LV, days=2, seed=5)
    paths = demo.write_demo_files(d, tmp_path / "out")
    assert set(paths) == {"readings", "sensors", "meters"}
    text = paths["readings"].read_text()
    assert text.startswith("Dispositivo,Parametro,Data,Valore\nM000001,A+,01:00:0")  # 00:00 UTC is 01:00 in Rome
    assert re.search(r'^M\d{6},A\+,\d\d:\d\d:\d\d \d\d/\d\d/2016,"\d+,\d{3}0"$', text.splitlines()[5])
    _check_same(_read_italian_csv(paths["readings"]), d.readings, 10)
    lines = paths["sensors"].read_text().splitlines()
    pat = re.compile(r"trafo,sensor=(\S+) p_kw=(\S+),q_kvar=(\S+) (\d+)")
    rows = [pat.fullmatch(x).groups() for x in lines]
    lp = pd.DataFrame(rows, columns=["device", "p_kw", "q_kvar", "ns"])
    wide = d.sensors.pivot(index=["device", "time"], columns="parameter", values="value").reset_index()
    assert (lp["device"] == wide["device"]).all()
    assert (pd.to_datetime(lp["ns"].astype(np.int64)) == wide["time"]).all()
    assert np.array_equal(lp["p_kw"].astype(float), wide["p_kw"])
    assert np.array_equal(lp["q_kvar"].astype(float), wide["q_kvar"])
    meters = pd.read_csv(paths["meters"], index_col="meter", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(meters, d.meters.astype(str))


def test_files_parse_back_across_the_autumn_clock_change(tmp_path) -> None:
    d = demo.synthesise(LV, start="2016-10-29", days=2, seed=2, defects=None)
    path = demo.write_readings_csv(d.readings, tmp_path / "r.csv", jitter_s=7, seed=3)
    parsed = _read_italian_csv(path)
    _check_same(parsed, d.readings, 7)
    local = pd.read_csv(path, dtype=str)["Data"].iloc[: 2 * 96 + 1]  # the first meter
    repeated = local.str.startswith("02:15") & local.str.endswith("30/10/2016")
    assert repeated.sum() == 2  # the hour after the clock change is written twice
    assert local.str.endswith("30/10/2016").sum() == 25 * 4  # the local day of the change has 25 hours


def test_write_rejects_what_a_csv_cannot_hold(tmp_path) -> None:
    r = pd.DataFrame({"device": ["a,b"], "parameter": ["A+"], "time": [pd.Timestamp("2020-01-01")], "value": [1.0]})
    with pytest.raises(ValueError, match="'a,b' contains a comma"):
        demo.write_readings_csv(r, tmp_path / "x.csv")
    with pytest.raises(ValueError, match="finite"):
        demo.write_readings_csv(r.assign(device="a", value=np.nan), tmp_path / "x.csv")
    neg = demo.write_readings_csv(r.assign(device="a", value=-12.5), tmp_path / "y.csv", jitter_s=0)
    assert neg.read_text().splitlines()[1] == 'a,A+,01:00:00 01/01/2020,"-12,5000"'


# -- options and errors -----------------------------------------------------------------------------------------------
def test_same_seed_same_data() -> None:
    a, b = demo.synthesise(LV, days=1, seed=7), demo.synthesise(LV, days=1, seed=7)
    pd.testing.assert_frame_equal(a.readings, b.readings)
    pd.testing.assert_frame_equal(a.sensors, b.sensors)
    for key in a.truth:
        pd.testing.assert_frame_equal(a.truth[key], b.truth[key])
    c = demo.synthesise(LV, days=1, seed=8)
    assert not a.readings["value"].equals(c.readings["value"])


def test_hourly_readings() -> None:
    d = demo.synthesise(LV, days=2, freq="1h", defects=None, ntl_trafos=0)
    assert (d.meters["interval_min"] == 60).all()
    assert (d.readings.groupby("device").size() == 49).all()
    assert d.truth["ntl"].empty
    assert d.load_p_mw.sizes["time"] == 48
    per_load = _span_kwh(d.readings).groupby(d.meters["load"]).sum()
    true = d.load_p_mw.sum("time").to_series() * 1000.0  # 1 MW over 1 h
    assert np.abs(per_load - true[per_load.index]).max() < 0.005
    s = d.sensors[d.sensors["parameter"] == "p_kw"]["value"].sum()
    assert 0 < s - true.sum() < 0.05 * true.sum()  # one transformer: its load plus losses


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"freq": "10min"}, "multiple of 15 minutes"),
        ({"start": "2016-01-04 00:05"}, "not on the 15-minute grid"),
        ({"households": (0, 2)}, "households"),
        ({"days": 0}, "at least one day"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        demo.synthesise(LV, **kwargs)


def test_unknown_code() -> None:
    with pytest.raises(ValueError, match="collect_all_simbench_codes"):
        demo.synthesise("1-LV-nowhere--0-sw")


def test_supplying_trafos_follows_switches(rural: demo.DemoData) -> None:
    grid = demo.synthesise(LV, days=1, defects=None).grid
    of, meterable = demo.supplying_trafos(grid)
    assert (of == "trafo/0").all()
    assert list(meterable) == ["trafo/0"]
    sw = grid.switch
    sw.loc[sw.index[(sw["et"] == "t").to_numpy()][0], "closed"] = False
    of, meterable = demo.supplying_trafos(grid)
    assert (of == "").all()
    assert meterable.empty
    of, meterable = demo.supplying_trafos(rural.grid)
    mv = rural.grid.bus.loc[rural.grid.load["bus"], "vn_kv"].to_numpy() > 1
    assert (of[mv] == "").all()
    assert (of[~mv] != "").all()
    assert len(meterable) == 90
    assert not meterable.isin(["trafo/90", "trafo/91"]).any()


# -- streaming --------------------------------------------------------------------------------------------------------
def test_synthetic_meters() -> None:
    m = demo.synthetic_meters(1000, seed=1)
    assert list(m.columns) == ["customer", "load", "bus", "trafo", "interval_min", "parameters"]
    assert m.index.is_unique
    assert m["customer"].is_unique
    assert m["trafo"].nunique() == 8
    assert m["trafo"].is_monotonic_increasing
    with pytest.raises(ValueError, match="trafos"):
        demo.synthetic_meters(3, trafos=4)


def test_iter_readings_batches() -> None:
    meters = demo.synthetic_meters(50, trafos=3)
    batches = list(demo.iter_readings(meters, start="2024-03-01", days=3, batch_days=2, seed=4))
    assert [len(b) for b in batches] == [50 * 192, 50 * 96]
    r = pd.concat(batches, ignore_index=True)
    assert list(r.columns) == ["device", "parameter", "time", "value"]
    assert r["time"].dtype == "datetime64[ns]"
    assert r["device"].dtype == object
    assert r["time"].is_monotonic_increasing
    assert (r["device"].iloc[:50] == meters.index).all()
    assert r["time"].max() == pd.Timestamp("2024-03-03 23:45")
    assert (r.groupby("device")["value"].diff().dropna() > 0).all()
    assert np.allclose(r["value"] * 1000, np.round(r["value"] * 1000), atol=1e-6)
    daily = r.groupby("device")["value"].agg(lambda v: v.iloc[-1] - v.iloc[0]) / (3 - 1 / 96)
    assert daily.between(1, 40).all()  # kWh a day of a household


def test_iter_readings_deterministic_and_independent_of_batches() -> None:
    meters = demo.synthetic_meters(30)
    runs = [
        pd.concat(demo.iter_readings(meters, start="2024-01-01", days=4, batch_days=b, seed=s), ignore_index=True)
        for b, s in [(1, 0), (3, 0), (4, 0), (4, 1)]
    ]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    pd.testing.assert_frame_equal(runs[0], runs[2])
    assert not np.allclose(runs[0]["value"], runs[3]["value"])


def test_iter_readings_memory_is_bounded_by_a_batch() -> None:
    meters = demo.synthetic_meters(2000)

    def peak(days: int) -> int:
        tracemalloc.start()
        n = sum(len(b) for b in demo.iter_readings(meters, start="2024-01-01", days=days, batch_days=1))
        assert n == 2000 * 96 * days
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    short, long = peak(2), peak(8)
    assert long < 1.2 * short
    assert short < 2000 * 96 * 150  # < 150 bytes per value of a batch (the batch itself: 32)
