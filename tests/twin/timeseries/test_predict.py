"""``gridtwin predict`` over a store: forecasts, batched PF on the members, ranking, drivers, groups written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import twin
from twin.cli import main
from twin.timeseries.powerflow import write_profiles
from twin.timeseries.store import Store

CODE = "1-LV-rural1--2-sw"


def _june_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Store]:
    """A store with 30 days up to 2016-06-29 00:00; the next two (sunny) days overload the transformer at noon."""
    monkeypatch.setenv("GRIDTWIN_SECRET", "predict-test")
    path = tmp_path / "s.zarr"
    store = Store.create(path, origin="2016-01-01")
    write_profiles(store, twin.read_simbench_profiles(CODE).isel(time=slice(96 * 150, 96 * 180)))
    return path, store


def test_predict_finds_the_pv_overload_ahead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, store = _june_store(tmp_path, monkeypatch)
    assert main(["predict", str(path), "--grid", CODE, "--train-days", "21", "--json"]) == 0
    ranking = json.loads(capsys.readouterr().out)
    assert ranking[0]["branch"] == "trafo/0"
    first = ranking[0]["first_exceed"]
    assert first.startswith("2016-06-29T")
    assert "08:00" <= first[11:16] <= "14:00"
    forecasts, overload = store.dataset("forecasts"), store.dataset("overload")
    assert forecasts["load_p_mw"].sizes == {"quantile": 3, "time": 192, "load": 28}
    # members = load quantile × PV quantile (weights 0.3/0.4/0.3 each): on these sunny days every member with median
    # or high PV overloads the transformer (p = 0.4 + 0.3), the low-PV ones need not (measured: exactly 0.7)
    assert float(overload["p_exceed"].sel(branch="trafo/0").max()) >= 0.7 - 1e-12


def test_predict_with_weather_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    from scenarios import synthesize_temperature
    from twin.forecast_pv import compute_clearsky_ghi

    path, store = _june_store(tmp_path, monkeypatch)
    times = pd.date_range("2016-05-01", "2016-07-02", freq="15min")
    ghi = compute_clearsky_ghi(times).values
    cloudy = ghi * np.where(times >= "2016-06-29", 0.3, 1.0)  # history as clear sky, a dull forecast ahead
    weather = pd.DataFrame(
        {"time": times, "temperature_degc": synthesize_temperature(times).values, "ghi_w_m2": cloudy}
    )
    weather.to_csv(tmp_path / "w.csv", index=False)
    argv = ["predict", str(path), "--grid", CODE, "--train-days", "21", "--horizon", "24h", "--json"]
    assert main([*argv, "--weather", str(tmp_path / "w.csv")]) == 0
    json.loads(capsys.readouterr().out)
    dull = store.dataset("forecasts")["sgen_p_mw"].sel(quantile=0.5).max().item()
    assert main(argv) == 0  # clear-sky reference instead of the dull forecast
    capsys.readouterr()
    clear = store.dataset("forecasts")["sgen_p_mw"].sel(quantile=0.5).max().item()
    # the clear-sky-index model scales with the reference irradiance it is given for the target day
    assert dull < 0.6 * clear
    weather = weather.astype({"temperature_degc": object})
    weather.loc[5, "temperature_degc"] = "warm"
    weather.to_csv(tmp_path / "bad.csv", index=False)
    assert main([*argv, "--weather", str(tmp_path / "bad.csv")]) == 2
    assert "bad.csv:7: temperature_degc is not a number" in capsys.readouterr().err
