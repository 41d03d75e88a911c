"""Grid tables and importers: ids, schemas, errors that name the element, round trips."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pandas as pd
import pytest

import solvers
import twin
from twin.schema import SCHEMAS

DATA = Path(__file__).parent.parent / "data"


def test_pandapower_ids_and_units() -> None:
    net = pn.create_cigre_network_mv(with_der="pv_wind")
    grid = twin.from_pandapower(net)
    assert grid.bus.index.tolist() == [str(i) for i in net.bus.index]
    assert grid.line.index[0] == "line/0"
    assert grid.trafo.index.tolist() == ["trafo/0", "trafo/1"]
    assert grid.sgen.index[0] == "sgen/0"
    assert grid.line.at["line/0", "from_bus"] == str(net.line.at[0, "from_bus"])
    assert set(grid.switch.loc[grid.switch.et == "l", "element"]) <= set(grid.line.index)
    for comp in grid:
        for col in SCHEMAS[comp].column_names:
            assert col in grid[comp].columns
    assert np.isfinite(grid.bus.x).all()


def test_matpower_file_import_matches_pandapower_case9() -> None:
    grid = twin.from_matpower(DATA / "case9.m")
    assert grid.n_bus == 9
    assert grid.meta["source"] == "matpower"
    ds = solvers.run_pf(grid)
    ref = solvers.run_pf(twin.load("case9"))
    np.testing.assert_allclose(np.sort(ds.vm_pu.values), np.sort(ref.vm_pu.values), atol=1e-8)
    assert twin.load(DATA / "case9.m").n_bus == 9


def test_matpower_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.m"):
        twin.from_matpower(tmp_path / "nope.m")
    bad = tmp_path / "bad.m"
    bad.write_text("function mpc = bad\nmpc.bus = [1 2 3;\n")
    with pytest.raises(ValueError, match=r"bad\.m"):
        twin.from_matpower(bad)


def test_load_accepts_names_codes_and_files(tmp_path: Path) -> None:
    assert twin.load("case14").n_bus == 14
    assert twin.load("cigre_lv").n_bus == 44
    assert twin.load("1-LV-rural1--0-sw").name == "1-LV-rural1--0-sw"
    net = pn.case30()
    path = tmp_path / "net.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.to_json(net, str(path))
    assert twin.load(path).n_bus == 30
    with pytest.raises(ValueError, match="not a file, a pandapower case or a SimBench code"):
        twin.load("case_does_not_exist")
    p = tmp_path / "x.txt"
    p.write_text("x")
    with pytest.raises(ValueError, match="unknown grid file type"):
        twin.load(p)


def test_unsupported_elements_are_refused_with_ids() -> None:
    net = pn.case14()
    pp.create_ward(net, 3, ps_mw=1, qs_mvar=0.5, pz_mw=0, qz_mvar=0)
    with pytest.raises(NotImplementedError, match="ward"):
        twin.from_pandapower(net)


def test_zip_loads_survive_the_round_trip_to_pandapower() -> None:
    grid = twin.load("case14")
    grid.tables["load"]["const_z_p_percent"] = 30.0
    grid.tables["load"]["const_i_q_percent"] = 50.0
    net = twin.to_pandapower(grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, tolerance_mva=1e-9, lightsim2grid=False, voltage_depend_loads=True)
    ds = solvers.run_pf(grid, tol_mva=1e-9)
    np.testing.assert_allclose(ds.vm_pu, net.res_bus.vm_pu, atol=1e-8)
    plain = solvers.run_pf(twin.load("case14"), tol_mva=1e-9)
    assert float(abs(ds.vm_pu - plain.vm_pu).max()) > 1e-4  # the voltage dependence is really applied


def test_to_pandapower_round_trip_gives_same_power_flow() -> None:
    grid = twin.load("1-MV-urban--0-sw")
    net = twin.to_pandapower(grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, tolerance_mva=1e-9, lightsim2grid=False)
    ds = solvers.run_pf(grid, tol_mva=1e-9)
    np.testing.assert_allclose(ds.vm_pu, net.res_bus.vm_pu, atol=1e-8)


def test_grid_add_remove_copy_and_errors() -> None:
    grid = twin.load("case9")
    g2 = grid.copy()
    g2.add("load", {"bus": "4", "p_mw": 5.0, "q_mvar": 1.0}, ids=["load/new"])
    assert "load/new" in g2.load.index
    assert "load/new" not in grid.load.index
    assert g2.load.at["load/new", "scaling"] == 1.0
    with pytest.raises(ValueError, match="already exist"):
        g2.add("load", {"bus": "4", "p_mw": 1.0}, ids=["load/new"])
    with pytest.raises(ValueError, match="lacks required column 'p_mw'"):
        g2.add("load", {"bus": "4"}, ids=["load/x"])
    g2.remove("load", ["load/new"])
    with pytest.raises(KeyError, match="load/new"):
        g2.remove("load", ["load/new"])
    with pytest.raises(ValueError, match="duplicate ids"):
        twin.Grid(tables={"bus": pd.DataFrame({"vn_kv": [1.0, 1.0]}, index=["a", "a"])})
    sub = grid.select_buses(["0", "3", "4"])
    assert sub.n_bus == 3
    assert all(sub.line.from_bus.isin(["0", "3", "4"]))


def test_unknown_bus_reference_is_named() -> None:
    grid = twin.load("case9")
    grid.tables["load"].loc[grid.load.index[0], "bus"] = "no-such-bus"
    with pytest.raises(ValueError, match=r"load \['load/0'\]: column 'bus' names unknown bus ids \['no-such-bus'\]"):
        solvers.compile_grid(grid)


def test_simbench_profiles_are_keyed_by_grid_ids() -> None:
    code = "1-LV-rural1--0-sw"
    grid = twin.load(code)
    prof = twin.read_simbench_profiles(code, steps=8)
    assert prof.sizes["time"] == 8
    assert set(prof.load_p_mw["load"].values) == set(grid.load.index)
    assert set(prof.sgen_p_mw["sgen"].values) == set(grid.sgen.index)
    assert prof.load_p_mw.attrs["units"] == "MW"
    assert str(prof.time.values[1] - prof.time.values[0]) == "900000000000 nanoseconds"
