"""Tests for twin.forecast: features, naive and quantile-GBT forecasts, save/load, scores, backtest."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from twin.forecast import (
    FORMAT_VERSION,
    ForecastError,
    QuantileGBT,
    SeasonalNaive,
    backtest,
    calendar_features,
    german_holidays,
    scores,
)
from twin.io import read_simbench_profiles

DAYS = 35


@pytest.fixture(scope="module")
def profiles() -> xr.DataArray:
    """Five weeks of 15-minute load profiles (MW) of SimBench LV rural 1 (13 loads)."""
    return read_simbench_profiles("1-LV-rural1--0-sw", steps=96 * DAYS)["load_p_mw"]


@pytest.fixture(scope="module")
def fitted(profiles: xr.DataArray) -> QuantileGBT:
    return QuantileGBT(max_iter=50).fit(profiles.sel(time=slice(None, "2016-01-21")))


def test_calendar_features_and_holidays() -> None:
    hol = german_holidays([2016])
    assert pd.Timestamp("2016-03-25") in hol  # Good Friday 2016
    assert pd.Timestamp("2016-05-16") in hol  # Whit Monday 2016
    assert len(hol) == 9
    times = pd.DatetimeIndex(["2016-01-01 00:00", "2016-01-04 13:45"])
    cal = calendar_features(times)
    np.testing.assert_array_equal(cal["quarter_of_day"], [0, 55])
    np.testing.assert_array_equal(cal["hour"], [0, 13])
    np.testing.assert_array_equal(cal["weekday"], [4, 0])
    np.testing.assert_array_equal(cal["is_holiday"], [1, 0])
    np.testing.assert_array_equal(calendar_features(times, holidays=["2016-01-04"])["is_holiday"], [0, 1])


def test_predict_shapes_and_coords(profiles: xr.DataArray, fitted: QuantileGBT) -> None:
    fc = fitted.predict(profiles, "2016-01-22", horizon="48h")
    assert fc.dims == ("quantile", "time", "load")
    assert fc.sizes == {"quantile": 3, "time": 192, "load": 13}
    assert pd.Timestamp(fc["time"].values[0]) == pd.Timestamp("2016-01-22")
    assert pd.Timestamp(fc["time"].values[-1]) == pd.Timestamp("2016-01-23 23:45")
    np.testing.assert_array_equal(fc["load"].values, profiles["load"].values)
    np.testing.assert_allclose(fc["quantile"].values, [0.1, 0.5, 0.9])
    assert np.isfinite(fc.values).all()
    assert (fc.diff("quantile") >= 0).all()  # quantiles never cross
    assert fc.attrs["units"] == "MW"


def test_seasonal_naive_repeats_last_season(profiles: xr.DataArray) -> None:
    start = pd.Timestamp("2016-01-22")
    day = SeasonalNaive("1D").fit(profiles).predict(profiles, start, horizon="48h")
    yesterday = profiles.sel(time=slice("2016-01-21", "2016-01-21 23:45")).values
    # Both forecast days repeat the last known day (day 2 cannot use day 1, which is after the issue time).
    np.testing.assert_array_equal(day.isel(quantile=1).values, np.concatenate([yesterday, yesterday]))
    np.testing.assert_array_equal(day.isel(quantile=0).values, day.isel(quantile=2).values)
    week = SeasonalNaive("7D").predict(profiles, start, horizon="24h")
    np.testing.assert_array_equal(
        week.isel(quantile=0).values, profiles.sel(time=slice("2016-01-15", "2016-01-15 23:45"))
    )


@pytest.mark.parametrize("model", ["gbt", "naive"])
def test_no_look_ahead(profiles: xr.DataArray, fitted: QuantileGBT, model: str) -> None:
    mdl = fitted if model == "gbt" else SeasonalNaive("1D")
    start = pd.Timestamp("2016-01-25")
    base = mdl.predict(profiles, start, horizon="48h")
    changed = profiles.copy()
    changed.loc[{"time": changed["time"] >= np.datetime64(start)}] = 99.0
    xr.testing.assert_identical(mdl.predict(changed, start, horizon="48h"), base)
    # Changing data before the issue time does change it (the check above can fail).
    earlier = profiles.copy()
    earlier.loc[{"time": slice("2016-01-24", "2016-01-24 23:45")}] = 99.0
    assert not np.allclose(mdl.predict(earlier, start, horizon="48h").values, base.values)


def test_save_load_round_trip(tmp_path, profiles: xr.DataArray, fitted: QuantileGBT) -> None:
    fitted.save(tmp_path / "m.joblib")
    back = QuantileGBT.load(tmp_path / "m.joblib")
    xr.testing.assert_identical(back.predict(profiles, "2016-01-28"), fitted.predict(profiles, "2016-01-28"))
    with pytest.raises(ForecastError, match="QuantileGBT, not a SeasonalNaive"):
        SeasonalNaive.load(tmp_path / "m.joblib")


def test_load_refuses_other_version(tmp_path, fitted: QuantileGBT) -> None:
    path = tmp_path / "old.joblib"
    fitted.save(path)
    data = joblib.load(path)
    joblib.dump({**data, "version": FORMAT_VERSION + 1}, path)
    with pytest.raises(ForecastError, match=f"format version {FORMAT_VERSION + 1}.*refit"):
        QuantileGBT.load(path)
    joblib.dump({**data, "sklearn": "0.0.1"}, path)
    with pytest.raises(ForecastError, match=r"scikit-learn 0\.0\.1"):
        QuantileGBT.load(path)
    joblib.dump({"something": 1}, path)
    with pytest.raises(ForecastError, match="not a gridtwin forecast model"):
        QuantileGBT.load(path)


def test_scores_hand_example() -> None:
    time = pd.date_range("2016-01-01", periods=2, freq="15min")
    actual = xr.DataArray([[1.0, 2.0], [3.0, 2.0]], dims=("time", "load"), coords={"time": time, "load": ["a", "b"]})
    fc = xr.DataArray(
        [[[0.0, 1.0], [2.0, 1.0]], [[2.0, 2.0], [2.0, 3.0]], [[3.0, 3.0], [4.0, 3.0]]],
        dims=("quantile", "time", "load"),
        coords={"quantile": [0.1, 0.5, 0.9], "time": time, "load": ["a", "b"]},
    )
    s = scores(fc, actual)
    # Load a: mean 2, median errors |1-2|, |3-2| -> MAE 1 -> 0.5; load b: mean 2, errors 0, 1 -> MAE 0.5 -> 0.25.
    assert s["nmae"] == pytest.approx((0.5 + 0.25) / 2)
    # q=0.1, load a: errors y-f = 1, 1 -> 0.1 each -> mean 0.1 / 2; load b: 1, 1 -> 0.1 / 2.
    assert s["pinball"][0.1] == pytest.approx(0.05)
    # q=0.9, load a: y-f = -2, -1 -> 0.1*2, 0.1*1 -> 0.15 / 2; load b: -1, -1 -> 0.1 / 2.
    assert s["pinball"][0.9] == pytest.approx((0.075 + 0.05) / 2)
    # Inside [P10, P90]: a: 1 in [0,3], 3 in [2,4]; b: 2 in [1,3], 2 in [1,3] -> all 4.
    assert s["coverage_p10_p90"] == 1.0
    with pytest.raises(ForecastError, match=r"no 0\.5 quantile"):
        scores(fc.sel(quantile=[0.1, 0.9]), actual)
    with pytest.raises(ForecastError, match="load 'a' has mean actual 0"):
        scores(fc, actual.where(actual["load"] != "a", 0.0))


def test_bad_input_errors(profiles: xr.DataArray) -> None:
    with pytest.raises(ForecastError, match="dims"):
        QuantileGBT().fit(profiles.rename(load="meter"))
    with pytest.raises(ForecastError, match="not regular at"):
        QuantileGBT().fit(profiles.drop_isel(time=[5]))
    with pytest.raises(ForecastError, match="shorter than the longest lag"):
        QuantileGBT().fit(profiles.isel(time=slice(0, 96 * 3)))
    with pytest.raises(ForecastError, match="not fitted"):
        QuantileGBT().predict(profiles, "2016-01-22")
    with pytest.raises(ForecastError, match="no history before"):
        SeasonalNaive().predict(profiles, "2015-12-01")


def test_backtest_beats_week_naive(profiles: xr.DataArray) -> None:
    model = QuantileGBT(max_iter=100)
    res = backtest(profiles, model, start="2016-01-22", days=7, train_days=21)
    assert not model.models_  # the caller's model is left unfitted
    assert res["forecast"].sizes == {"quantile": 3, "time": 96 * 7, "load": 13}
    for name in ("naive_1D", "naive_7D"):
        xr.testing.assert_equal(res[name]["time"], res["forecast"]["time"])
    s = res["scores"]
    # Measured (sklearn 1.9.1): nMAE 0.212 vs 0.249 day-naive and 0.264 week-naive; coverage P10-P90 0.70.
    assert s["model"]["nmae"] < s["naive_7D"]["nmae"]
    assert 0.4 < s["model"]["coverage_p10_p90"] < 1.0
    with pytest.raises(ForecastError, match="need 21 days before"):
        backtest(profiles, model, start="2016-01-10", days=7, train_days=21)


def test_temperature_feature(profiles: xr.DataArray) -> None:
    time = profiles["time"]
    # A synthetic temperature (°C) that drives demand: the model must use it when given.
    temp = xr.DataArray(5.0 + 5.0 * np.sin(np.arange(time.size) / 500.0), dims="time", coords={"time": time})
    model = QuantileGBT(max_iter=30).fit(profiles.sel(time=slice(None, "2016-01-21")), temperature=temp)
    fc = model.predict(profiles, "2016-01-22", horizon="24h", temperature=temp)
    assert fc.sizes == {"quantile": 3, "time": 96, "load": 13}
    assert np.isfinite(fc.values).all()
    with pytest.raises(ForecastError, match="fitted with temperature"):
        model.predict(profiles, "2016-01-22", horizon="24h")
    with pytest.raises(ForecastError, match="no value at 2016-01-22 00:00"):
        model.predict(profiles, "2016-01-22", horizon="24h", temperature=temp.sel(time=slice(None, "2016-01-21")))
