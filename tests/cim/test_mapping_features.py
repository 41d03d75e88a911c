"""Mapping features on small CGMES models written here: load responses, one slack per island, tap changer laws."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import cim
import solvers
from cim.mapping.taps import Taps, _apply_fixed, _ratio_angle, map_taps
from solvers.branch_model import _tap_adjusted_voltages

pytest.importorskip("cimpy")

_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    'xmlns:cim="http://iec.ch/TC57/CIM100#">\n'
)
_MODE = "http://iec.ch/TC57/CIM100#RegulatingControlModeKind.voltage"


def _terminal(tid: str, eq: str, node: str, seq: int = 1) -> tuple[str, str]:
    eq_part = (
        f'<cim:Terminal rdf:ID="{tid}"><cim:ACDCTerminal.sequenceNumber>{seq}</cim:ACDCTerminal.sequenceNumber>'
        f'<cim:Terminal.ConductingEquipment rdf:resource="#{eq}"/></cim:Terminal>\n'
    )
    tp_part = (
        f'<cim:Terminal rdf:about="#{tid}"><cim:Terminal.TopologicalNode rdf:resource="#{node}"/></cim:Terminal>\n'
    )
    return eq_part, tp_part


def _line(lid: str, a: str, b: str) -> tuple[str, str]:
    eq = (
        f'<cim:ACLineSegment rdf:ID="{lid}"><cim:ACLineSegment.r>2.0</cim:ACLineSegment.r>'
        "<cim:ACLineSegment.x>8.0</cim:ACLineSegment.x><cim:ACLineSegment.bch>1e-5</cim:ACLineSegment.bch>"
        "<cim:ACLineSegment.gch>0</cim:ACLineSegment.gch></cim:ACLineSegment>\n"
    )
    t1, t2 = _terminal(f"{lid}_t1", lid, a, 1), _terminal(f"{lid}_t2", lid, b, 2)
    return eq + t1[0] + t2[0], t1[1] + t2[1]


def _load(lid: str, node: str, p: float, q: float, lrc: str | None) -> tuple[str, str, str]:
    ref = f'<cim:EnergyConsumer.LoadResponse rdf:resource="#{lrc}"/>' if lrc else ""
    t = _terminal(f"{lid}_t", lid, node)
    ssh = (
        f'<cim:EnergyConsumer rdf:about="#{lid}"><cim:EnergyConsumer.p>{p}</cim:EnergyConsumer.p>'
        f"<cim:EnergyConsumer.q>{q}</cim:EnergyConsumer.q></cim:EnergyConsumer>\n"
    )
    return f'<cim:EnergyConsumer rdf:ID="{lid}">{ref}</cim:EnergyConsumer>\n' + t[0], t[1], ssh


def _machine(mid: str, node: str, p: float, rated_s: float, kv: float) -> tuple[str, str, str]:
    t = _terminal(f"{mid}_t", mid, node)
    eq = (
        f'<cim:SynchronousMachine rdf:ID="{mid}"><cim:RotatingMachine.ratedS>{rated_s}</cim:RotatingMachine.ratedS>'
        f'<cim:RegulatingCondEq.RegulatingControl rdf:resource="#{mid}_rc"/></cim:SynchronousMachine>\n'
        f'<cim:RegulatingControl rdf:ID="{mid}_rc"><cim:RegulatingControl.Terminal rdf:resource="#{mid}_t"/>'
        f'<cim:RegulatingControl.mode rdf:resource="{_MODE}"/></cim:RegulatingControl>\n'
    )
    ssh = (
        f'<cim:SynchronousMachine rdf:about="#{mid}"><cim:RotatingMachine.p>{-p}</cim:RotatingMachine.p>'
        "<cim:RotatingMachine.q>0</cim:RotatingMachine.q>"
        "<cim:RegulatingCondEq.controlEnabled>true</cim:RegulatingCondEq.controlEnabled></cim:SynchronousMachine>\n"
        f'<cim:RegulatingControl rdf:about="#{mid}_rc"><cim:RegulatingControl.enabled>true'
        f"</cim:RegulatingControl.enabled><cim:RegulatingControl.targetValue>{kv}</cim:RegulatingControl.targetValue>"
        "</cim:RegulatingControl>\n"
    )
    return eq + t[0], t[1], ssh


def _lrc(lrc: str, **values: float | bool) -> str:
    body = "".join(
        f"<cim:LoadResponseCharacteristic.{k}>{str(v).lower()}</cim:LoadResponseCharacteristic.{k}>"
        for k, v in values.items()
    )
    return f'<cim:LoadResponseCharacteristic rdf:ID="{lrc}">{body}</cim:LoadResponseCharacteristic>\n'


def _two_islands(folder: Path) -> Path:
    """Island A: n1-n2 fed by an ExternalNetworkInjection (referencePriority 1), a ZIP and an exponent load.
    Island B: n3-n4 with two voltage-regulating machines (the larger one is the slack) and a load."""
    eq = [
        '<cim:BaseVoltage rdf:ID="bv"><cim:BaseVoltage.nominalVoltage>110</cim:BaseVoltage.nominalVoltage>'
        "</cim:BaseVoltage>\n",
        '<cim:ExternalNetworkInjection rdf:ID="eni"><cim:ExternalNetworkInjection.referencePriority>1'
        "</cim:ExternalNetworkInjection.referencePriority></cim:ExternalNetworkInjection>\n",
        _lrc(
            "zip",
            exponentModel=False,
            pConstantImpedance=0.3,
            pConstantCurrent=0.2,
            pConstantPower=0.5,
            qConstantImpedance=1.0,
            qConstantCurrent=0.0,
            qConstantPower=0.0,
        ),
        _lrc("expo", exponentModel=True, pVoltageExponent=1.5, qVoltageExponent=2.0),
    ]
    tp = [
        "".join(
            f'<cim:TopologicalNode rdf:ID="{n}"><cim:TopologicalNode.BaseVoltage rdf:resource="#bv"/>'
            "</cim:TopologicalNode>\n"
            for n in ("n1", "n2", "n3", "n4")
        )
    ]
    ssh = [
        '<cim:ExternalNetworkInjection rdf:about="#eni"><cim:ExternalNetworkInjection.p>0'
        "</cim:ExternalNetworkInjection.p></cim:ExternalNetworkInjection>\n"
    ]
    t = _terminal("eni_t", "eni", "n1")
    eq.append(t[0])
    tp.append(t[1])
    for part in (_line("ln_a", "n1", "n2"), _line("ln_b", "n3", "n4")):
        eq.append(part[0])
        tp.append(part[1])
    for part in (
        _load("ld_zip", "n2", 30.0, 10.0, "zip"),
        _load("ld_exp", "n2", 20.0, 5.0, "expo"),
        _load("ld_b", "n4", 40.0, 10.0, None),
        _machine("sm_small", "n3", 10.0, 50.0, 112.0),
        _machine("sm_big", "n4", 25.0, 300.0, 111.0),
    ):
        eq.append(part[0])
        tp.append(part[1])
        ssh.append(part[2])
    folder.mkdir()
    for tag, body in (("EQ", eq), ("TP", tp), ("SSH", ssh)):
        (folder / f"m_{tag}.xml").write_text(_HEAD + "".join(body) + "</rdf:RDF>\n", encoding="utf-8")
    return folder


def test_load_response_characteristics_become_zip_shares_and_solve(tmp_path: Path) -> None:
    with pytest.warns(cim.CimImportWarning, match=r"not mapped exactly .*\(1\): expo \(pVoltageExponent 1\.5\)"):
        grid = cim.load(_two_islands(tmp_path / "m"))
    zip_row = grid.load.loc["ld_zip"]
    assert zip_row[["const_z_p_percent", "const_i_p_percent"]].tolist() == pytest.approx([30.0, 20.0])
    assert zip_row[["const_z_q_percent", "const_i_q_percent"]].tolist() == pytest.approx([100.0, 0.0])
    # V**1.5: the ZIP mix with the same value and slope at 1 pu (50 % I, 50 % Z); V**2 exactly constant Z
    exp_row = grid.load.loc["ld_exp"]
    assert exp_row[["const_z_p_percent", "const_i_p_percent", "const_z_q_percent"]].tolist() == pytest.approx(
        [50.0, 50.0, 100.0]
    )
    res = solvers.run_pf(grid, tol_mva=1e-9)
    v = float(res.vm_pu.sel(bus="n2"))
    assert v < 0.99
    expected_p = 30.0 * (0.5 + 0.2 * v + 0.3 * v**2) + 20.0 * (0.5 * v + 0.5 * v**2)
    expected_q = 10.0 * v**2 + 5.0 * v**2
    assert float(res.p_mw.sel(bus="n2")) == pytest.approx(expected_p, abs=1e-9)
    assert float(res.q_mvar.sel(bus="n2")) == pytest.approx(expected_q, abs=1e-9)


@pytest.mark.filterwarnings("ignore:LoadResponseCharacteristics not mapped exactly:cim.CimImportWarning")
def test_each_energised_island_gets_its_own_slack(tmp_path: Path) -> None:
    grid = cim.load(_two_islands(tmp_path / "m"))
    # island A: the ExternalNetworkInjection by referencePriority; island B: the larger machine by ratedS
    assert sorted(grid.meta["slacks"]) == ["eni", "sm_big"]
    assert grid.ext_grid.index.tolist() == ["eni"]
    assert grid.gen["slack"].to_dict() == {"sm_small": False, "sm_big": True}
    model = solvers.compile_grid(grid)  # no "not connected to a slack" warning: both islands energised
    assert (model.bus_type == 3).sum() == 2
    res = solvers.run_pf(grid, tol_mva=1e-9)
    assert float(res.vm_pu.sel(bus="n4")) == pytest.approx(111.0 / 110.0)
    assert float(res.vm_pu.sel(bus="n3")) == pytest.approx(112.0 / 110.0)  # the other machine stays PV
    # slack= overrides the choice in its own island only
    over = solvers.compile_grid(grid, slack="sm_small")
    assert (over.bus_type == 3).sum() == 2


# --- tap changer laws: pandapower's tap columns against the fixed equivalent at the same step --------------


def _tap_changer(cls: str, **attrs: float) -> object:
    module = __import__(f"cimpy.cgmes_v2_4_15.{cls}", fromlist=[cls])
    tc = getattr(module, cls)()
    tc.__dict__.update({"lowStep": 1, "highStep": 25, "neutralStep": 13, "mRID": "tc"} | attrs)
    return tc


@pytest.mark.parametrize(
    ("cls", "attrs"),
    [
        ("RatioTapChanger", {"stepVoltageIncrement": 1.25}),
        ("PhaseTapChangerLinear", {"stepPhaseShiftIncrement": 1.99}),
        ("PhaseTapChangerSymmetrical", {"voltageStepIncrement": 1.25}),
        ("PhaseTapChangerAsymmetrical", {"voltageStepIncrement": 1.25, "windingConnectionAngle": 60.0}),
    ],
)
@pytest.mark.parametrize("side", ["hv", "lv"])
@pytest.mark.parametrize("step", [4.0, 13.0, 20.0])
def test_tap_columns_follow_the_same_law_as_the_fixed_equivalent(
    cls: str, attrs: dict[str, float], side: str, step: float
) -> None:
    """The column form (exact at every step) equals the fixed form checked against PowSyBl on RealGrid."""
    tc = _tap_changer(cls, step=step, **attrs)

    class _End:
        mRID = "end"
        x = 10.0

    class _Model:
        @staticmethod
        def has(tag: str) -> bool:
            return tag == "TapChanger.step"

    index = type("I", (), {"ratio": {}, "phase": {}, "points": {}})()
    (index.ratio if cls == "RatioTapChanger" else index.phase)["end"] = tc
    taps = map_taps({side: _End()}, _Model(), index)  # type: ignore[arg-type]
    col = taps.columns
    assert col["tap_pos"] == step
    one = np.ones(1)
    vnh, vnl, shift = _tap_adjusted_voltages(
        220.0 * one,
        110.0 * one,
        0.0 * one,
        np.array([col["tap_side"]], dtype=object),
        col["tap_pos"] * one,
        col["tap_neutral"] * one,
        col["tap_step_percent"] * one,
        col["tap_step_degree"] * one,
        np.array([col["tap_changer_type"]], dtype=object),
    )
    fixed = Taps()
    _apply_fixed(fixed, side, *_ratio_angle(tc, step), None)
    assert vnh[0] == pytest.approx(220.0 * fixed.vn_factor.get("hv", 1.0), rel=1e-12)
    assert vnl[0] == pytest.approx(110.0 * fixed.vn_factor.get("lv", 1.0), rel=1e-12)
    assert shift[0] == pytest.approx(sum(fixed.shift_degree.values()), abs=1e-12)
    if cls != "RatioTapChanger" and step != 13.0:
        assert not math.isclose(shift[0], 0.0)
