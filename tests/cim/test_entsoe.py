"""ENTSO-E CGMES conformity sets (``../shared/cgmes/entsoe``) and the CGMES 3.0 / lxml reader.

Cite: "ENTSO-E CGMES conformity test configurations". The sets are read where they lie, never
copied. Note: the SmallGrid and MiniGrid zips named "v3.0.0" are CIM16 files (CGMES 2.4.15; the
version is that of the test configuration); only FullGrid merged is CGMES 3.0 (CIM100).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("cimpy")

import cim
import solvers
from cim.read_rdf import CIM100_CLASSES

ENTSOE = Path(__file__).resolve().parents[2].parent / "shared" / "cgmes" / "entsoe"
SMALLGRID = ENTSOE / "entsoe_smallgrid_bc.zip"
MINIGRID = ENTSOE / "entsoe_minigrid_t1.zip"
FULLGRID_BE = ENTSOE / "entsoe_fullgrid_nb_be.zip"
FULLGRID_CGMES3 = ENTSOE / "entsoe_fullgrid_merged_cgmes3.zip"
REALGRID = ENTSOE / "entsoe_realgrid.zip"

needs_entsoe = pytest.mark.skipif(not ENTSOE.is_dir(), reason=f"ENTSO-E conformity sets not found at {ENTSOE}")


def _sv_deviation(grid: Any, slack: str | None = None) -> tuple[float, float]:
    """Max |vm - SV| (pu) and max |va - SV| (deg, both referred to the slack bus) over SV buses."""
    res = solvers.run_pf(grid, slack=slack)
    sv = grid.meta["sv"]
    sv = sv[sv["v_kv"] > 0]
    vm = res.vm_pu.to_series().reindex(sv.index)
    va = res.va_deg.to_series().reindex(sv.index)
    dva = va - sv["angle_deg"]
    slack_bus = grid.gen.loc[grid.gen["slack"], "bus"].iloc[0] if slack is None else grid.gen.at[slack, "bus"]
    return float((vm - sv["vm_pu"]).abs().max()), float((dva - dva[slack_bus]).abs().max())


def _same_objects(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Differences between two cimpy object dicts (class, plain values, reference targets by mRID)."""

    def norm(v: Any) -> Any:
        if isinstance(v, list):
            return sorted(str(getattr(x, "mRID", type(x).__name__)) for x in v)
        if hasattr(v, "__dict__") and not isinstance(v, str):
            return ("ref", getattr(v, "mRID", type(v).__name__))
        return v

    diffs = list(a.keys() ^ b.keys())
    for k in a.keys() & b.keys():
        oa, ob = a[k], b[k]
        if type(oa).__name__ != type(ob).__name__:
            diffs.append(k)
            continue
        diffs += [f"{k}.{attr}" for attr, v in oa.__dict__.items() if norm(v) != norm(ob.__dict__.get(attr))]
    return diffs


@needs_entsoe
def test_smallgrid_imports() -> None:
    grid = cim.load(SMALLGRID)  # everything is mapped: no CimImportWarning (warnings are errors here)
    assert len(grid.bus) == 118  # topological nodes stated in the README
    assert (len(grid.line), len(grid.trafo), len(grid.load), len(grid.shunt)) == (176, 10, 103, 14)
    assert len(grid.meta["sv"]) == 118
    # its 13 LoadResponseCharacteristics are constant power (pConstantPower = qConstantPower = 1)
    report = grid.meta["cim_report"]
    assert report.at["LoadResponseCharacteristic", "imported"] == 13
    zip_cols = ["const_z_p_percent", "const_i_p_percent", "const_z_q_percent", "const_i_q_percent"]
    assert (grid.load[zip_cols] == 0).all().all()


@needs_entsoe
@pytest.mark.xfail(
    strict=True,
    reason="SmallGrid's SV is not a solution of its own data: at the SV voltages the PQ buses are left up to "
    "0.17 MVA unbalanced (magnetising='middle'; 2.2 MVA with 'end1'), while the SV's 7-digit values account for "
    "7e-4 MVA. Measured: 1.45e-4 pu / 7.2e-3 deg with 'middle', 2.1e-3 pu / 2.8e-2 deg with 'end1'. Its loads "
    "are constant power, its taps and shunt sections equal the SSH ones; PowSyBl agrees with gridtwin, not the SV",
)
def test_smallgrid_matches_its_sv_to_issue_tolerance() -> None:
    grid = cim.load(SMALLGRID, magnetising="middle")
    dvm, dva = _sv_deviation(grid)
    assert dvm < 1e-5, f"max |vm - SV| = {dvm:.3g} pu"
    assert dva < 1e-3, f"max |va - SV| = {dva:.3g} deg"


@needs_entsoe
def test_smallgrid_sv_leaves_a_mismatch_its_precision_does_not_explain() -> None:
    """Why the SV comparison above fails: the SV voltages do not balance the file's own injections."""
    grid = cim.load(SMALLGRID, magnetising="middle")
    model = solvers.compile_grid(grid)
    sv = grid.meta["sv"]
    exact = solvers.run_pf(model, tol_mva=1e-9)

    def worst_pq_mismatch_mva(vm: pd.Series, va_deg: pd.Series) -> float:
        v = np.zeros(model.n_bus, dtype=complex)
        on = model.grid_bus_idx >= 0
        ids = model.grid_bus_ids[on]
        v[model.grid_bus_idx[on]] = vm.reindex(ids).to_numpy() * np.exp(1j * np.deg2rad(va_deg.reindex(ids).to_numpy()))
        mis = v * np.conj(model.ybus @ v) * model.base_mva - model.s_bus_mva()
        return float(np.abs(mis[model.bus_type == 1]).max())

    def rounded(x: pd.Series) -> pd.Series:  # the SV file's precision: 7 significant digits (float32)
        return x.astype(np.float32).astype(float)

    kv = grid.bus["vn_kv"]
    assert worst_pq_mismatch_mva(sv["v_kv"] / kv.reindex(sv.index), sv["angle_deg"]) > 0.1  # measured 0.171
    vm, va = exact.vm_pu.to_series(), exact.va_deg.to_series()
    assert worst_pq_mismatch_mva(rounded(vm * kv) / kv, rounded(va)) < 2e-3  # measured 7e-4


@needs_entsoe
def test_lxml_reader_builds_the_objects_cimpy_builds() -> None:
    a = cim.read_cgmes(SMALLGRID, reader="lxml")
    b = cim.read_cgmes(SMALLGRID, reader="cimpy")
    assert len(a.objects) == len(b.objects) == 5877
    assert _same_objects(a.objects, b.objects) == []
    assert a.attributes == b.attributes


@needs_entsoe
def test_fullgrid_cgmes3_imports_through_the_fallback() -> None:
    with pytest.warns(cim.CimImportWarning) as record:
        grid = cim.load(FULLGRID_CGMES3)
    model = cim.read_cgmes(FULLGRID_CGMES3)
    assert model.cgmes_version == "3.0"
    assert len(grid.bus) == len(model.of_class("TopologicalNode")) == 25
    # lines between buses of different nominal voltage (to the 400/225 kV boundary nodes) are 1:1 trafos
    assert (len(grid.line), len(grid.trafo), len(grid.trafo3w), len(grid.shunt)) == (6, 15, 1, 14)
    assert len(grid.meta["sv"]) == 25
    assert all(i.startswith("_") for i in grid.bus.index)  # rdf ids, not IdentifiedObject.mRID
    # CGMES 3.0 classes unknown to cimpy are placeholders: reported and warned, not dropped
    (warned,) = (str(w.message) for w in record)
    assert "Clamp 1" in warned
    assert set(CIM100_CLASSES) >= {"Clamp", "Cut", "DisconnectingCircuitBreaker"}
    # DisconnectingCircuitBreaker (new in 3.0) is a breaker; the linear phase shifter has tap columns
    report = grid.meta["cim_report"]
    assert report.at["DisconnectingCircuitBreaker", "imported"] == 1  # inside one TopologicalNode here
    with pytest.warns(cim.CimImportWarning):
        nb = cim.load(FULLGRID_CGMES3, buses="connectivity")
    assert nb.switch.at[_dcb_id(model), "type"] == "CB"
    assert report.at["PhaseTapChangerLinear", "imported"] == 1
    # its tabular phase shifter's table has no point for its step 6: named in the warning, not applied
    assert "PhaseTapChangerTabular '_14532a5a-b4f0-49a9-95e5-817a21ac809b'" in warned
    assert report.at["PhaseTapChangerTabular", "imported"] == 0
    # PATL from eu:OperationalLimitType.kind, value from SSH CurrentLimit.value (normalValue in EQ)
    assert "patl" in model.limit_types.values()
    assert (grid.line["max_i_ka"] < math.inf).any()


def _dcb_id(model: Any) -> str:
    (dcb,) = model.of_class("DisconnectingCircuitBreaker")
    return str(dcb.mRID)


@needs_entsoe
@pytest.mark.filterwarnings("ignore:CIM classes not imported:cim.CimImportWarning")
@pytest.mark.filterwarnings("ignore:.* buses of 'FullGrid_EQ' are not connected to a slack:UserWarning")
@pytest.mark.xfail(
    strict=True,
    reason="measured 5.0e-2 pu / 23 deg against its SV: FullGrid holds HVDC (CsConverter, VsConverter, DC lines), "
    "series compensators, equivalent branches and shunts and power-electronics units that gridtwin does not map "
    "(warned); OpenLoadFlow does not converge on it (test_entsoe_powsybl)",
)
def test_fullgrid_cgmes3_solves_like_its_sv() -> None:
    dvm, dva = _sv_deviation(cim.load(FULLGRID_CGMES3))
    assert dvm < 1e-5, f"max |vm - SV| = {dvm:.3g} pu"
    assert dva < 1e-3, f"max |va - SV| = {dva:.3g} deg"


_MINIGRID_BOUNDARY = ("_8372a156-7579-4ea5-1111-24caf0d24603", "_8372a156-7579-4ea5-2222-24caf0d24603")


@needs_entsoe
def test_minigrid_boundary_nodes_without_boundary_set_become_buses() -> None:
    # the set ships without its boundary set: TP refers to 2 TopologicalNodes no file defines, each holding a
    # line end and an EquivalentInjection (SV has voltages for them)
    with pytest.warns(
        cim.CimImportWarning, match=r"boundary nodes named by Terminals.*\(2\): " + _MINIGRID_BOUNDARY[0]
    ):
        grid = cim.load(MINIGRID)
    assert set(_MINIGRID_BOUNDARY) <= set(grid.bus.index)
    assert grid.bus.loc[list(_MINIGRID_BOUNDARY), "vn_kv"].tolist() == [380.0, 110.0]  # their lines' BaseVoltage
    assert grid.sgen.loc[grid.sgen["bus"].isin(_MINIGRID_BOUNDARY), "name"].tolist() == ["Injection1", "Injection2"]


@needs_entsoe
def test_minigrid_node_breaker_imports_and_agrees_with_bus_branch() -> None:
    # ConnectivityNodes in Bays get their voltage through Bay -> VoltageLevel -> BaseVoltage
    with pytest.warns(cim.CimImportWarning, match="boundary nodes"):
        nb = cim.load(MINIGRID, buses="connectivity")
    with pytest.warns(cim.CimImportWarning, match="boundary nodes"):
        bb = cim.load(MINIGRID)
    model = cim.read_cgmes(MINIGRID)
    assert len(nb.bus) == len(model.of_class("ConnectivityNode")) + 2 == 103
    assert len(nb.switch) == 90 + 1  # the switches, and the open end of the boundary line XQ1-N1
    assert (nb.bus["vn_kv"] > 0).all()
    with pytest.warns(UserWarning, match="not connected to a slack"):
        res_nb = solvers.run_pf(nb, tol_mva=1e-9)
    with pytest.warns(UserWarning, match="not connected to a slack"):
        res_bb = solvers.run_pf(bb, tol_mva=1e-9)
    tn = nb.meta["topological_node"].reindex(nb.bus.index).fillna(pd.Series(nb.bus.index, index=nb.bus.index))
    joined = pd.DataFrame({"tn": tn, "vm": res_nb.vm_pu.to_series()}).dropna()
    assert len(joined) > 20
    np.testing.assert_allclose(joined["vm"], res_bb.vm_pu.to_series().reindex(joined["tn"]), atol=1e-9)


@needs_entsoe
def test_fullgrid_be_imports() -> None:
    # the boundary Junction's Terminal has only a ConnectivityNode in TP_BD: left out with its Junction
    with pytest.warns(cim.CimImportWarning, match="CsConverter 2"):
        grid = cim.load(FULLGRID_BE)
    assert len(grid.bus) == 26
    assert grid.meta["cim_report"].at["Junction", "note"] == "no power-flow role in gridtwin"
    tc = grid.meta["cim_tap_changers"]
    # Linear, Symmetrical and Asymmetrical phase shifters in tap columns; 7 ratio tap changers
    assert set(grid.trafo["tap_changer_type"]) >= {"Ideal", "Ratio"}
    assert len(tc) == 7 + 3


@needs_entsoe
def test_realgrid_imports_in_seconds(record_property: pytest.RecordProperty) -> None:
    start = time.perf_counter()
    grid = cim.load(REALGRID)  # everything mapped: no CimImportWarning
    seconds = time.perf_counter() - start
    # 9 tabular phase shifters, fixed at their SSH step (shift_degree, ratio and impedance from the table)
    tc = grid.meta["cim_tap_changers"]
    assert tc["tap_changer"].str.endswith("_PT_PTC").sum() == 9
    assert tc.loc[tc["tap_changer"] == "_425859519_PT_PTC", "step"].item() == 6.0
    assert grid.trafo.at["_425859519_PT", "shift_degree"] == pytest.approx(6.316094)  # table angle -6.316, on end 2
    # 511 lines and 42 transformers with one Terminal disconnected stay in service, open at that end (as PowSyBl)
    assert grid.switch["et"].value_counts().to_dict() == {"l": 511, "t": 42}
    assert not grid.switch["closed"].any()
    assert grid.switch.index.str.fullmatch(r".*_open[12]").all()
    # README: 6,258 topological nodes, 7,561 lines, 1,509 transformers; measured 3.7 s (cimpy reader: 12 s)
    assert (len(grid.bus), len(grid.line), len(grid.trafo)) == (6258, 7561, 1509)
    assert len(grid.meta["sv"]) == 6258
    record_property("realgrid_import_s", round(seconds, 2))  # reported, not asserted (no timing assertions)


@needs_entsoe
@pytest.mark.slow
def test_realgrid_lxml_reader_builds_the_objects_cimpy_builds() -> None:
    a = cim.read_cgmes(REALGRID, reader="lxml")
    b = cim.read_cgmes(REALGRID, reader="cimpy")
    assert len(a.objects) == len(b.objects) == 149162
    assert _same_objects(a.objects, b.objects) == []


# --- CGMES 3.0 specifics on a two-bus model written here ---------------------------------------

_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    'xmlns:cim="http://iec.ch/TC57/CIM100#" xmlns:eu="http://iec.ch/TC57/CIM100-European#" '
    'xmlns:md="http://iec.ch/TC57/61970-552/ModelDescription/1#">\n'
)
_EQ = """<md:FullModel rdf:about="urn:uuid:m1">
 <md:Model.profile>http://iec.ch/TC57/ns/CIM/CoreEquipment-EU/3.0</md:Model.profile>
 </md:FullModel>
<cim:BaseVoltage rdf:about="urn:uuid:bv">
 <cim:BaseVoltage.nominalVoltage>110</cim:BaseVoltage.nominalVoltage>
 </cim:BaseVoltage>
<cim:ACLineSegment rdf:ID="_ln"><cim:IdentifiedObject.mRID>ln</cim:IdentifiedObject.mRID>
 <cim:ACLineSegment.r>1.0</cim:ACLineSegment.r><cim:ACLineSegment.x>4.0</cim:ACLineSegment.x>
 <cim:ACLineSegment.bch>0</cim:ACLineSegment.bch>
 <cim:ACLineSegment.gch>0</cim:ACLineSegment.gch>
 </cim:ACLineSegment>
<cim:ExternalNetworkInjection rdf:ID="_eni">
 <cim:ExternalNetworkInjection.referencePriority>1</cim:ExternalNetworkInjection.referencePriority>
 </cim:ExternalNetworkInjection>
<cim:EnergyConsumer rdf:ID="_ld"/>
<cim:EnergyConsumer rdf:ID="_ld2"/>
<cim:Terminal rdf:ID="_t1">
 <cim:ACDCTerminal.sequenceNumber>1</cim:ACDCTerminal.sequenceNumber>
 <cim:Terminal.ConductingEquipment rdf:resource="#_ln"/>
 </cim:Terminal>
<cim:Terminal rdf:ID="_t2">
 <cim:ACDCTerminal.sequenceNumber>2.000000</cim:ACDCTerminal.sequenceNumber>
 <cim:Terminal.ConductingEquipment rdf:resource="urn:uuid:ln"/>
 </cim:Terminal>
<cim:Terminal rdf:ID="_t3">
 <cim:ACDCTerminal.sequenceNumber>1</cim:ACDCTerminal.sequenceNumber>
 <cim:Terminal.ConductingEquipment rdf:resource="#_eni"/>
 </cim:Terminal>
<cim:Terminal rdf:ID="_t4">
 <cim:ACDCTerminal.sequenceNumber>1</cim:ACDCTerminal.sequenceNumber>
 <cim:Terminal.ConductingEquipment rdf:resource="#_ld"/>
 </cim:Terminal>
<cim:Terminal rdf:ID="_t5">
 <cim:ACDCTerminal.sequenceNumber>1</cim:ACDCTerminal.sequenceNumber>
 <cim:Terminal.ConductingEquipment rdf:resource="#_ld2"/>
 </cim:Terminal>
<cim:OperationalLimitType rdf:ID="_olt">
 <eu:OperationalLimitType.kind rdf:resource="http://iec.ch/TC57/CIM100-European#LimitKind.patl"/>
 </cim:OperationalLimitType>
<cim:OperationalLimitSet rdf:ID="_ols">
 <cim:OperationalLimitSet.Terminal rdf:resource="#_t1"/>
 </cim:OperationalLimitSet>
<cim:CurrentLimit rdf:ID="_cl">
 <cim:OperationalLimit.OperationalLimitSet rdf:resource="#_ols"/>
 <cim:OperationalLimit.OperationalLimitType rdf:resource="#_olt"/>
 <cim:CurrentLimit.normalValue>500</cim:CurrentLimit.normalValue>
 </cim:CurrentLimit>
"""
_TP = """<cim:TopologicalNode rdf:ID="_n1">
 <cim:TopologicalNode.BaseVoltage rdf:resource="urn:uuid:bv"/>
 </cim:TopologicalNode>
<cim:TopologicalNode rdf:ID="_n2"><cim:TopologicalNode.BaseVoltage rdf:resource="#_bv"/></cim:TopologicalNode>
<cim:Terminal rdf:about="#_t1"><cim:Terminal.TopologicalNode rdf:resource="#_n1"/></cim:Terminal>
<cim:Terminal rdf:about="#_t2"><cim:Terminal.TopologicalNode rdf:resource="#_n2"/></cim:Terminal>
<cim:Terminal rdf:about="#_t3"><cim:Terminal.TopologicalNode rdf:resource="#_n1"/></cim:Terminal>
<cim:Terminal rdf:about="#_t4"><cim:Terminal.TopologicalNode rdf:resource="#_n2"/></cim:Terminal>
<cim:Terminal rdf:about="#_t5"><cim:Terminal.TopologicalNode rdf:resource="#_n2"/></cim:Terminal>
"""
_SSH = """<cim:EnergyConsumer rdf:about="#_ld">
 <cim:EnergyConsumer.p>20</cim:EnergyConsumer.p>
 <cim:EnergyConsumer.q>5</cim:EnergyConsumer.q>
 </cim:EnergyConsumer>
<cim:EnergyConsumer rdf:about="#_ld2">
 <cim:Equipment.inService>false</cim:Equipment.inService>
 <cim:EnergyConsumer.p>30</cim:EnergyConsumer.p>
 </cim:EnergyConsumer>
<cim:ExternalNetworkInjection rdf:about="#_eni">
 <cim:ExternalNetworkInjection.p>0</cim:ExternalNetworkInjection.p>
 </cim:ExternalNetworkInjection>
<cim:Terminal rdf:about="urn:uuid:t1">
 <cim:ACDCTerminal.connected>true</cim:ACDCTerminal.connected>
 </cim:Terminal>
<cim:Terminal rdf:about="#_t2"><cim:ACDCTerminal.connected>true</cim:ACDCTerminal.connected></cim:Terminal>
<cim:Terminal rdf:about="#_t3"><cim:ACDCTerminal.connected>true</cim:ACDCTerminal.connected></cim:Terminal>
<cim:Terminal rdf:about="#_t4"><cim:ACDCTerminal.connected>true</cim:ACDCTerminal.connected></cim:Terminal>
<cim:Terminal rdf:about="#_t5"><cim:ACDCTerminal.connected>true</cim:ACDCTerminal.connected></cim:Terminal>
"""


def _write_cgmes3(folder: Path, eq: str = _EQ) -> Path:
    folder.mkdir()
    for tag, body in (("EQ", eq), ("TP", _TP), ("SSH", _SSH)):
        (folder / f"two_bus_{tag}.xml").write_text(_HEAD + body + "</rdf:RDF>\n", encoding="utf-8")
    return folder


def test_cgmes3_ids_limits_and_in_service(tmp_path: Path) -> None:
    grid = cim.load(_write_cgmes3(tmp_path / "m"))
    assert sorted(grid.bus.index) == ["_n1", "_n2"]  # '#_n1' and 'urn:uuid:bv' style refs resolve alike
    assert (grid.bus["vn_kv"] == 110.0).all()
    assert grid.line.at["_ln", "max_i_ka"] == pytest.approx(0.5)  # normalValue, kind patl
    assert (grid.line.at["_ln", "from_bus"], grid.line.at["_ln", "to_bus"]) == ("_n1", "_n2")
    assert grid.load.at["_ld", "p_mw"] == 20.0
    assert not grid.load.at["_ld2", "in_service"]  # Equipment.inService false
    assert grid.ext_grid.index.tolist() == ["_eni"]
    res = solvers.run_pf(grid)
    assert float(res.vm_pu.sel(bus="_n2")) < 1.0


def test_cgmes3_value_that_is_no_number_names_file_and_mrid(tmp_path: Path) -> None:
    folder = _write_cgmes3(tmp_path / "m", eq=_EQ.replace("<cim:ACLineSegment.r>1.0<", "<cim:ACLineSegment.r>1,0<"))
    with pytest.raises(cim.CgmesReadError, match=r"two_bus_EQ\.xml: ACLineSegment '_ln': ACLineSegment\.r = '1,0'"):
        cim.load(folder)


def test_cgmes3_and_2_4_15_files_cannot_be_mixed(tmp_path: Path) -> None:
    folder = _write_cgmes3(tmp_path / "m")
    ssh = folder / "two_bus_SSH.xml"
    ssh.write_text(
        ssh.read_text(encoding="utf-8").replace(
            "http://iec.ch/TC57/CIM100#", "http://iec.ch/TC57/2013/CIM-schema-cim16#"
        ),
        encoding="utf-8",
    )
    with pytest.raises(cim.CgmesReadError, match=r"two_bus_SSH\.xml: CIM namespace .* cannot be mixed"):
        cim.load(folder)
