"""``gridtwin predict`` over a store: forecasts, batched PF on the members, ranking, drivers, groups written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import twin
from twin.cli import main
from twin.timeseries.powerflow import write_profiles
from twin.timeseries.store import Store

CODE = "1-LV-rural1--2-sw"


def test_predict_finds_the_pv_overload_ahead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDTWIN_SECRET", "predict-test")
    path = tmp_path / "s.zarr"
    store = Store.create(path, origin="2016-01-01")
    # 30 days up to 2016-06-29 00:00; the next two (sunny) days overload the transformer at noon
    profiles = twin.read_simbench_profiles(CODE).isel(time=slice(96 * 150, 96 * 180))
    write_profiles(store, profiles)
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
