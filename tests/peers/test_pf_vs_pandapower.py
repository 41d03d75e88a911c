"""gridtwin's AC power flow against pandapower's own Newton-Raphson (``lightsim2grid=False``).

Every result table is compared: bus vm/va/p/q, branch p/q at both ends, currents, loading and
losses, with the tolerances of the foundation issue (|ΔVm| ≤ 1e-6 pu, |ΔVa| ≤ 1e-5°,
|Δloading| ≤ 1e-4 %). Powers are compared to 1e-5 MW/Mvar.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

import solvers
import twin

pytestmark = pytest.mark.peer

VM_TOL = 1e-6
VA_TOL = 1e-5
LOADING_TOL = 1e-4
POWER_TOL = 1e-5

CASES = [
    "case14",
    "case30",
    "case118",
    "case300",
    "case1354pegase",
    "case2869pegase",
    "case9241pegase",
    "cigre_mv",
    "cigre_lv",
    "1-LV-rural1--0-sw",
    "1-MV-urban--0-sw",
    "1-HV-mixed--0-sw",
]


def _pandapower_net(name: str) -> pp.pandapowerNet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if twin.io.simbench.is_simbench_code(name):
            import simbench as sb

            return sb.get_simbench_net(name)
        builder = {"cigre_mv": pn.create_cigre_network_mv, "cigre_lv": pn.create_cigre_network_lv}.get(name)
        return builder() if builder else getattr(pn, name)()


def _run_pandapower(net: pp.pandapowerNet) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, tolerance_mva=1e-9, lightsim2grid=False, max_iteration=50)


def assert_matches_pandapower(name: str) -> None:
    net = _pandapower_net(name)
    grid = twin.from_pandapower(net, name=name)
    _run_pandapower(net)
    ds = solvers.run_pf(grid, tol_mva=1e-9, max_iter=50)
    assert bool(ds.converged)
    bus_ids = [str(i) for i in net.bus.index]
    res = ds.sel(bus=bus_ids)
    np.testing.assert_allclose(res.vm_pu, net.res_bus.vm_pu, atol=VM_TOL, rtol=0)
    np.testing.assert_allclose(res.va_deg, net.res_bus.va_degree, atol=VA_TOL, rtol=0)
    np.testing.assert_allclose(res.p_mw, net.res_bus.p_mw, atol=POWER_TOL, rtol=0)
    np.testing.assert_allclose(res.q_mvar, net.res_bus.q_mvar, atol=POWER_TOL, rtol=0)
    for table, sides in (("line", ("from", "to")), ("trafo", ("hv", "lv"))):
        if not len(net[table]):
            continue
        ids = [f"{table}/{i}" for i in net[table].index]
        br = ds.sel(branch=ids)
        r = net[f"res_{table}"]
        for ours, side in zip(("from", "to"), sides, strict=True):
            np.testing.assert_allclose(br[f"p_{ours}_mw"], r[f"p_{side}_mw"], atol=POWER_TOL, rtol=0)
            np.testing.assert_allclose(br[f"q_{ours}_mvar"], r[f"q_{side}_mvar"], atol=POWER_TOL, rtol=0)
            np.testing.assert_allclose(br[f"i_{ours}_ka"], r[f"i_{side}_ka"], atol=1e-8, rtol=0)
        np.testing.assert_allclose(br.loading_pct, r.loading_percent, atol=LOADING_TOL, rtol=0)
        np.testing.assert_allclose(br.pl_mw, r.pl_mw, atol=POWER_TOL, rtol=0)
        np.testing.assert_allclose(br.ql_mvar, r.ql_mvar, atol=POWER_TOL, rtol=0)
        if table == "line":
            np.testing.assert_allclose(br.i_ka, r.i_ka, atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_pf_matches_pandapower(name: str) -> None:
    assert_matches_pandapower(name)


def test_trafo3w_and_taps_match_pandapower() -> None:
    """Three-winding transformer with an off-neutral tap, a tapped 2-winding trafo, a gen, sgen, shunt."""
    net = pp.create_empty_network()
    b = [pp.create_bus(net, vn) for vn in (110.0, 20.0, 10.0, 20.0, 0.4)]
    pp.create_ext_grid(net, b[0], vm_pu=1.02)
    pp.create_transformer3w_from_parameters(
        net,
        b[0],
        b[1],
        b[2],
        vn_hv_kv=110,
        vn_mv_kv=20,
        vn_lv_kv=10,
        sn_hv_mva=40,
        sn_mv_mva=25,
        sn_lv_mva=15,
        vk_hv_percent=10.5,
        vk_mv_percent=6.2,
        vk_lv_percent=12.1,
        vkr_hv_percent=0.4,
        vkr_mv_percent=0.35,
        vkr_lv_percent=0.45,
        pfe_kw=30,
        i0_percent=0.1,
        shift_mv_degree=150,
        shift_lv_degree=150,
        tap_side="hv",
        tap_neutral=0,
        tap_min=-9,
        tap_max=9,
        tap_step_percent=1.5,
        tap_pos=3,
        tap_changer_type="Ratio",
    )
    pp.create_line_from_parameters(net, b[1], b[3], 3.0, 0.12, 0.39, 260, 0.4)
    pp.create_transformer_from_parameters(
        net,
        b[3],
        b[4],
        sn_mva=0.63,
        vn_hv_kv=20,
        vn_lv_kv=0.4,
        vkr_percent=1.2,
        vk_percent=6,
        pfe_kw=1.2,
        i0_percent=0.3,
        shift_degree=150,
        tap_side="lv",
        tap_neutral=0,
        tap_step_percent=2.5,
        tap_pos=-2,
        tap_changer_type="Ratio",
    )
    pp.create_load(net, b[4], p_mw=0.4, q_mvar=0.1)
    pp.create_load(net, b[2], p_mw=6.0, q_mvar=2.0)
    pp.create_sgen(net, b[3], p_mw=1.5, q_mvar=-0.2)
    pp.create_gen(net, b[2], p_mw=3.0, vm_pu=1.01)
    pp.create_shunt(net, b[1], q_mvar=-1.5, p_mw=0.01)
    grid = twin.from_pandapower(net)
    _run_pandapower(net)
    ds = solvers.run_pf(grid, tol_mva=1e-9)
    np.testing.assert_allclose(ds.vm_pu, net.res_bus.vm_pu, atol=VM_TOL, rtol=0)
    np.testing.assert_allclose(ds.va_deg, net.res_bus.va_degree, atol=VA_TOL, rtol=0)
    np.testing.assert_allclose(ds.p_mw, net.res_bus.p_mw, atol=POWER_TOL, rtol=0)
    np.testing.assert_allclose(ds.q_mvar, net.res_bus.q_mvar, atol=POWER_TOL, rtol=0)
    w = ds.sel(branch=["trafo3w/0/hv", "trafo3w/0/mv", "trafo3w/0/lv"])
    r3 = net.res_trafo3w.iloc[0]
    np.testing.assert_allclose(float(w.p_from_mw[0]), r3.p_hv_mw, atol=POWER_TOL)
    np.testing.assert_allclose(float(w.p_to_mw[1]), r3.p_mv_mw, atol=POWER_TOL)
    np.testing.assert_allclose(float(w.p_to_mw[2]), r3.p_lv_mw, atol=POWER_TOL)
    np.testing.assert_allclose(float(w.loading_pct.max()), r3.loading_percent, atol=LOADING_TOL)
    t2 = ds.sel(branch="trafo/0")
    np.testing.assert_allclose(float(t2.loading_pct), net.res_trafo.loading_percent.iloc[0], atol=LOADING_TOL)


def _with_zip_loads(net: pp.pandapowerNet, seed: int = 1) -> None:
    """Random ZIP shares on every load (pandapower averages the shares of several loads on one bus, so one each)."""
    assert net.load["bus"].is_unique
    rng = np.random.default_rng(seed)
    n = len(net.load)
    for col, high in (("const_z_p_percent", 60), ("const_i_p_percent", 40), ("const_z_q_percent", 50)):
        net.load[col] = rng.uniform(0, high, n)
    net.load["const_i_q_percent"] = rng.uniform(0, 50, n)


def test_zip_loads_match_pandapower() -> None:
    """Voltage-dependent loads against ``runpp(voltage_depend_loads=True)``.

    pandapower's bus q at a generator bus holding a ZIP load books the load at 1 pu in the
    generator's Q (its res_load holds the voltage-dependent value): the two disagree by the load's
    voltage dependence. Bus p/q are therefore checked on buses without a generator, and everywhere
    against the balance of pandapower's own branch flows.
    """
    net = pn.case118()
    _with_zip_loads(net)
    grid = twin.from_pandapower(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, tolerance_mva=1e-9, lightsim2grid=False, voltage_depend_loads=True)
    ds = solvers.run_pf(grid, tol_mva=1e-9)
    np.testing.assert_allclose(ds.vm_pu, net.res_bus.vm_pu, atol=VM_TOL, rtol=0)
    np.testing.assert_allclose(ds.va_deg, net.res_bus.va_degree, atol=VA_TOL, rtol=0)
    no_gen = ~net.bus.index.isin(np.concatenate([net.gen.bus, net.ext_grid.bus]))
    np.testing.assert_allclose(ds.p_mw, net.res_bus.p_mw, atol=POWER_TOL, rtol=0)
    np.testing.assert_allclose(ds.q_mvar[no_gen], net.res_bus.q_mvar[no_gen], atol=POWER_TOL, rtol=0)
    # bus consumption (loads, shunts, minus generation) = minus the flows leaving the bus into branches
    out = np.zeros(len(net.bus), dtype=complex)
    for table, a, b in (("line", "from_bus", "to_bus"), ("trafo", "hv_bus", "lv_bus")):
        r = net[f"res_{table}"]
        sides = ("from", "to") if table == "line" else ("hv", "lv")
        for col, side in zip((a, b), sides, strict=True):
            np.add.at(out, net.bus.index.get_indexer(net[table][col]), r[f"p_{side}_mw"] + 1j * r[f"q_{side}_mvar"])
    np.testing.assert_allclose(ds.p_mw, -out.real, atol=POWER_TOL, rtol=0)
    np.testing.assert_allclose(ds.q_mvar, -out.imag, atol=POWER_TOL, rtol=0)
    trafo = ds.sel(branch=[f"trafo/{i}" for i in net.trafo.index])
    np.testing.assert_allclose(trafo.q_from_mvar, net.res_trafo.q_hv_mvar, atol=POWER_TOL, rtol=0)
