"""Tests of scenarios.contingency: N-1 results against full AC power flows of the outaged grids."""

from __future__ import annotations

import warnings

import numpy as np
import pandapower as pp
import pytest
import xarray as xr

import solvers
import twin
from scenarios.contingency import n_minus_1
from scenarios.contingency_model import branch_groups, check_outage, outage_model
from twin.grid import Grid

TOL_MVA = 1e-9


def _outaged(grid: Grid, outage: str) -> Grid:
    g = grid.copy()
    table = outage.split("/", 1)[0]
    g.tables[table].loc[outage, "in_service"] = False
    return g


def _profiles(grid: Grid, shape: list[float]) -> xr.Dataset:
    load = grid.load
    s = np.asarray(shape)[:, None]
    return xr.Dataset(
        {
            "load_p_mw": (("time", "load"), load["p_mw"].to_numpy() * s),
            "load_q_mvar": (("time", "load"), load["q_mvar"].to_numpy() * s),
        },
        coords={"time": np.arange(len(shape)), "load": load.index.to_numpy()},
    )


@pytest.fixture(scope="module")
def case14() -> Grid:
    return twin.load("case14")


@pytest.fixture(scope="module")
def case118() -> Grid:
    return twin.load("case118")


@pytest.mark.parametrize(
    ("case", "outages"),
    [
        ("case14", ["line/0", "line/6", "line/12", "trafo/0", "trafo/2"]),
        ("case118", ["line/0", "line/35", "line/90", "line/150", "trafo/5", "trafo/10"]),
    ],
)
def test_outages_match_full_ac_of_the_outaged_grid(case: str, outages: list[str], request: pytest.FixtureRequest):
    grid = request.getfixturevalue(case)
    ds = n_minus_1(grid, outages=outages, tol_mva=TOL_MVA, keep_loading_steps=[0])
    assert list(ds["outage"].values) == outages
    assert ds["converged"].all()
    for o in outages:
        ref = solvers.run_pf(_outaged(grid, o), tol_mva=TOL_MVA)
        got = ds["loading_pct"].sel(outage=o).isel(sample_time=0)
        np.testing.assert_allclose(got.values, ref["loading_pct"].values, atol=1e-6)
        np.testing.assert_allclose(ds["peak_loading_pct"].sel(outage=o).values, ref["loading_pct"].values, atol=1e-6)
        row = ds.sel(outage=o).isel(time=0)
        assert float(row["min_vm_pu"]) == pytest.approx(float(ref["vm_pu"].min()), abs=1e-6)
        assert float(row["max_vm_pu"]) == pytest.approx(float(ref["vm_pu"].max()), abs=1e-6)
        assert float(row["max_loading_pct"]) == pytest.approx(float(ref["loading_pct"].max()), abs=1e-6)
        assert row["worst_branch"].item() == ref["loading_pct"].idxmax().item()
        assert float(ref["loading_pct"].sel(branch=o)) == 0.0  # the outaged branch carries nothing


def test_outage_model_voltages_match_recompiled_grid(case118: Grid):
    model = solvers.compile_grid(case118)
    for o, branches in branch_groups(model, ["line/10", "line/100", "trafo/3"]).items():
        m_k = outage_model(model, branches, name=o)
        got = solvers.run_pf(m_k, tol_mva=TOL_MVA)
        ref = solvers.run_pf(_outaged(case118, o), tol_mva=TOL_MVA)
        np.testing.assert_allclose(got["vm_pu"].values, ref["vm_pu"].values, atol=1e-8)
        np.testing.assert_allclose(got["va_deg"].values, ref["va_deg"].values, atol=1e-6)
        np.testing.assert_allclose(got["loading_pct"].values, ref["loading_pct"].values, atol=1e-6)
    assert model.ybus.nnz == m_k.ybus.nnz  # same pattern: the removed coupling stays as explicit zeros


def test_time_series_matches_run_pf_timeseries_of_outaged_grid(case14: Grid):
    shape = [0.7, 1.0, 1.3]
    prof = _profiles(case14, shape)
    outages = ["line/1", "line/9", "trafo/1"]
    ds = n_minus_1(case14, prof, outages=outages, tol_mva=TOL_MVA, limit_pct=40.0)
    assert ds.sizes == {"outage": 3, "time": 3, "branch": 20, "islanding": 0}
    for o in outages:
        ref = solvers.run_pf_timeseries(
            _outaged(case14, o), prof["load_p_mw"], prof["load_q_mvar"], tol_mva=TOL_MVA, method="nr"
        )
        loading = ref["loading_pct"].values
        np.testing.assert_allclose(ds["max_loading_pct"].sel(outage=o).values, loading.max(axis=1), atol=1e-6)
        np.testing.assert_allclose(ds["peak_loading_pct"].sel(outage=o).values, loading.max(axis=0), atol=1e-6)
        np.testing.assert_allclose(ds["min_vm_pu"].sel(outage=o).values, ref["vm_pu"].min("bus").values, atol=1e-6)
        np.testing.assert_array_equal(ds["n_overloaded"].sel(outage=o).values, (loading > 40.0).sum(axis=1))
        np.testing.assert_array_equal(ds["overloaded_steps"].sel(outage=o).values, (loading > 40.0).sum(axis=0))
    base = solvers.run_pf_timeseries(case14, prof["load_p_mw"], prof["load_q_mvar"], tol_mva=TOL_MVA)
    np.testing.assert_allclose(ds["base_loading_pct"].values, base["loading_pct"].values, atol=1e-6)
    one = n_minus_1(case14, prof, outages=["line/9"], steps=[2], tol_mva=TOL_MVA)
    assert list(one["time"].values) == [2]
    np.testing.assert_allclose(
        one["max_loading_pct"].values[0], ds["max_loading_pct"].sel(outage=["line/9"], time=[2]).values[0], atol=1e-6
    )


def test_islanding_outages_are_reported_not_solved(case14: Grid, case118: Grid):
    ds = n_minus_1(case14, tol_mva=TOL_MVA)
    # trafo/3 is the only link of bus 7 (a generator): its outage cuts the generator off
    assert list(ds["islanding"].values) == ["trafo/3"]
    assert "trafo/3" not in ds["outage"].values
    assert int(ds["islanded_n_bus"].sel(islanding="trafo/3")) == 1
    assert int(ds["islanded_n_element"].sel(islanding="trafo/3")) >= 1
    assert ds.sizes["outage"] == 19  # the 20 branches of case14 but trafo/3
    assert ds["converged"].all()
    # asked for explicitly, an islanding outage is reported, not raised
    ds118 = n_minus_1(case118, outages=["line/6", "line/0"], tol_mva=TOL_MVA)
    assert list(ds118["islanding"].values) == ["line/6"]
    assert list(ds118["outage"].values) == ["line/0"]


def test_outage_cutting_off_an_empty_bus_is_solved_exactly(case14: Grid):
    grid = case14.copy()
    grid.add("bus", {"vn_kv": float(grid.bus["vn_kv"].iloc[3]), "name": "spur"}, ids=["bus/spur"])
    spur = grid.line.iloc[[0]].copy()
    spur[["from_bus", "to_bus", "length_km"]] = [grid.bus.index[3], "bus/spur", 0.5]
    grid.add("line", spur, ids=["line/spur"])
    model = solvers.compile_grid(grid)
    check = check_outage(model, branch_groups(model, ["line/spur"])["line/spur"])
    assert check.n_island_bus == 1
    assert check.n_island_element == 0
    ds = n_minus_1(grid, outages=["line/spur", "line/3"], tol_mva=TOL_MVA, keep_loading_steps=[0])
    assert ds.attrs["n_dead_bus_outages"] == 1
    with pytest.warns(UserWarning, match="not connected to a slack"):
        ref = solvers.run_pf(_outaged(grid, "line/spur"), tol_mva=TOL_MVA)
    got = ds.sel(outage="line/spur").isel(time=0, sample_time=0)
    np.testing.assert_allclose(got["loading_pct"].values, ref["loading_pct"].values, atol=1e-6)
    assert float(got["min_vm_pu"]) == pytest.approx(float(ref["vm_pu"].min()), abs=1e-6)  # NaN bus left out


def _weak_link_grid() -> Grid:
    """An ext_grid feeding a load over two parallel lines; one line alone cannot carry it."""
    net = pp.create_empty_network()
    a = pp.create_bus(net, vn_kv=110.0)
    b = pp.create_bus(net, vn_kv=110.0)
    c = pp.create_bus(net, vn_kv=110.0)
    pp.create_ext_grid(net, a, vm_pu=1.0)
    for _ in range(2):
        pp.create_line_from_parameters(
            net, a, b, length_km=60.0, r_ohm_per_km=0.06, x_ohm_per_km=0.4, c_nf_per_km=9.0, max_i_ka=0.6
        )
    pp.create_line_from_parameters(
        net, b, c, length_km=1.0, r_ohm_per_km=0.06, x_ohm_per_km=0.4, c_nf_per_km=9.0, max_i_ka=0.6
    )
    pp.create_line_from_parameters(
        net, b, c, length_km=1.0, r_ohm_per_km=0.06, x_ohm_per_km=0.4, c_nf_per_km=9.0, max_i_ka=0.6
    )
    pp.create_load(net, c, p_mw=350.0, q_mvar=70.0)
    return twin.from_pandapower(net, name="weak link")


def test_non_convergent_contingency_is_recorded_not_raised():
    grid = _weak_link_grid()
    prof = _profiles(grid, [0.3, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = n_minus_1(grid, prof, tol_mva=TOL_MVA)
    assert list(ds["outage"].values) == ["line/0", "line/1", "line/2", "line/3"]
    assert ds["base_converged"].all()
    # losing one of the long lines: the light step still solves, the heavy one has no operating point
    for o in ("line/0", "line/1"):
        np.testing.assert_array_equal(ds["converged"].sel(outage=o).values, [True, False])
        assert np.isnan(float(ds["max_loading_pct"].sel(outage=o).isel(time=1)))
        assert ds["worst_branch"].sel(outage=o).isel(time=1).item() == ""
        assert np.isfinite(ds["peak_loading_pct"].sel(outage=o, branch="line/2").item())  # from the light step
    assert ds["converged"].sel(outage=["line/2", "line/3"]).all()


def test_bad_inputs_name_the_element(case14: Grid):
    with pytest.raises(ValueError, match="line/999"):
        n_minus_1(case14, outages=["line/999"])
    off = case14.copy()
    off.tables["line"].loc["line/2", "in_service"] = False
    with pytest.raises(ValueError, match="already out of service"):
        n_minus_1(off, outages=["line/2"])
    prof = _profiles(case14, [1.0]).assign_coords(load=["nope", *case14.load.index[1:]])
    with pytest.raises(ValueError, match="'nope'"):
        n_minus_1(case14, prof, outages=["line/0"])
