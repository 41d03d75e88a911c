"""SV export: PF results written as CGMES 2.4.15 SV, read back by cimpy, by gridtwin and by PowSyBl."""

from __future__ import annotations

import zipfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

import cim
import solvers
from cim.export_sv import export_sv, terminal_flows

cimpy = pytest.importorskip("cimpy")

CIGRE = Path(cimpy.__file__).parent / "examples" / "sampledata" / "CIGRE_MV"


def _profile(folder: Path, tag: str) -> Path:
    (path,) = folder.glob(f"*_{tag}.xml")
    return path


@pytest.fixture
def cigre_sv(tmp_path: Path) -> tuple[object, object, Path]:
    """CIGRE MV solved by gridtwin and its SV written next to nothing else."""
    grid = cim.load(CIGRE)
    res = solvers.run_pf(grid, tol_mva=1e-9)
    return grid, res, export_sv(grid, res, tmp_path / "gridtwin_SV.xml")


def test_cimpy_reads_the_voltages_back(cigre_sv: tuple) -> None:
    grid, res, sv_path = cigre_sv
    with ExitStack() as stack:  # open files: cimpy leaves the ones it opens itself unclosed
        files = [stack.enter_context(p.open("rb")) for p in (_profile(CIGRE, "EQ"), _profile(CIGRE, "TP"), sv_path)]
        objects = cimpy.cim_import(files, "cgmes_v2_4_15")["topology"]
    by_node = {o.TopologicalNode.mRID: o for o in objects.values() if type(o).__name__ == "SvVoltage"}
    assert set(by_node) == set(grid.bus.index)
    v_kv = res["vm_pu"].to_series() * grid.bus["vn_kv"]
    for bus, sv in by_node.items():
        assert sv.v == v_kv[bus]  # repr() floats: exact
        assert sv.angle == res["va_deg"].sel(bus=bus).item()
    statuses = [o for o in objects.values() if type(o).__name__ == "SvStatus"]
    assert all(s.inService for s in statuses)
    assert {s.ConductingEquipment.mRID for s in statuses} >= set(grid.line.index) | set(grid.trafo.index)


def test_gridtwin_reads_its_own_sv_as_the_file_solution(cigre_sv: tuple) -> None:
    grid, res, sv_path = cigre_sv
    again = cim.load([_profile(CIGRE, "EQ"), _profile(CIGRE, "TP"), sv_path])
    sv = again.meta["sv"].reindex(grid.bus.index)
    v_kv = res["vm_pu"].to_series() * grid.bus["vn_kv"]
    np.testing.assert_array_equal(sv["v_kv"].to_numpy(), v_kv.to_numpy())
    np.testing.assert_array_equal(sv["angle_deg"].to_numpy(), res["va_deg"].to_numpy())
    flows = terminal_flows(grid, res)
    file_flows = again.meta["sv_flow"].reindex(flows.index)
    np.testing.assert_array_equal(file_flows["p_mw"].to_numpy(), flows["p_mw"].to_numpy())


def test_export_needs_a_cim_grid_and_one_converged_step(cigre_sv: tuple, tmp_path: Path) -> None:
    grid, res, _ = cigre_sv
    plain = grid.copy()
    plain.meta.pop("cim_terminals")
    with pytest.raises(ValueError, match=r"cim\.load"):
        export_sv(plain, res, tmp_path / "x.xml")
    with pytest.raises(ValueError, match="time dimension"):
        export_sv(grid, res.expand_dims(time=[0]), tmp_path / "x.xml")


def test_powsybl_round_trip_keeps_every_voltage_and_flow(tmp_path: Path) -> None:
    pn = pytest.importorskip("pypowsybl.network")
    pn.create_ieee14().save(str(tmp_path / "ieee14"), format="CGMES")
    base = [tmp_path / f"ieee14_{p}.xml" for p in ("EQ", "TP", "SSH")]
    grid = cim.load([*base, tmp_path / "ieee14_SV.xml"])
    res = solvers.run_pf(grid, tol_mva=1e-9)
    sv_path = export_sv(grid, res, tmp_path / "gridtwin_SV.xml")
    with zipfile.ZipFile(tmp_path / "round_trip.zip", "w") as zf:
        for f in [*base, sv_path]:
            zf.write(f, f.name)
    network = pn.load(str(tmp_path / "round_trip.zip"))

    buses = network.get_bus_breaker_view_buses()
    ids = "_" + buses.index
    v_kv = (res["vm_pu"].to_series() * grid.bus["vn_kv"]).reindex(ids).to_numpy()
    np.testing.assert_allclose(buses["v_mag"].to_numpy(), v_kv, rtol=1e-12)
    np.testing.assert_allclose(buses["v_angle"].to_numpy(), res["va_deg"].to_series().reindex(ids), atol=1e-12)
    lines = network.get_lines()
    p_from = res["p_from_mw"].to_series().reindex("_" + lines.index).to_numpy()
    on_line = np.isin("_" + lines.index, grid.line.index)  # the others are trafo + shunt rows in gridtwin
    np.testing.assert_allclose(lines["p1"].to_numpy()[on_line], p_from[on_line], rtol=1e-12)


SMALLGRID = Path(__file__).resolve().parents[2].parent / "shared" / "cgmes" / "entsoe" / "entsoe_smallgrid_bc.zip"


@pytest.mark.skipif(not SMALLGRID.is_file(), reason=f"ENTSO-E SmallGrid not found at {SMALLGRID}")
def test_tap_steps_and_statuses_name_the_source_objects(tmp_path: Path) -> None:
    grid = cim.load(SMALLGRID)  # everything in SmallGrid is mapped: no CimImportWarning
    res = solvers.run_pf(grid, tol_mva=1e-9)
    root = etree.parse(str(export_sv(grid, res, tmp_path / "sv.xml"))).getroot()
    cim_ns, rdf = root.nsmap["cim"], "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}resource"
    steps = {
        e.find(f"{{{cim_ns}}}SvTapStep.TapChanger").get(rdf)[1:]: float(e.findtext(f"{{{cim_ns}}}SvTapStep.position"))
        for e in root.iter(f"{{{cim_ns}}}SvTapStep")
    }
    tap_changers = grid.meta["cim_tap_changers"]["tap_changer"]
    assert len(steps) == len(tap_changers) > 0
    for trafo_id, tc in tap_changers.items():
        assert steps[tc] == grid.trafo.at[trafo_id, "tap_pos"]
    n_status = sum(1 for _ in root.iter(f"{{{cim_ns}}}SvStatus"))
    assert n_status == len(grid.line) + len(grid.trafo) + len(grid.trafo3w) + len(grid.load) + len(grid.gen) + len(
        grid.sgen
    ) + len(grid.ext_grid) + len(grid.shunt)
    # every SvVoltage names a TopologicalNode of the source model
    nodes = {e.get(rdf)[1:] for e in root.iter(f"{{{cim_ns}}}SvVoltage.TopologicalNode")}
    assert nodes == set(grid.bus.index)
