"""Shedding plans: optimality on small feeders, AC re-check on SimBench grids, infeasibility, device rules."""

from __future__ import annotations

import warnings

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
import xarray as xr

import solvers
import twin
from scenarios.electrify import electrify
from solvers.shedding import ControlPlan, plan_shedding
from twin.io.pandapower import from_pandapower

T = 4
TIME = pd.date_range("2016-01-01", periods=T, freq="15min")


def _feeder(max_i_ka: float = 0.1) -> twin.Grid:
    """3-bus radial 20 kV feeder: slack - line/0 - bus 1 (load/0) - line/1 - bus 2 (load/1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = pp.create_empty_network()
        b = [pp.create_bus(net, vn_kv=20.0) for _ in range(3)]
        pp.create_ext_grid(net, b[0], vm_pu=1.0)
        for i in range(2):
            pp.create_line_from_parameters(
                net, b[i], b[i + 1], length_km=1.0, r_ohm_per_km=0.2, x_ohm_per_km=0.3, c_nf_per_km=0.0,
                max_i_ka=max_i_ka if i == 0 else 1.0,
            )  # fmt: skip
        pp.create_load(net, b[1], p_mw=2.0, q_mvar=0.4)
        pp.create_load(net, b[2], p_mw=2.0, q_mvar=0.4)
    return from_pandapower(net, name="feeder")


def _profiles(p_mw: list[float], pf_q: float = 0.2) -> xr.Dataset:
    p = np.tile(np.asarray(p_mw, dtype=float), (T, 1))
    coords = {"time": TIME, "load": ["load/0", "load/1"]}
    return xr.Dataset(
        {
            "load_p_mw": (("time", "load"), p),
            "load_q_mvar": (("time", "load"), p * pf_q),
        },
        coords=coords,
    )


def _ac_loading(grid: twin.Grid, profiles: xr.Dataset, plan: ControlPlan) -> xr.DataArray:
    """AC loading after applying the plan (P and Q reduced in proportion, as the plan assumes)."""
    p, q = profiles["load_p_mw"], profiles["load_q_mvar"]
    curt = plan.curtailment_mw.where(plan.curtailment_mw["element_kind"] == "load", drop=True)
    curt = curt.rename(element="load").reindex(load=p["load"].values, fill_value=0.0).drop_vars("element_kind")
    factor = xr.where(p > 0, 1 - curt / p, 1.0)
    sgen = profiles.get("sgen_p_mw")
    if sgen is not None:
        c = plan.curtailment_mw.where(plan.curtailment_mw["element_kind"] == "sgen", drop=True)
        c = c.rename(element="sgen").reindex(sgen=sgen["sgen"].values, fill_value=0.0).drop_vars("element_kind")
        sgen = sgen - c
    stor = profiles.get("storage_p_mw")
    if stor is not None:
        c = plan.curtailment_mw.where(plan.curtailment_mw["element_kind"] == "storage", drop=True)
        c = c.rename(element="storage").reindex(storage=stor["storage"].values, fill_value=0.0)
        stor = stor - np.sign(stor) * c.drop_vars("element_kind")
    res = solvers.run_pf_timeseries(grid, p * factor, q * factor, sgen, None, stor)
    assert bool(res["converged"].all())
    return res["loading_pct"]


def _bisect_shed(grid: twin.Grid, profiles: xr.Dataset, load: str, branch: str) -> float:
    """Brute force: the shed of ``load`` (MW, power factor kept) that brings ``branch`` to 100 % in AC."""
    p0 = float(profiles["load_p_mw"].sel(load=load)[0])
    lo, hi = 0.0, p0
    for _ in range(40):
        mid = (lo + hi) / 2
        prof = profiles.copy(deep=True)
        f = 1 - mid / p0
        prof["load_p_mw"].loc[{"load": load}] *= f
        prof["load_q_mvar"].loc[{"load": load}] *= f
        res = solvers.run_pf_timeseries(grid, prof["load_p_mw"], prof["load_q_mvar"])
        if float(res["loading_pct"].sel(branch=branch)[0]) > 100:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def test_cheapest_load_is_shed_first_exact_mw() -> None:
    grid, prof = _feeder(), _profiles([2.0, 2.0])
    cost = pd.Series({"load/0": 1.0, "load/1": 5.0})
    plan = plan_shedding(grid, prof, cost=cost, assets=["line/0"])
    assert plan.is_feasible
    curt = plan.curtailment_mw.sel(time=TIME[0])
    assert float(curt.sel(element="load/1")) == 0.0
    exact = _bisect_shed(grid, prof, "load/0", "line/0")
    assert 0.2 < exact < 2.0  # the case needs a partial shed of the cheap load
    # the AC limit holds, so the plan sheds at least the exact amount; the linearisation error costs < 1 %
    assert exact - 1e-6 <= float(curt.sel(element="load/0")) <= 1.01 * exact
    assert float(_ac_loading(grid, prof, plan).sel(branch="line/0").max()) <= 100.0 + 1e-3
    # swap the costs: now load/1 is shed (it is further out, its losses make it a bit more effective too)
    plan2 = plan_shedding(grid, prof, cost=pd.Series({"load/0": 5.0, "load/1": 1.0}), assets=["line/0"])
    c2 = plan2.curtailment_mw.sel(time=TIME[0])
    assert float(c2.sel(element="load/0")) == 0.0
    exact2 = _bisect_shed(grid, prof, "load/1", "line/0")
    assert exact2 - 1e-6 <= float(c2.sel(element="load/1")) <= 1.01 * exact2
    # objective = cost x energy (MWh); binding limit reported with a positive shadow price
    energy_cost = float(plan2.curtailment_mw.sum()) * 0.25  # cost 1 per MWh
    assert energy_cost <= plan2.objective <= energy_cost * 1.011  # + the small weight on commands (1 %)
    assert set(plan2.binding["asset"]) == {"line/0"}
    assert (plan2.binding["shadow_price"] > 0).all()


def test_cheap_load_too_small_then_next_cheapest() -> None:
    grid, prof = _feeder(max_i_ka=0.05), _profiles([0.3, 2.0])  # 1.73 MVA: needs about 0.6 MW of shedding
    plan = plan_shedding(grid, prof, cost=pd.Series({"load/0": 1.0, "load/1": 5.0}), assets=["line/0"])
    assert plan.is_feasible
    curt = plan.curtailment_mw.isel(time=0)
    assert float(curt.sel(element="load/0")) == pytest.approx(0.3, abs=1e-6)  # all of the cheap one
    assert float(curt.sel(element="load/1")) > 0.1
    assert float(_ac_loading(grid, prof, plan).sel(branch="line/0").max()) <= 100.0 + 1e-3


def test_infeasible_reports_residual_and_reason_unreachable_untouched() -> None:
    grid, prof = _feeder(max_i_ka=0.03), _profiles([0.3, 2.0])  # line/0 carries 1 MVA at most
    reach = pd.DataFrame({"element_kind": ["load"], "controller": ["ctrl/0"], "gateway": ["gw/0"]}, index=["load/0"])
    plan = plan_shedding(grid, prof, controllable=reach, assets=["line/0"])
    assert not plan.is_feasible
    assert (plan.residual["overload_pct"] > 0).all()
    assert (plan.residual["overload_mw"] > 0).all()
    assert set(plan.residual["asset"]) == {"line/0"}
    assert len(plan.residual) == T
    assert "not enough controllable power" in plan.reason
    assert "line/0" in plan.reason
    assert list(plan.curtailment_mw["element"].values) == ["load/0"]  # load/1 is unreachable: never curtailed
    np.testing.assert_allclose(plan.curtailment_mw.sel(element="load/0"), 0.3)
    assert set(plan.commands["element"]) == {"load/0"}
    assert set(plan.commands["gateway"]) == {"gw/0"}
    assert set(plan.commands["controller"]) == {"ctrl/0"}
    assert "residual overload" in plan.summary()


def test_critical_is_never_shed() -> None:
    grid, prof = _feeder(), _profiles([2.0, 2.0])
    plan = plan_shedding(grid, prof, cost=pd.Series({"load/0": 1.0, "load/1": 5.0}), critical=["load/0"])
    assert "load/0" not in set(plan.curtailment_mw["element"].values)
    assert float(plan.curtailment_mw.sel(element="load/1").min()) > 0
    assert plan.is_feasible
    with pytest.raises(ValueError, match="critical ids"):
        plan_shedding(grid, prof, critical=["load/99"])


def test_discrete_mode_gives_on_off_commands() -> None:
    grid = _feeder(max_i_ka=0.1)
    p = np.array([[2.0, 2.0], [2.0, 2.0], [1.0, 1.0], [2.0, 2.0]])
    prof = xr.Dataset(
        {"load_p_mw": (("time", "load"), p), "load_q_mvar": (("time", "load"), 0.2 * p)},
        coords={"time": TIME, "load": ["load/0", "load/1"]},
    )
    plan = plan_shedding(grid, prof, discrete=True, min_on_steps=4, cost=pd.Series({"load/0": 1.0, "load/1": 1.5}))
    assert plan.status == "Optimal"
    assert plan.is_feasible
    curt = plan.curtailment_mw.transpose("time", "element").to_numpy()
    on = curt > 0
    full = np.isclose(curt, p[:, : curt.shape[1]]) | ~on
    assert full.all()  # a device is either fully off or untouched
    assert (plan.commands["action"] == "off").all()
    # min on-time of 4 steps over a 4-step horizon: one command covering the whole horizon
    assert len(plan.commands) == 1
    cmd = plan.commands.iloc[0]
    assert cmd["start"] == TIME[0]
    assert cmd["end"] == TIME[-1] + pd.Timedelta("15min")
    assert cmd["kw"] == pytest.approx(1000 * p[:, 0].mean())


def test_plan_round_trips_json_and_dataset(tmp_path) -> None:
    grid, prof = _feeder(), _profiles([2.0, 2.0])
    plan = plan_shedding(grid, prof, cost=pd.Series({"load/0": 1.0, "load/1": 5.0}))
    path = tmp_path / "plan.json"
    plan.to_json(path)
    back = ControlPlan.from_json(path)
    xr.testing.assert_allclose(back.curtailment_mw, plan.curtailment_mw)
    pd.testing.assert_frame_equal(back.commands, plan.commands, check_dtype=False)
    pd.testing.assert_frame_equal(back.totals, plan.totals, check_dtype=False, check_names=False)
    assert back.iterations == plan.iterations
    assert back.objective == plan.objective
    ds = plan.to_dataset()
    assert ds["curtailment_mw"].dims == ("time", "element")
    assert len(plan.commands) >= 1
    assert "commands" in plan.summary()


def test_bad_inputs_are_named() -> None:
    grid, prof = _feeder(), _profiles([2.0, 2.0])
    with pytest.raises(ValueError, match=r"assets \['line/9'\]"):
        plan_shedding(grid, prof, assets=["line/9"])
    with pytest.raises(ValueError, match="margin"):
        plan_shedding(grid, prof, margin=1.5)
    with pytest.raises(ValueError, match=r"meshed|linearisation"):
        plan_shedding(grid, prof, linearisation="dc")
    bad = prof.copy(deep=True)
    bad["load_p_mw"][1, 0] = np.nan
    with pytest.raises(ValueError, match="load/0"):
        plan_shedding(grid, bad)


@pytest.fixture(scope="module")
def lv_rural() -> tuple[twin.Grid, xr.Dataset]:
    code = "1-LV-rural1--2-sw"
    return twin.load(code), twin.read_simbench_profiles(code, steps=slice(96 * 152, 96 * 153))  # 2016-06-01


def test_pv_curtailment_holds_in_ac_on_lv_rural(lv_rural) -> None:
    grid, prof = lv_rural  # a sunny day: PV feed-in overloads trafo/0
    base = solvers.run_pf_timeseries(grid, prof["load_p_mw"], prof["load_q_mvar"], prof["sgen_p_mw"], None,
                                     prof["storage_p_mw"])  # fmt: skip
    assert float(base["loading_pct"].sel(branch="trafo/0").max()) > 150
    plan = plan_shedding(grid, prof, margin=0.05)
    assert plan.is_feasible, plan.summary()
    after = _ac_loading(grid, prof, plan)
    assert float(after.max()) <= 95.0 + 1e-3
    kinds = set(plan.commands["element_kind"])
    assert "sgen" in kinds
    assert "load" not in kinds  # shedding load would make the reverse flow worse
    assert plan.totals.loc["trafo/0", "curtailed_kwh"] > 0
    assert plan.meta["linearisation"] == "lindistflow"


def test_unreachable_controllers_are_never_used(lv_rural) -> None:
    from twin.comm import generate_comm
    from twin.graph import MultiLayerGraph

    grid, prof = lv_rural
    grid = grid.copy()
    grid.sgen["controllable"] = True
    comm = generate_comm(grid)
    reach = comm.reachability()
    graph = MultiLayerGraph.from_grid(grid, comm)
    now = graph.controllable_now()
    now["gateway"] = reach.loc[now["controller"], "gateway"].to_numpy()
    first = plan_shedding(grid, prof, controllable=now)
    busiest = str(first.curtailment_mw.sum("time").idxmax().item())  # the device the plan leans on most
    links = comm.links
    cut = links.index[(links["a"] == f"ctrl/{busiest}") | (links["b"] == f"ctrl/{busiest}")].tolist()
    assert cut
    later = graph.controllable_now(without=cut)
    assert busiest not in later.index
    later["gateway"] = reach.loc[later["controller"], "gateway"].to_numpy()
    plan = plan_shedding(grid, prof, controllable=later)
    assert busiest not in set(plan.curtailment_mw["element"].values)  # no variable at all: exactly zero
    assert busiest not in set(plan.commands["element"])
    assert set(plan.curtailment_mw["element"].values) <= set(later.index)
    assert plan.is_feasible, plan.summary()  # the other PV units take over
    assert float(_ac_loading(grid, prof, plan).max()) <= 100.0 + 1e-3
    assert (plan.commands["gateway"] == "gw/trafo/0").all()


def test_load_shedding_holds_in_ac_on_electrified_mv() -> None:
    code = "1-MV-urban--0-sw"
    grid, prof = twin.load(code), twin.read_simbench_profiles(code, steps=96 * 7)
    grid, prof = electrify(grid, prof, ev_share=0.6, hp_share=0.6, seed=0)
    day = prof.sel(time="2016-01-06")
    plan = plan_shedding(grid, day)
    assert plan.is_feasible, plan.summary()
    after = _ac_loading(grid, day, plan)
    assert float(after.max()) <= 100.0 + 1e-3
    assert float(after.sel(branch="line/48").max()) > 99.0  # shed no more than needed on the worst line
    assert set(plan.commands["element_kind"]) == {"load"}
    assert plan.iterations[-1]["assets_over"] == []


def test_rebound_pays_back_shed_heating_energy_later() -> None:
    grid = _feeder(max_i_ka=0.1)
    p = np.array([[2.0, 2.0], [2.0, 2.0], [0.5, 0.5], [0.5, 0.5]])
    prof = xr.Dataset(
        {"load_p_mw": (("time", "load"), p), "load_q_mvar": (("time", "load"), 0.2 * p)},
        coords={"time": TIME, "load": ["load/0", "load/1"]},
    )
    reach = pd.DataFrame(
        {"element_kind": ["load", "load"], "controller": ["c0", "c1"], "heating": [False, True]},
        index=["load/0", "load/1"],
    )
    plan = plan_shedding(grid, prof, controllable=reach, rebound=0.5, cost=pd.Series({"load/0": 5.0, "load/1": 1.0}))
    assert plan.is_feasible
    shed = plan.curtailment_mw.sel(element="load/1").to_numpy()
    back = plan.payback_mw.sel(element="load/1").to_numpy()
    assert shed[:2].min() > 0.1
    np.testing.assert_allclose(shed[2:], 0.0)
    np.testing.assert_allclose(back[:2], 0.0, atol=1e-9)  # nothing paid back before or while shedding
    assert back.sum() == pytest.approx(0.5 * shed.sum(), rel=1e-6)  # half the shed energy comes back
    assert (back <= 2.0 - p[:, 1] + 1e-9).all()  # within the device's rated power
    np.testing.assert_allclose(plan.payback_mw.sel(element="load/0"), 0.0)
    net = p.copy()
    net[:, 1] -= shed - back
    res = solvers.run_pf_timeseries(
        grid,
        xr.DataArray(net, dims=("time", "load"), coords=prof["load_p_mw"].coords),
        xr.DataArray(0.2 * net, dims=("time", "load"), coords=prof["load_p_mw"].coords),
    )
    assert float(res["loading_pct"].sel(branch="line/0").max()) <= 100.0 + 1e-3
    with pytest.raises(ValueError, match="rebound"):
        plan_shedding(grid, prof, rebound=1.5)
