"""Tests for twin.forecast and twin.forecast_pv: features, naive, quantile-GBT and PV forecasts, scores, backtest."""

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
from twin.forecast_pv import PVForecast, compute_clearsky_ghi
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
    week = SeasonalNaive("7D", error_days=0).predict(profiles, start, horizon="24h")
    np.testing.assert_array_equal(
        week.isel(quantile=0).values, profiles.sel(time=slice("2016-01-15", "2016-01-15 23:45"))
    )


def test_seasonal_naive_bands_are_past_error_quantiles(profiles: xr.DataArray) -> None:
    start = pd.Timestamp("2016-01-22")
    day = SeasonalNaive("1D", error_days=14).predict(profiles, start, horizon="48h")
    past = profiles.sel(time=slice("2016-01-07 23:45", "2016-01-21 23:45"))
    for lag, hours in ((1, slice(0, 96)), (2, slice(96, 192))):
        before = profiles.reindex(time=past["time"].values - np.timedelta64(lag, "D")).values
        err = past.values - before
        for i, q in ((0, 0.1), (2, 0.9)):
            expected = day.isel(quantile=1, time=hours).values + np.nanquantile(err, q, axis=0)
            np.testing.assert_allclose(day.isel(quantile=i, time=hours).values, expected)
    assert (day.isel(quantile=2) - day.isel(quantile=0)).mean() > 0
    # Two-day-old values are worse than yesterday's: day 2's band is wider.
    width = (day.isel(quantile=2) - day.isel(quantile=0)).values
    assert width[96:].mean() > width[:96].mean()


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
    # Measured (sklearn 1.9.1, calib_days=7): nMAE 0.212 vs 0.249 day-naive and 0.264 week-naive.
    assert s["model"]["nmae"] < s["naive_7D"]["nmae"]
    assert 0.4 < s["model"]["coverage_p10_p90"] < 1.0
    assert 0.5 < s["naive_1D"]["coverage_p10_p90"] < 1.0  # the naive bands are real bands now
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


def test_conformal_calibration_shifts_outer_quantiles(profiles: xr.DataArray) -> None:
    train = profiles.sel(time=slice(None, "2016-01-21"))
    plain = QuantileGBT(max_iter=30, calib_days=0).fit(train)
    calib = QuantileGBT(max_iter=30, calib_days=7).fit(train)
    np.testing.assert_array_equal(plain.offsets_, 0.0)
    assert calib.offsets_[1] == 0.0  # the median is left alone
    # Held-out P10/P90 errors are wider than in-sample: the band widens.
    assert calib.offsets_[0] < 0 < calib.offsets_[2]
    a, b = plain.predict(profiles, "2016-01-22", "24h"), calib.predict(profiles, "2016-01-22", "24h")
    xr.testing.assert_equal(a.sel(quantile=0.5), b.sel(quantile=0.5))  # same models on the full window
    assert ((b.sel(quantile=0.9) - b.sel(quantile=0.1)) >= (a.sel(quantile=0.9) - a.sel(quantile=0.1)) - 1e-12).all()
    # Calibration: a share ~q of the held-out actuals lies below the shifted quantile (in-sample check by refit).
    check = QuantileGBT(max_iter=30, calib_days=7)
    x, y, t, w = check._rows(train.transpose("time", "load"), None, np.ones(train.sizes["load"]))
    held = t >= np.datetime64("2016-01-15")
    models = check._fit_models(x[~held], y[~held], w[~held])
    for q, off, m in zip(check.quantiles, calib.offsets_, models, strict=True):
        if q != 0.5:
            assert np.mean(y[held] <= m.predict(x[held]) + off) == pytest.approx(q, abs=0.02)
    with pytest.raises(ForecastError, match="calib_days"):
        QuantileGBT(calib_days=14).fit(train)


@pytest.fixture(scope="module")
def pv() -> xr.DataArray:
    """Summer PV profiles (MW) of SimBench LV rural 1, scenario 2 (8 static generators)."""
    sgen = read_simbench_profiles("1-LV-rural1--2-sw")["sgen_p_mw"]
    return sgen.sel(time=slice("2016-05-24", "2016-06-14 23:45"))


def test_clearsky_ghi_is_daylight_only() -> None:
    ghi = compute_clearsky_ghi(pd.date_range("2016-06-21", periods=96, freq="15min"), 51.0, 10.0)
    assert ghi.attrs["units"] == "W/m2"
    assert (ghi.values[:12] == 0).all()  # 00:00-03:00 UTC is night
    noon = pd.Timestamp(ghi["time"].values[int(np.argmax(ghi.values))])
    assert pd.Timestamp("2016-06-21 10:45") <= noon <= pd.Timestamp("2016-06-21 11:45")  # solar noon ~11:20 UTC
    assert 700 < float(ghi.max()) < 1000


def test_pv_forecast_beats_day_naive_in_daylight(pv: xr.DataArray) -> None:
    fcs, naive = [], []
    for day in range(7):
        issue = pd.Timestamp("2016-06-01") + pd.Timedelta(days=day)
        fcs.append(PVForecast().fit(pv).predict(pv, issue, "24h"))
        naive.append(SeasonalNaive("1D").predict(pv.rename(sgen="load"), issue, "24h"))
    fc = xr.concat(fcs, "time")
    assert fc.dims == ("quantile", "time", "sgen")
    assert fc.sizes == {"quantile": 3, "time": 96 * 7, "sgen": 8}
    assert (fc.diff("quantile") >= 0).all()
    lit = fc["time"][(compute_clearsky_ghi(pd.DatetimeIndex(fc["time"].values)) > 20).values]
    actual = pv.sel(time=lit).rename(sgen="load")
    s_pv = scores(fc.sel(time=lit).rename(sgen="load"), actual)
    s_naive = scores(xr.concat(naive, "time").sel(time=lit), actual)
    # Measured: nMAE 0.35 vs 0.49 day-naive, P10-P90 coverage 0.80 (June 2016).
    assert s_pv["nmae"] < s_naive["nmae"]
    assert 0.6 < s_pv["coverage_p10_p90"] < 0.95
    assert (fc.sel(time=fc["time"][:12]) == 0).all()  # night


def test_pv_forecast_no_look_ahead_and_inputs(pv: xr.DataArray) -> None:
    model, issue = PVForecast(), pd.Timestamp("2016-06-01")
    base = model.predict(pv, issue, "24h")
    changed = pv.where(pv["time"] < np.datetime64(issue), 99.0)
    xr.testing.assert_identical(model.predict(changed, issue, "24h"), base)
    # A user's irradiance replaces clear sky: half the irradiance at the targets halves the forecast.
    time = pd.DatetimeIndex(pv["time"].values)
    ghi = compute_clearsky_ghi(time)
    dim = ghi.where(ghi["time"] < np.datetime64(issue), ghi * 0.5)
    np.testing.assert_allclose(model.predict(pv, issue, "24h", irradiance=dim).values, base.values * 0.5)
    # Hot modules produce less.
    hot = xr.DataArray(np.full(time.size, 40.0), dims="time", coords={"time": time})
    cold = hot.where(hot["time"] < np.datetime64(issue), 0.0)
    assert (model.predict(pv, issue, "24h", irradiance=ghi, temperature=cold) >= base - 1e-12).all()
    assert (model.predict(pv, issue, "24h", irradiance=ghi, temperature=cold).sum() > base.sum()).item()
    with pytest.raises(ForecastError, match="irradiance has no value at 2016-06-01 00:00"):
        model.predict(pv, issue, "24h", irradiance=ghi.sel(time=slice(None, "2016-05-31")))
    with pytest.raises(ForecastError, match=r"dims \(time, sgen\)"):
        model.predict(pv.rename(sgen="load"), issue)
    with pytest.raises(ForecastError, match="no value in daylight"):
        model.predict(pv * np.nan, issue)
    dark = pv.copy()
    dark[:, 3] = np.nan  # one generator without data: named by its id
    with pytest.raises(ForecastError, match=f"sgen '{pv['sgen'].values[3]}' has no value in daylight"):
        model.predict(dark, issue)
