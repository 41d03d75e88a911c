"""Shedding internals: sensitivities against PTDF and AC finite differences, voltage limits, benchmark LP twins."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import highspy
import numpy as np
import pandas as pd
import pyomo.kernel as pmo
import pytest
import xarray as xr

import solvers
import twin
from benchmarks.shed import _linopy, _pyomo_appsi, _pyomo_matrix, synthetic_data
from solvers.shedding import plan_shedding
from solvers.shedding.build import build_model
from solvers.shedding.data import SheddingData, build_payback
from solvers.shedding.highs import solve_highs
from solvers.shedding.linearise import compute_sensitivity, is_radial
from tests.solvers.test_shedding import TIME, _feeder, _profiles


def test_tree_flows_equal_ptdf_on_a_radial_grid() -> None:
    model = solvers.compile_grid(twin.load("1-LV-rural1--2-sw"))
    assert is_radial(model)
    tree = compute_sensitivity(model, "lindistflow").flow.toarray()
    ptdf = compute_sensitivity(model, "ptdf").flow.toarray()
    np.testing.assert_allclose(tree, ptdf, atol=1e-8)
    assert set(np.unique(tree)) <= {-1.0, 0.0, 1.0}
    meshed = solvers.compile_grid(twin.load("case9"))
    assert not is_radial(meshed)
    assert compute_sensitivity(meshed).method == "ptdf"
    with pytest.raises(ValueError, match="meshed"):
        compute_sensitivity(meshed, "lindistflow")


def test_lindistflow_voltage_change_matches_ac() -> None:
    grid = _feeder(max_i_ka=1.0)
    model = solvers.compile_grid(grid)
    sens = compute_sensitivity(model)
    base = solvers.run_pf(grid)
    bumped = grid.copy()
    bumped.load.loc["load/1", ["p_mw", "q_mvar"]] -= [0.5, 0.1]  # shed 0.5 MW at bus 2, power factor kept
    after = solvers.run_pf(bumped)
    bus2 = int(model.grid_bus_idx[2])
    g = sens.voltage(np.array([bus2]), np.array([bus2])).toarray()[0, 0]
    vm0 = float(base["vm_pu"][2])
    predicted = (g.real * 0.5 + g.imag * 0.1) / (2 * vm0 * model.base_mva)
    observed = float(after["vm_pu"][2]) - vm0
    assert observed > 0
    assert predicted == pytest.approx(observed, rel=0.05)


def test_voltage_limits_hold_in_ac() -> None:
    grid = _feeder(max_i_ka=1.0)
    grid.line.loc[:, "length_km"] = 16.0  # long feeder: the far bus sags below 0.95 pu
    prof = _profiles([2.0, 2.0])
    base = solvers.run_pf_timeseries(grid, prof["load_p_mw"], prof["load_q_mvar"])
    assert float(base["vm_pu"].min()) < 0.94
    plan = plan_shedding(grid, prof, vm_limits_pu=(0.95, 1.05))
    assert plan.is_feasible
    shed = plan.curtailment_mw.transpose("time", "element").to_numpy()
    assert shed.sum() > 0
    p = prof["load_p_mw"].to_numpy() - shed
    coords = prof["load_p_mw"].coords
    after = solvers.run_pf_timeseries(
        grid, xr.DataArray(p, dims=("time", "load"), coords=coords),
        xr.DataArray(0.2 * p, dims=("time", "load"), coords=coords),
    )  # fmt: skip
    assert float(after["vm_pu"].min()) >= 0.95 - 1e-6
    assert float(after["vm_pu"].min()) < 0.955  # and not much more than needed
    assert set(plan.binding["kind"]) == {"vm_min"}
    assert plan.binding["time"].isin(TIME).all()


def test_benchmark_pyomo_and_linopy_solve_the_same_lp() -> None:
    pytest.importorskip("linopy", reason="linopy is an optional benchmark peer")
    data = synthetic_data(n_feeder=4, per_feeder=5, n_t=8, seed=1)
    a, b = _pyomo_matrix(data), _linopy(data)
    assert a["objective"] > 0
    assert a["objective"] == pytest.approx(b["objective"], rel=1e-7)
    assert pd.notna(a["build_s"])


def _lp_file_objective(m: pmo.block, path: Path) -> tuple[float, int, int]:
    """Objective, columns and rows of ``m`` written by Pyomo's own LP writer and solved by HiGHS from the file."""
    m.write(str(path))
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    assert h.readModel(str(path)) == highspy.HighsStatus.kOk
    h.run()
    return h.getInfo().objective_function_value, h.getNumCol(), h.getNumRow()


def _with_rebound(data: SheddingData) -> SheddingData:
    """``data`` in discrete mode (min on-time 3) with the first two devices paying back half their energy."""
    dev = data.devices
    n_t, n_dev = dev.pair_pos.shape[1], len(dev.ids)
    heating = np.arange(n_dev) < 2
    pay = build_payback(
        dev, np.full((n_t, n_dev), 0.05), heating, np.full(n_dev, 0.2), np.full((n_t, n_dev), 0.2), np.ones(n_dev)
    )
    return replace(data, discrete=True, min_on_steps=3, payback=pay, rebound=0.5)


@pytest.mark.parametrize("variant", ["continuous", "discrete_rebound"])
def test_matrix_model_matches_pyomo_lp_writer(variant: str, tmp_path: Path) -> None:
    data = synthetic_data(n_feeder=3, per_feeder=4, n_t=8, seed=2)
    if variant == "discrete_rebound":
        data = _with_rebound(data)
    m = build_model(data)
    res = solve_highs(m)
    objective, n_col, n_row = _lp_file_objective(m, tmp_path / "shed.lp")
    n_pair, n_row_limit = data.devices.n_pair, data.rows.n_row
    pay = data.payback.n_pair if data.payback is not None else 0
    assert n_col == 2 * n_pair + n_row_limit + 2 * pay
    assert n_row == sum(len(d) for d in res.row_dual.values())
    assert res.status == "Optimal"
    assert res.objective > 0
    assert res.objective == pytest.approx(objective, rel=1e-9)
    if variant == "discrete_rebound":
        assert set(res.row_dual) == {"limit_upper", "rise_lower", "min_on_upper", "debt_balance"}
        np.testing.assert_allclose(res.x["shed_on"], np.round(res.x["shed_on"]), atol=1e-6)
        paid = res.x["payback_mw"].sum() * data.dt_h
        shed = (res.x["shed_on"] * data.devices.ub_mw)[np.isin(data.devices.pair_device, [0, 1])].sum() * data.dt_h
        assert paid == pytest.approx(0.5 * shed, rel=1e-6, abs=1e-9)


def test_matrix_model_matches_environ_model_through_appsi() -> None:
    data = synthetic_data(n_feeder=3, per_feeder=4, n_t=8, seed=3)
    res = solve_highs(build_model(data))
    reference = _pyomo_appsi(data)  # pyomo.environ, one expression per row, Pyomo's own HiGHS translation
    assert res.objective > 0
    assert res.objective == pytest.approx(reference["objective"], rel=1e-7)


def test_compile_highs_reads_columns_by_identity_bounds_and_row_state() -> None:
    m = pmo.block()
    m.x = pmo.variable_list(pmo.variable(lb=0.0, ub=u) for u in (3.0, 2.0, 3.0))
    m.y = pmo.variable_list([pmo.variable(lb=-1.0), pmo.variable_list([pmo.variable(lb=0.0, ub=5.0)])])  # nested
    y1 = m.y[1][0]
    m.y[0].fix(0.5)
    a = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # columns in a foreign order (y[1], x[2], x[0]); the third row is switched off
    m.c = pmo.matrix_constraint(a, ub=np.array([4.0, 2.5, 0.0]), x=(y1, m.x[2], m.x[0]))
    m.c[2].deactivate()
    m.o = pmo.objective(sum(m.x) + 2 * y1 + m.y[0], sense=pmo.maximize)
    res = solve_highs(m)
    # y1 + x2 ≤ 4, x2 + x0 ≤ 2.5 (y1 ≤ 0 is off): best is x1 = 2, y1 = 4, x0 = 2.5, x2 = 0, fixed y0 = 0.5
    np.testing.assert_allclose(res.x["x"], [2.5, 2.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(res.x["y"], [0.5, 4.0], atol=1e-9)
    assert res.objective == pytest.approx(2.5 + 2.0 + 8.0 + 0.5)
    np.testing.assert_allclose(np.abs(res.row_dual["c"]), [2.0, 1.0, 0.0], atol=1e-9)  # y1 pays 2, x0 pays 1
    m.z = pmo.variable_list([pmo.variable()])
    m.c2 = pmo.matrix_constraint(np.ones((1, 1)), ub=1.0, x=(pmo.variable(),))
    with pytest.raises(ValueError, match="not part of the model"):
        solve_highs(m)
    del m.c2
    m.d = pmo.constraint(m.z[0] <= 1.0)
    with pytest.raises(TypeError, match="'d': only matrix_constraint"):
        solve_highs(m)
    del m.d
    m.sub = pmo.block()
    with pytest.raises(TypeError, match="only flat blocks"):
        solve_highs(m)
    del m.sub
    m.c3 = pmo.matrix_constraint(np.ones((1, 1)), ub=1.0)
    with pytest.raises(ValueError, match="'c3' has no variables"):
        solve_highs(m)
