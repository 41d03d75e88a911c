"""Overload prediction: forecast members through one batched power flow, risk, ranking and drivers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import solvers
import twin
from twin.overload import _exceed_from_quantiles, drivers, predict_overloads

CODE = "1-LV-rural1--2-sw"  # its transformer overloads for ~600 h a year, driven by PV feed-in
DAYS = slice(96 * 170, 96 * 172)  # two June days


@pytest.fixture(scope="module")
def case() -> tuple[twin.Grid, xr.Dataset]:
    grid = twin.load(CODE)
    prof = twin.read_simbench_profiles(CODE).isel(time=DAYS)
    return grid, prof


def _members(prof: xr.Dataset, factors: list[float], dim: str = "quantile") -> dict[str, xr.DataArray]:
    f = xr.DataArray(factors, dims=dim, coords={dim: [0.1, 0.5, 0.9] if dim == "quantile" else range(len(factors))})
    return {
        "load_p_mw": prof.load_p_mw * xr.ones_like(f),
        "load_q_mvar": prof.load_q_mvar * xr.ones_like(f),
        "sgen_p_mw": prof.sgen_p_mw * f,
        "storage_p_mw": prof.storage_p_mw * xr.ones_like(f),
    }


def test_quantile_members_give_expected_loading_and_first_exceedance(case: tuple[twin.Grid, xr.Dataset]) -> None:
    grid, prof = case
    pred = predict_overloads(grid, _members(prof, [0.8, 1.0, 1.2]))
    direct = solvers.run_pf_timeseries(
        grid, prof.load_p_mw, prof.load_q_mvar, prof.sgen_p_mw, storage_p_mw=prof.storage_p_mw
    )
    # The median member is solved inside a batch of 9 (load × generation quantiles) with other warm starts than the
    # direct run: both meet the solver's 1e-8 MVA mismatch, i.e. ~1e-5 % points of loading on this 0.16 MVA trafo.
    np.testing.assert_allclose(pred.risk["expected_loading_pct"], direct["loading_pct"], atol=1e-4)
    assert pred.risk.sizes["sample"] == 9
    np.testing.assert_allclose(pred.risk["member_weight"].sum(), 1.0)
    trafo = direct["loading_pct"].sel(branch="trafo/0").to_series()
    assert (trafo > 100).any()  # the case really overloads
    # p_exceed >= 0.5 exactly where the P50 member (the actual profile) is above the limit
    p = pred.risk["p_exceed"].sel(branch="trafo/0").to_series()
    assert ((p >= 0.5) == (trafo >= 100)).all()
    row = pred.ranking.loc["trafo/0"]
    assert row["first_exceed"] == trafo.index[(trafo >= 100).to_numpy().argmax()]
    assert row["lead_time"] == row["first_exceed"] - prof.time.to_index()[0]
    assert (
        pred.ranking.index[0] == "trafo/0"
        or pred.ranking.loc[pred.ranking.index[0], "first_exceed"] <= row["first_exceed"]
    )


def test_sample_members_give_the_share_above_the_limit(case: tuple[twin.Grid, xr.Dataset]) -> None:
    grid, prof = case
    pred = predict_overloads(grid, _members(prof, [0.5, 0.9, 1.0, 1.3], dim="sample"))
    loading = pred.risk["loading_pct"].sel(branch="trafo/0")
    np.testing.assert_allclose(pred.risk["p_exceed"].sel(branch="trafo/0"), (loading > 100).mean("sample"))


def test_exceedance_from_quantiles_by_hand() -> None:
    q = np.array([0.1, 0.5, 0.9])
    loading = np.array([[80.0, 101.0, 50.0, 130.0], [90.0, 120.0, 60.0, 140.0], [110.0, 130.0, 70.0, 150.0]])
    got = _exceed_from_quantiles(loading[:, None, :], q, 100.0)[0]
    # 100 between P50 (90) and P90 (110) → F = 0.7; below P10 (101) → certain; above P90 (70) → 0
    np.testing.assert_allclose(got, [0.3, 1.0, 0.0, 1.0])


def test_drivers_are_finite_differences_of_the_loading(case: tuple[twin.Grid, xr.Dataset]) -> None:
    grid, prof = case
    inputs = {
        "load_p_mw": prof.load_p_mw,
        "load_q_mvar": prof.load_q_mvar,
        "sgen_p_mw": prof.sgen_p_mw,
        "storage_p_mw": prof.storage_p_mw,
    }
    direct = solvers.run_pf_timeseries(grid, **inputs)
    at = pd.Timestamp(direct["loading_pct"].sel(branch="trafo/0").idxmax("time").values)
    table = drivers(grid, inputs, "trafo/0", at, top=3)
    assert (table["kind"] == "sgen").all()  # at the PV peak the feed-in drives the overload
    assert (table["score_pct"] > 0).all()
    top = table.index[0]
    one = {k: v.sel(time=[at]) for k, v in inputs.items()}
    one["sgen_p_mw"] = one["sgen_p_mw"] + xr.where(one["sgen_p_mw"]["sgen"] == top, 1e-3, 0.0)
    bumped = solvers.run_pf_timeseries(grid, **one)["loading_pct"].sel(branch="trafo/0").item()
    base = direct["loading_pct"].sel(branch="trafo/0", time=at).item()
    # the loading change of one bumped load, solved on its own, is what the batched differences say (to 1e-6 points;
    # both solves stop at 1e-8 pu mismatch)
    assert table.loc[top, "sensitivity_pct_per_mw"] * 1e-3 == pytest.approx(bumped - base, abs=1e-6)


def test_bad_forecast_is_named() -> None:
    grid = twin.load("case14")
    with pytest.raises(ValueError, match="unknown forecast inputs"):
        predict_overloads(grid, {"load_x": xr.DataArray(np.zeros((1, 1, 1)), dims=("quantile", "time", "load"))})
