"""Tap changers: RatioTapChanger and PhaseTapChanger (Linear, Symmetrical, Asymmetrical, Tabular) → tap columns.

pandapower's transformer tables hold one tap changer per row (``tap_side``, ``tap_pos``,
``tap_neutral``, ``tap_step_percent``, ``tap_step_degree``, ``tap_changer_type``). A CIM tap changer
whose law pandapower can express goes there, exact at every step:

==============================  ====================  =====================================================
CIM class                       tap_changer_type      columns
==============================  ====================  =====================================================
RatioTapChanger                 ``Ratio``             ``tap_step_percent = stepVoltageIncrement``
PhaseTapChangerLinear           ``Ideal``             ``tap_step_degree = stepPhaseShiftIncrement``
PhaseTapChangerSymmetrical      ``Ideal``             ``tap_step_percent = voltageStepIncrement``
                                                      (angle ``2 asin(du/2)``, as pandapower and PowSyBl)
PhaseTapChangerAsymmetrical     ``Ratio``             ``tap_step_percent = voltageStepIncrement``,
                                                      ``tap_step_degree = windingConnectionAngle``
==============================  ====================  =====================================================

A CIM angle α of a tap changer on the HV end adds α to pandapower's ``shift_degree`` (the lag of
the LV side behind the HV side), on the LV end −α: pandapower's own convention for a tap changer
on that side. Checked against PowSyBl: RealGrid's nine PhaseTapChangerTabular (on end 1 and end 2)
give OpenLoadFlow's branch flows at its voltages to 1e-9 MVA, the opposite sign misses by up to
3.7 GVA. The rest becomes a **fixed equivalent at the SSH step**
(``TapChanger.step``, else ``normalStep``): the tapped side's rated voltage times the step's ratio,
the step's angle added to ``shift_degree``, and the step's r, x, g, b corrections (%) applied to the
transformer's impedances. This is used for PhaseTapChangerTabular and RatioTapChanger with a
table (the table point of the step), for the reactance that Linear/Symmetrical/Asymmetrical changers
vary between ``xMin`` and ``xMax`` (IEC 61970-301's curve, as PowSyBl computes it), and for a second
tap changer on a transformer whose columns are taken. Changing ``tap_pos`` of such a row does not
move these fixed parts; ``grid.meta["cim_tap_changers"]`` records their step.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cim.mapping.nodes import mrid

if TYPE_CHECKING:
    from cim.read import CimModel

__all__ = ["PHASE_TAP_CLASSES", "TapIndex", "Taps", "index_tap_changers", "map_taps"]

PHASE_TAP_CLASSES = (
    "PhaseTapChangerLinear",
    "PhaseTapChangerSymmetrical",
    "PhaseTapChangerAsymmetrical",
    "PhaseTapChangerTabular",
)


@dataclass
class TapIndex:
    """Tap changers by TransformerEnd mRID and table points by table mRID and step."""

    ratio: dict[str, Any]
    phase: dict[str, Any]
    points: dict[str, dict[int, Any]]


def index_tap_changers(model: CimModel) -> TapIndex:
    """Index the model's tap changers and tap changer table points once."""
    ratio = {mrid(tc.TransformerEnd): tc for tc in model.of_class("RatioTapChanger") if tc.TransformerEnd}
    phase = {mrid(tc.TransformerEnd): tc for tc in model.of_class(*PHASE_TAP_CLASSES) if tc.TransformerEnd}
    points: dict[str, dict[int, Any]] = defaultdict(dict)
    for cls, ref in (
        ("RatioTapChangerTablePoint", "RatioTapChangerTable"),
        ("PhaseTapChangerTablePoint", "PhaseTapChangerTable"),
    ):
        for pt in model.of_class(cls):
            table = getattr(pt, ref, None)
            if table is not None:
                points[mrid(table)][round(float(pt.step))] = pt
    return TapIndex(ratio, phase, dict(points))


@dataclass
class Taps:
    """What a transformer's tap changers give its row.

    Attributes
    ----------
    columns : dict
        ``tap_*`` columns (with ``tap_side``) of the tap changer pandapower expresses; empty if none.
    vn_factor : dict of str to float
        Fixed multiplier of ``vn_<side>_kv`` per side (fixed equivalents).
    shift_degree : dict of str to float
        Fixed phase shift per side in pandapower's sense (lag of LV behind HV), degrees.
    r_factor, x_factor, g_factor, b_factor : float
        Fixed multipliers of the series resistance/reactance and the magnetising admittance.
    changers : list of (str, float)
        Tap changer mRIDs with the step fixed in the row (NaN: the row's ``tap_pos``).
    notes, skipped : list of str
        Decisions taken; tap changers that could not be applied (warned by the caller).
    open_ends : list
        Open switch rows of the transformer's disconnected ends (filled by the branch mapping).
    """

    columns: dict[str, Any] = field(default_factory=dict)
    vn_factor: dict[str, float] = field(default_factory=dict)
    shift_degree: dict[str, float] = field(default_factory=dict)
    r_factor: float = 1.0
    x_factor: float = 1.0
    g_factor: float = 1.0
    b_factor: float = 1.0
    changers: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    open_ends: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _step(tc: Any, model: CimModel) -> float:
    """The tap position: SSH ``TapChanger.step``, else ``normalStep``."""
    return float(tc.step) if model.has("TapChanger.step") else float(tc.normalStep)


def _ratio_angle(tc: Any, step: float) -> tuple[float, float]:
    """Ratio (multiplier of the tapped end's voltage) and CIM angle (degrees) of a law-based changer at ``step``."""
    cls = type(tc).__name__
    td = step - float(tc.neutralStep)
    if cls == "RatioTapChanger":
        return 1.0 + td * float(tc.stepVoltageIncrement) / 100.0, 0.0
    if cls == "PhaseTapChangerLinear":
        return 1.0, td * float(tc.stepPhaseShiftIncrement)
    du = td * float(tc.voltageStepIncrement) / 100.0
    if cls == "PhaseTapChangerSymmetrical":
        return 1.0, math.degrees(2.0 * math.asin(max(-1.0, min(1.0, du / 2.0))))
    theta = math.radians(float(tc.windingConnectionAngle))
    dx, dy = 1.0 + du * math.cos(theta), du * math.sin(theta)
    return math.hypot(dx, dy), math.degrees(math.atan2(dy, dx))


def _columns(tc: Any, side: str, step: float) -> dict[str, Any]:
    """pandapower tap columns of a law-based tap changer (exact at every step)."""
    cls = type(tc).__name__
    pct, deg, kind = 0.0, 0.0, "Ratio"
    if cls == "RatioTapChanger":
        pct = float(tc.stepVoltageIncrement)
    elif cls == "PhaseTapChangerLinear":
        deg, kind = float(tc.stepPhaseShiftIncrement), "Ideal"
    elif cls == "PhaseTapChangerSymmetrical":
        pct, kind = float(tc.voltageStepIncrement), "Ideal"
    else:  # asymmetrical
        pct, deg = float(tc.voltageStepIncrement), float(tc.windingConnectionAngle)
    return {
        "tap_side": side,
        "tap_pos": step,
        "tap_neutral": float(tc.neutralStep),
        "tap_min": float(tc.lowStep),
        "tap_max": float(tc.highStep),
        "tap_step_percent": pct,
        "tap_step_degree": deg,
        "tap_changer_type": kind,
    }


def _x_curve(tc: Any, step: float, x_total_ohm: float) -> float:
    """Reactance multiplier of a phase shifter at ``step`` from its ``xMin``/``xMax`` (1 when not given).

    IEC 61970-301: the reactance follows a U-shaped curve of the angle, ``xMin`` at neutral and
    ``xMax`` at the extreme steps; PowSyBl's formulas (relative to the sum of the ends' x).
    """
    x_min, x_max = float(getattr(tc, "xMin", 0.0) or 0.0), float(getattr(tc, "xMax", 0.0) or 0.0)
    if type(tc).__name__ == "RatioTapChanger" or x_max <= 0 or x_min < 0 or x_min > x_max or x_total_ohm <= 0:
        return 1.0
    angles = [_ratio_angle(tc, float(s))[1] for s in range(int(tc.lowStep), int(tc.highStep) + 1)]
    a, a_max = math.radians(_ratio_angle(tc, step)[1]), math.radians(max(angles))
    if a_max == 0:
        return 1.0
    if type(tc).__name__ == "PhaseTapChangerAsymmetrical":
        th = math.radians(float(tc.windingConnectionAngle))
        num = math.sin(th) - math.tan(a_max) * math.cos(th)
        den = math.sin(th) - math.tan(a) * math.cos(th)
        x = x_min + (x_max - x_min) * (math.tan(a) / math.tan(a_max) * num / den) ** 2
    else:
        x = x_min + (x_max - x_min) * (math.sin(a / 2) / math.sin(a_max / 2)) ** 2
    return x / x_total_ohm


def _table_point(tc: Any, step: float, index: TapIndex) -> Any | None:
    table = getattr(tc, "PhaseTapChangerTable", None) or getattr(tc, "RatioTapChangerTable", None)
    return None if table is None else index.points.get(mrid(table), {}).get(round(step))


def _apply_fixed(out: Taps, side: str, ratio: float, angle_cim: float, point: Any | None) -> None:
    """Fold a ratio and angle at one step (and a table point's % corrections) into ``out``."""
    out.vn_factor[side] = out.vn_factor.get(side, 1.0) * ratio
    out.shift_degree[side] = out.shift_degree.get(side, 0.0) + (angle_cim if side == "hv" else -angle_cim)
    if point is not None:
        out.r_factor *= 1.0 + float(point.r) / 100.0
        out.x_factor *= 1.0 + float(point.x) / 100.0
        out.g_factor *= 1.0 + float(point.g) / 100.0
        out.b_factor *= 1.0 + float(point.b) / 100.0


def _one(out: Taps, tc: Any, side: str, model: CimModel, index: TapIndex, x_total_ohm: float) -> None:
    """Map one tap changer on the end at ``side`` into ``out``."""
    cls, tid, step = type(tc).__name__, mrid(tc), _step(tc, model)
    table = getattr(tc, "PhaseTapChangerTable", None) or getattr(tc, "RatioTapChangerTable", None)
    point = _table_point(tc, step, index)
    if cls == "PhaseTapChangerTabular" or point is not None:
        if point is None:
            out.skipped.append(f"{cls} {tid!r}: its table {mrid(table)!r} has no point for step {step:g}")
            return
        ratio = float(point.ratio) if getattr(point, "ratio", 0.0) else 1.0
        angle = float(getattr(point, "angle", 0.0) or 0.0)
        _apply_fixed(out, side, ratio, angle, point)
        out.changers.append((tid, step))
        out.notes.append(f"{cls} {tid!r}: fixed at step {step:g} from its table")
        return
    if table is not None:
        out.notes.append(f"{cls} {tid!r}: table has no point for step {step:g}; stepVoltageIncrement used")
    out.x_factor *= _x_curve(tc, step, x_total_ohm)
    if not out.columns:
        out.columns = _columns(tc, side, step)
        out.changers.append((tid, math.nan))
        return
    _apply_fixed(out, side, *_ratio_angle(tc, step), None)
    out.changers.append((tid, step))
    out.notes.append(f"{cls} {tid!r}: second tap changer of its transformer, fixed at step {step:g}")


def map_taps(ends: dict[str, Any], model: CimModel, index: TapIndex) -> Taps:
    """Map the tap changers of a transformer's ends (``{"hv": end, "lv": end}`` or with ``"mv"``).

    Ratio tap changers claim the tap columns first, then phase tap changers; the rest are fixed
    equivalents (module doc).
    """
    out = Taps()
    x_total = sum(float(e.x) for e in ends.values())
    for by_end in (index.ratio, index.phase):
        for side, end in ends.items():
            tc = by_end.get(mrid(end))
            if tc is not None:
                _one(out, tc, side, model, index, x_total)
    return out
