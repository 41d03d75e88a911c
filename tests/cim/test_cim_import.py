"""CGMES import through cimpy: the samples cimpy ships, solved and compared with their own SV, and bad input."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("cimpy")

import cimpy

import cim
import solvers

SAMPLES = Path(cimpy.__file__).parent / "examples" / "sampledata"
CIGRE = SAMPLES / "CIGRE_MV"
SWITCHES = SAMPLES / "Sample_Grid_Switches"
VM_TOL_PU = 1e-5
VA_TOL_DEG = 1e-3


@pytest.fixture
def cigre_copy(tmp_path: Path) -> Path:
    """A writable copy of the CIGRE MV sample (EQ, TP, SV, DI)."""
    out = tmp_path / "cigre"
    shutil.copytree(CIGRE, out, ignore=shutil.ignore_patterns("__*"))
    return out


def _profile(folder: Path, tag: str) -> Path:
    (path,) = folder.glob(f"*_{tag}.xml")
    return path


def _sv_deviation(grid: object) -> tuple[float, float]:
    res = solvers.run_pf(grid)
    sv = grid.meta["sv"]
    vm = res.vm_pu.to_series().reindex(sv.index)
    va = res.va_deg.to_series().reindex(sv.index)
    return float((vm - sv["vm_pu"]).abs().max()), float((va - sv["angle_deg"]).abs().max())


def test_cigre_mv_power_flow_matches_sv() -> None:
    # NEPLAN solved its SV with the magnetising branch in the middle of the T model (3.8e-5 pu with "end1")
    grid = cim.load(CIGRE, magnetising="middle")
    assert len(grid.bus) == 15
    assert len(grid.line) == 12
    assert len(grid.trafo) == 2
    assert len(grid.load) == 18
    assert grid.ext_grid.index.tolist() == ["HV-Netz"]
    assert grid.meta["slack"] == "HV-Netz"
    assert grid.line.at["L12-13", "max_i_ka"] == pytest.approx(0.32)  # PATL (named so by NEPLAN), not TATL
    dvm, dva = _sv_deviation(grid)
    assert dvm < VM_TOL_PU, f"max |vm - SV| = {dvm:.3g} pu"
    assert dva < VA_TOL_DEG, f"max |va - SV| = {dva:.3g} deg"


def test_cigre_mv_report_and_value_sources() -> None:
    grid = cim.load(CIGRE)
    report = grid.meta["cim_report"]
    assert report.loc["ACLineSegment", "imported"] == 12
    assert report.loc["EnergyConsumer", "table"] == "load"
    assert report.loc["DiagramObject", "note"] == "no power-flow role in gridtwin"
    assert not report["unsupported"].any()
    notes = " ".join(grid.meta["cim_notes"])
    assert "SvPowerFlow" in notes  # no SSH in this sample: loads from the SV flows
    assert "SvVoltage" in notes  # and the slack set-point from the SV voltage
    sv = grid.meta["sv"]
    assert sv.loc["N0", "v_kv"] == pytest.approx(110.0)


def test_zip_input_gives_the_same_grid(tmp_path: Path) -> None:
    archive = tmp_path / "cigre.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in CIGRE.glob("*.xml"):
            zf.write(f, f.name)
    a, b = cim.load(CIGRE), cim.load(archive)
    for table in ("bus", "line", "trafo", "load", "ext_grid"):
        pd.testing.assert_frame_equal(a[table].sort_index(), b[table].sort_index())


def test_integers_written_as_decimals_are_read(cigre_copy: Path) -> None:
    eq = _profile(cigre_copy, "EQ")
    text = eq.read_text(encoding="utf-8")
    eq.write_text(
        text.replace("<cim:Terminal.sequenceNumber>1<", "<cim:Terminal.sequenceNumber>1.000000<"), encoding="utf-8"
    )
    assert "1.000000</cim:Terminal.sequenceNumber>" in eq.read_text(encoding="utf-8")
    dvm, dva = _sv_deviation(cim.load(cigre_copy, magnetising="middle"))
    assert dvm < VM_TOL_PU
    assert dva < VA_TOL_DEG


def _solve_islands(grid: object, slacks: list[str]) -> pd.DataFrame:
    """Solve each island once with its own slack bus and stack the energised results."""
    parts = []
    for s in slacks:
        with pytest.warns(UserWarning, match="not connected to a slack"):
            res = solvers.run_pf(grid, slack=s)
        df = pd.DataFrame({"vm_pu": res.vm_pu.to_series(), "va_deg": res.va_deg.to_series()})
        parts.append(df.dropna())
    return pd.concat(parts)


def test_switches_node_breaker_agrees_with_bus_branch() -> None:
    bb = cim.load(SWITCHES / "Bus-Branch")
    nb = cim.load(SWITCHES / "Node-Breaker", buses="connectivity")
    assert len(nb.switch) == 10
    assert (nb.switch["et"] == "b").all()
    assert (~nb.switch["closed"]).sum() == 5
    tn_of = nb.meta["topological_node"]
    # the sample has no sources: one slack bus per island (the from bus of each line)
    slacks_bb = bb.line["from_bus"].tolist()
    slacks_nb = [tn_of[tn_of == tn].index[0] for tn in slacks_bb]
    res_bb = _solve_islands(bb, slacks_bb)
    res_nb = _solve_islands(nb, slacks_nb)
    res_nb.index = tn_of.reindex(res_nb.index).to_numpy()
    res_nb = res_nb.groupby(level=0).first()
    assert set(res_nb.index) == set(res_bb.index)
    joined = res_bb.join(res_nb, rsuffix="_nb")
    assert np.abs(joined["vm_pu"] - joined["vm_pu_nb"]).max() < 1e-9
    assert np.abs(joined["va_deg"] - joined["va_deg_nb"]).max() < 1e-9
    assert len(joined) == 11  # three islands of 5, 4 and 2 nodes; one node sits behind open breakers only
    assert (joined["vm_pu"] >= 1.0).all()  # line charging without load lifts the voltage


def test_switches_node_breaker_with_tp_uses_topological_nodes() -> None:
    grid = cim.load(SWITCHES / "Node-Breaker")
    bb = cim.load(SWITCHES / "Bus-Branch")
    assert sorted(grid.bus.index) == sorted(bb.bus.index)
    assert grid.line["max_i_ka"].tolist() == pytest.approx([0.963] * 3)  # entsoe:limitType patl, not read by cimpy
    assert grid.meta["cim_report"].loc["Breaker", "imported"] == 10


def test_malformed_xml_names_the_file(cigre_copy: Path) -> None:
    tp = _profile(cigre_copy, "TP")
    tp.write_text(tp.read_text(encoding="utf-8")[:-200], encoding="utf-8")
    with pytest.raises(cim.CgmesReadError, match=r"Rootnet_FULL_NE_24J13h_TP\.xml: malformed XML"):
        cim.load(cigre_copy)


def test_unreadable_input_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(cim.CgmesReadError, match=r"missing_EQ\.xml"):
        cim.load([tmp_path / "missing_EQ.xml"])
    with pytest.raises(cim.CgmesReadError, match=r"no \.xml or \.zip"):
        cim.load(tmp_path)


def test_terminal_to_missing_node_names_the_mrid(cigre_copy: Path) -> None:
    tp = _profile(cigre_copy, "TP")
    text = tp.read_text(encoding="utf-8")
    tp.write_text(text.replace('rdf:resource="#N13"/>', 'rdf:resource="#N_missing"/>', 1), encoding="utf-8")
    with pytest.raises(cim.CimMappingError, match=r"Terminal 'E-302' refers to TopologicalNode 'N_missing'"):
        cim.load(cigre_copy)


def test_unsupported_equipment_is_warned_with_counts(cigre_copy: Path) -> None:
    eq = _profile(cigre_copy, "EQ")
    extra = (
        '<cim:SeriesCompensator rdf:ID="_sc1"><cim:IdentifiedObject.name>SC1</cim:IdentifiedObject.name>'
        "</cim:SeriesCompensator>\n</rdf:RDF>"
    )
    eq.write_text(eq.read_text(encoding="utf-8").replace("</rdf:RDF>", extra), encoding="utf-8")
    with pytest.warns(cim.CimImportWarning, match="SeriesCompensator 1"):
        grid = cim.load(cigre_copy)
    row = grid.meta["cim_report"].loc["SeriesCompensator"]
    assert row["unsupported"]
    assert row["imported"] == 0


def test_zero_impedance_line_names_the_mrid(cigre_copy: Path) -> None:
    eq = _profile(cigre_copy, "EQ")
    text = eq.read_text(encoding="utf-8")
    start = text.index('<cim:ACLineSegment rdf:ID="L12-13">')
    end = text.index("</cim:ACLineSegment>", start)
    seg = text[start:end]
    for tag in ("r", "x"):
        i = seg.index(f"<cim:ACLineSegment.{tag}>") + len(f"<cim:ACLineSegment.{tag}>")
        j = seg.index("<", i)
        seg = seg[:i] + "0" + seg[j:]
    eq.write_text(text[:start] + seg + text[end:], encoding="utf-8")
    with pytest.raises(cim.CimMappingError, match="ACLineSegment 'L12-13' has zero impedance"):
        cim.load(cigre_copy)
