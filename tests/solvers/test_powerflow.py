"""Power-flow behaviour: time series vs single solves, islands, outages, non-convergence, DC."""

from __future__ import annotations

import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest
import xarray as xr

import solvers
import twin
from solvers.powerflow.newton import NewtonSolver


def _solve_pandapower(net: pp.pandapowerNet) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, tolerance_mva=1e-9, lightsim2grid=False)


def _scaled_loads(grid: twin.Grid, n_steps: int, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    rng = np.random.default_rng(seed)
    fac = rng.uniform(0.8, 1.2, (n_steps, len(grid.load)))
    coords = {"time": np.arange(n_steps), "load": grid.load.index.to_numpy()}
    p = xr.DataArray(grid.load.p_mw.to_numpy() * fac, dims=("time", "load"), coords=coords)
    q = xr.DataArray(grid.load.q_mvar.to_numpy() * fac, dims=("time", "load"), coords=coords)
    return p, q


@pytest.mark.parametrize("method", ["chord", "nr"])
@pytest.mark.parametrize("case", ["case118", "1-MV-urban--0-sw"])
def test_timeseries_equals_single_solves(case: str, method: str) -> None:
    grid = twin.load(case)
    model = solvers.compile_grid(grid)
    p, q = _scaled_loads(grid, 50)
    ts = solvers.run_pf_timeseries(model, p, q, method=method, tol_mva=1e-9)
    assert bool(ts.converged.all())
    for t in range(50):
        g = grid.copy()
        g.tables["load"]["p_mw"] = p.isel(time=t).to_numpy()
        g.tables["load"]["q_mvar"] = q.isel(time=t).to_numpy()
        single = solvers.run_pf(g, tol_mva=1e-9)
        step = ts.isel(time=t)
        np.testing.assert_allclose(step.vm_pu, single.vm_pu, atol=1e-9, rtol=0)
        np.testing.assert_allclose(step.va_deg, single.va_deg, atol=1e-7, rtol=0)
        np.testing.assert_allclose(step.loading_pct, single.loading_pct, atol=1e-6, rtol=0)
        np.testing.assert_allclose(step.p_mw, single.p_mw, atol=1e-6, rtol=0)
        np.testing.assert_allclose(step.q_from_mvar, single.q_from_mvar, atol=1e-6, rtol=0)


def test_timeseries_simbench_profiles_match_pandapower() -> None:
    code = "1-LV-rural1--0-sw"
    grid = twin.load(code)
    prof = twin.read_simbench_profiles(code, steps=5)
    ts = solvers.run_pf_timeseries(grid, prof.load_p_mw, prof.load_q_mvar, prof.sgen_p_mw, tol_mva=1e-9)
    net = twin.to_pandapower(grid)
    for t in range(5):
        net.load["p_mw"] = prof.load_p_mw.isel(time=t).sel(load=grid.load.index).to_numpy()
        net.load["q_mvar"] = prof.load_q_mvar.isel(time=t).sel(load=grid.load.index).to_numpy()
        net.sgen["p_mw"] = prof.sgen_p_mw.isel(time=t).sel(sgen=grid.sgen.index).to_numpy()
        _solve_pandapower(net)
        np.testing.assert_allclose(ts.vm_pu.isel(time=t), net.res_bus.vm_pu, atol=1e-6, rtol=0)


def test_timeseries_flags_steps_that_do_not_converge() -> None:
    grid = twin.load("case14")
    p, q = _scaled_loads(grid, 6)
    p[2] *= 10
    q[2] *= 10
    with pytest.warns(UserWarning, match="1 of 6 steps did not converge"):
        ts = solvers.run_pf_timeseries(grid, p, q)
    assert ts.converged.values.tolist() == [True, True, False, True, True, True]
    assert np.isnan(ts.vm_pu.isel(time=2)).all()
    assert np.isfinite(ts.vm_pu.isel(time=3)).all()


def test_scaled_case_raises_named_error() -> None:
    grid = twin.load("case14")
    grid.tables["load"]["p_mw"] *= 10
    grid.tables["load"]["q_mvar"] *= 10
    with pytest.raises(solvers.PowerFlowNotConverged) as info:
        solvers.run_pf(grid, max_iter=20)
    err = info.value
    assert err.iterations == 20
    assert err.mismatch_mva > 1e-3
    assert err.bus_id in set(grid.bus.index)
    assert "MVA" in str(err)
    assert err.bus_id in str(err)


def test_isolated_bus_is_nan_and_rest_matches_pandapower() -> None:
    net = pn.case14()
    iso = pp.create_bus(net, 20.0)  # no branch: isolated
    pp.create_load(net, iso, p_mw=1.0)
    grid = twin.from_pandapower(net)
    with pytest.warns(UserWarning, match="not connected to a slack"):
        ds = solvers.run_pf(grid)
    assert np.isnan(float(ds.vm_pu.sel(bus=str(iso))))
    _solve_pandapower(net)
    np.testing.assert_allclose(ds.vm_pu.values[:-1], net.res_bus.vm_pu.values[:-1], atol=1e-6)


def test_out_of_service_elements_match_pandapower() -> None:
    net = pn.case118()
    net.line.loc[[3, 17], "in_service"] = False
    net.trafo.loc[net.trafo.index[0], "in_service"] = False
    net.load.loc[2, "in_service"] = False
    net.gen.loc[1, "in_service"] = False
    grid = twin.from_pandapower(net)
    ds = solvers.run_pf(grid, tol_mva=1e-9)
    _solve_pandapower(net)
    np.testing.assert_allclose(ds.vm_pu, net.res_bus.vm_pu, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ds.va_deg, net.res_bus.va_degree, atol=1e-5, rtol=0)
    assert float(ds.p_from_mw.sel(branch="line/3")) == 0.0
    np.testing.assert_allclose(
        ds.sel(branch=[f"line/{i}" for i in net.line.index]).loading_pct, net.res_line.loading_percent, atol=1e-4
    )


def test_two_islands_each_with_slack_match_pandapower() -> None:
    net = pn.case14()
    net2 = pn.case9()
    offset = net.bus.index.max() + 1
    merged = pp.toolbox.merge_nets(net, net2, validate=False, net2_reindex_log_level="debug")
    assert len(merged.ext_grid) == 2
    assert len(merged.bus) == len(net.bus) + len(net2.bus)
    grid = twin.from_pandapower(merged)
    model = solvers.compile_grid(grid)
    assert model.island.max() == 1
    assert (model.bus_type == 3).sum() == 2
    ds = solvers.run_pf(model, tol_mva=1e-9)
    _solve_pandapower(merged)
    np.testing.assert_allclose(ds.vm_pu, merged.res_bus.vm_pu, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ds.va_deg, merged.res_bus.va_degree, atol=1e-5, rtol=0)
    assert offset > 0


def test_open_line_switch_keeps_line_charging_like_pandapower() -> None:
    net = pn.create_cigre_network_mv(with_der="pv_wind")
    net.switch.loc[net.switch.et == "l", "closed"] = False  # open all line switches (cigre opens 3 of them)
    grid = twin.from_pandapower(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = solvers.run_pf(grid, tol_mva=1e-9)
    _solve_pandapower(net)
    np.testing.assert_allclose(ds.vm_pu, net.res_bus.vm_pu, atol=1e-6, rtol=0)
    np.testing.assert_allclose(
        ds.sel(branch=[f"line/{i}" for i in net.line.index]).q_from_mvar, net.res_line.q_from_mvar, atol=1e-5
    )


def test_slack_override_by_gen_id() -> None:
    grid = twin.load("case9")
    ds = solvers.run_pf(grid, slack="gen/0")
    model = solvers.compile_grid(grid, slack="gen/0")
    gen_bus = grid.gen.at["gen/0", "bus"]
    ref = np.flatnonzero(model.bus_type == 3)
    assert len(ref) == 1
    assert model.grid_bus_idx[grid.bus.index.get_loc(gen_bus)] == ref[0]
    assert float(ds.va_deg.sel(bus=gen_bus)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="neither a bus, a gen nor an ext_grid"):
        solvers.compile_grid(grid, slack="nope")


def test_slack_override_keeps_a_demoted_slack_gen_as_pv() -> None:
    grid = twin.load("case9")
    grid.remove("ext_grid", grid.ext_grid.index)
    grid.tables["gen"].loc["gen/0", "slack"] = True
    grid.tables["gen"].loc["gen/0", "vm_pu"] = 1.04
    model = solvers.compile_grid(grid, slack="gen/1")
    bus_of = {g: model.grid_bus_idx[grid.bus.index.get_loc(grid.gen.at[g, "bus"])] for g in ("gen/0", "gen/1")}
    assert model.bus_type[bus_of["gen/1"]] == 3
    assert model.bus_type[bus_of["gen/0"]] == 2
    ds = solvers.run_pf(model)
    assert float(ds.vm_pu.sel(bus=grid.gen.at["gen/0", "bus"])) == pytest.approx(1.04, abs=1e-9)


def test_dc_power_flow_matches_pandapower_rundcpp() -> None:
    net = pn.case118()
    grid = twin.from_pandapower(net)
    ds = solvers.run_dc(grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.rundcpp(net)
    np.testing.assert_allclose(ds.va_deg, net.res_bus.va_degree, atol=1e-8)
    np.testing.assert_allclose(
        ds.sel(branch=[f"line/{i}" for i in net.line.index]).p_from_mw, net.res_line.p_from_mw, atol=1e-6
    )


@pytest.mark.parametrize("linear_solver", ["klu", "superlu"])
def test_linear_solvers_agree(linear_solver: str) -> None:
    grid = twin.load("case300")
    ds = solvers.run_pf(grid, linear_solver=linear_solver, tol_mva=1e-9)
    ref = solvers.run_pf(grid, linear_solver="superlu", tol_mva=1e-9)
    assert ds.attrs["linear_solver"] == linear_solver
    np.testing.assert_allclose(ds.vm_pu, ref.vm_pu, atol=1e-10)


def test_model_is_reused_without_recompiling() -> None:
    grid = twin.load("case30")
    model = solvers.compile_grid(grid)
    a = solvers.run_pf(model)
    b = solvers.run_pf(model)
    assert b.attrs["compile_time_s"] == 0.0
    assert isinstance(model.cache["newton_solver:auto"], NewtonSolver)
    np.testing.assert_array_equal(a.vm_pu, b.vm_pu)


def test_timeseries_input_errors_name_the_problem() -> None:
    grid = twin.load("case14")
    p, q = _scaled_loads(grid, 3)
    bad = p.assign_coords(load=[*p["load"].values[:-1], "load/999"])
    with pytest.raises(ValueError, match=r"load/999"):
        solvers.run_pf_timeseries(grid, bad, q)
    p2 = p.copy()
    p2[1, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite value at time index 1"):
        solvers.run_pf_timeseries(grid, p2, q)
    with pytest.raises(ValueError, match="at least one time series"):
        solvers.run_pf_timeseries(grid)


@pytest.mark.slow
def test_simbench_year_converges_every_step() -> None:
    code = "1-MV-urban--0-sw"
    prof = twin.read_simbench_profiles(code)
    ts = solvers.run_pf_timeseries(twin.load(code), prof.load_p_mw, prof.load_q_mvar, prof.sgen_p_mw)
    assert ts.sizes["time"] == 35136
    assert bool(ts.converged.all())
    assert float(ts.vm_pu.min()) > 0.9


def _zip_grid(case: str = "case30", seed: int = 3) -> twin.Grid:
    grid = twin.load(case)
    rng = np.random.default_rng(seed)
    n = len(grid.load)
    for col in ("const_z_p_percent", "const_i_p_percent", "const_z_q_percent", "const_i_q_percent"):
        grid.tables["load"][col] = rng.uniform(0, 45, n)
    return grid


def test_zip_jacobian_matches_finite_differences() -> None:
    from solvers.powerflow import _kernels as k

    model = solvers.compile_grid(_zip_grid())
    solver = NewtonSolver(model, "superlu")
    p = solver.pattern
    s_bus = model.s_bus_mva() / model.base_mva
    s_i, s_z = (x / model.base_mva for x in model.s_vdep_mva())
    assert np.abs(s_i).max() > 0.01
    rng = np.random.default_rng(0)
    v = (1 + 0.05 * rng.standard_normal(model.n_bus)) * np.exp(0.1j * rng.standard_normal(model.n_bus))
    solver.factor_at(v, (s_i, s_z))
    jac = p.matrix(solver.j_data).toarray()

    def f(x: np.ndarray) -> np.ndarray:
        out = np.zeros(p.n_eq)
        k.mismatch(x, s_bus, s_i, s_z, p.y_indptr, p.y_indices, p.y_data, p.theta_var, p.vm_var, out)
        return out

    h = 1e-7
    for bus in np.flatnonzero(p.vm_var >= 0)[:8]:  # d/d|V| columns hold the ZIP terms
        vp = v.copy()
        vp[bus] *= (abs(v[bus]) + h) / abs(v[bus])
        np.testing.assert_allclose((f(vp) - f(v)) / h, jac[:, p.vm_var[bus]], atol=2e-5)


@pytest.mark.parametrize("method", ["chord", "nr"])
def test_zip_timeseries_equals_single_solves(method: str) -> None:
    grid = _zip_grid()
    p, q = _scaled_loads(grid, 4)
    ts = solvers.run_pf_timeseries(grid, p, q, method=method, tol_mva=1e-9)
    for t in range(4):
        g = grid.copy()
        g.tables["load"]["p_mw"] = p.isel(time=t).to_numpy()
        g.tables["load"]["q_mvar"] = q.isel(time=t).to_numpy()
        single = solvers.run_pf(g, tol_mva=1e-9)
        np.testing.assert_allclose(ts.vm_pu.isel(time=t), single.vm_pu, atol=1e-9, rtol=0)
        np.testing.assert_allclose(ts.q_mvar.isel(time=t), single.q_mvar, atol=1e-6, rtol=0)
    const = solvers.run_pf(twin.load("case30"), tol_mva=1e-9)
    zip_base = solvers.run_pf(grid, tol_mva=1e-9)
    assert np.abs(zip_base.vm_pu - const.vm_pu).max() > 1e-4  # the shares change the solution
