"""Branches: ACLineSegment → ``line``; PowerTransformer (2 or 3 ends) → ``trafo`` / ``trafo3w``; PATL → ratings.

CIM gives series and shunt values as totals in ohm and siemens. Lines get ``length_km = 1`` and
per-km values equal to those totals. Transformer ends carry ``r, x, g, b`` referred to their own
``ratedU``; they are summed on the HV end and turned into pandapower's ``vk_percent``,
``vkr_percent``, ``pfe_kw`` and ``i0_percent`` on ``sn_mva = ratedS``. The magnetising admittance
is placed by ``magnetising``: ``"end1"`` (default) at the terminal of end 1, as CGMES asks and as
PowSyBl models it (ENTSO-E SmallGrid then solves like OpenLoadFlow to 3e-14 pu); ``"middle"`` in
the middle of pandapower's T model (``leakage_*_ratio_hv = 0.5``), which is how NEPLAN's CIGRE MV
sample and SmallGrid's own SV were solved (6e-7 pu on CIGRE MV against 3.5e-5 pu with ``"end1"``).
Tap changers: :mod:`cim.mapping.taps`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from cim.mapping.nodes import CimMappingError, Terminals, mrid
from cim.mapping.taps import TapIndex, Taps, index_tap_changers, map_taps

if TYPE_CHECKING:
    from cim.read import CimModel

__all__ = ["Lines", "Magnetising", "Trafos", "map_lines", "map_trafos", "patl_ka"]


def patl_ka(model: CimModel) -> dict[str, float]:
    """Return the permanent current limit (PATL, kA) per equipment mRID: the lowest CurrentLimit found.

    A limit counts as PATL when its OperationalLimitType has ``limitType`` ``patl`` (entsoe
    extension) or, where the file gives no limit type, is named ``PATL`` (NEPLAN) or has no
    ``acceptableDuration``. Limit sets hang on a Terminal or directly on the Equipment.
    """
    out: dict[str, float] = {}
    for lim in model.of_class("CurrentLimit"):
        olt = lim.OperationalLimitType
        kind = model.limit_types.get(mrid(olt), "")
        if kind:
            is_patl = kind == "patl"
        else:
            is_patl = str(getattr(olt, "name", "")).lower() == "patl" or not getattr(olt, "acceptableDuration", 0)
        ols = lim.OperationalLimitSet
        if not is_patl or ols is None or not lim.value:
            continue
        eq = ols.Equipment or getattr(ols.Terminal, "ConductingEquipment", None)
        if eq is None:
            continue
        key = mrid(eq)
        out[key] = min(out.get(key, math.inf), float(lim.value) / 1000.0)
    return out


@dataclass
class Lines:
    """ACLineSegments as Grid rows.

    Attributes
    ----------
    line : DataFrame
        Segments whose two buses share a nominal voltage.
    trafo : DataFrame
        Segments joining buses of different nominal voltages, as 1:1 transformers (series r, x only).
    shunt : DataFrame
        The shunt admittance (``gch/2 + j·bch/2`` at each end) of the ``trafo`` rows, ids ``<mRID>_shunt1``
        and ``<mRID>_shunt2``; ``cim_terminal`` names the Terminal it belongs to.
    open_ends : DataFrame
        ``switch`` rows (open, ``et`` ``l`` or ``t``) at the disconnected end of segments with one
        Terminal connected (:func:`open_end_switches`).
    """

    line: pd.DataFrame
    trafo: pd.DataFrame
    shunt: pd.DataFrame
    open_ends: pd.DataFrame


def open_end_switches(
    equipment: Any, terms: Terminals, et: str, element: str | None = None
) -> tuple[bool, list[tuple[str, dict[str, Any]]]]:
    """In-service flag of a branch and open ``switch`` rows for its disconnected ends.

    A branch with every Terminal connected is in service; with none, out of service. With some
    connected it stays in service, energised from the connected ends, and each disconnected end
    gets an open branch switch (id ``<mRID>_open<k>``, k = the end's position) so that the compiler
    leaves that end on its own bus, as pandapower and PowSyBl model a line open at one end (its
    charging still flows).
    """
    ends = terms.of_equipment.get(mrid(equipment), [])
    conn = [terms.connected[mrid(t)] for t in ends]
    if all(conn) or not any(conn):
        return all(conn), []
    rows = [
        (
            f"{mrid(equipment)}_open{k + 1}",
            {
                "name": "",
                "bus": terms.bus_of[mrid(t)],
                "element": element or mrid(equipment),
                "et": et,
                "closed": False,
            },
        )
        for k, (t, c) in enumerate(zip(ends, conn, strict=True))
        if not c
    ]
    return True, rows


def _segment_as_trafo(
    seg: Any, buses: list[str], kv: list[float], terminals: list[str], limit_ka: float, on: bool
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """One ``trafo`` row (ratio 1:1 in kV) and up to two ``shunt`` rows for a segment between voltage levels."""
    hv = 0 if kv[0] >= kv[1] else 1
    u = kv[hv]
    # rating: the PATL current on u; no PATL → an unlimited rating (df = inf), as lines get max_i_ka = inf
    sn, df = (math.sqrt(3) * u * limit_ka, 1.0) if math.isfinite(limit_ka) else (100.0, math.inf)
    z_base = u**2 / sn
    row = {
        "name": seg.name or "",
        "hv_bus": buses[hv],
        "lv_bus": buses[1 - hv],
        "sn_mva": sn,
        "vn_hv_kv": u,
        "vn_lv_kv": u,
        "vk_percent": math.hypot(float(seg.r), float(seg.x)) / z_base * 100,
        "vkr_percent": float(seg.r) / z_base * 100,
        "pfe_kw": 0.0,
        "i0_percent": 0.0,
        "tap_side": "",
        "tap_changer_type": "",
        "df": df,
        "in_service": on,
        "cim_terminal_hv": terminals[hv],
        "cim_terminal_lv": terminals[1 - hv],
    }
    y_half = complex(float(seg.gch), float(seg.bch)) / 2
    shunts = [
        (
            f"{mrid(seg)}_shunt{k + 1}",
            {
                "name": seg.name or "",
                "bus": buses[k],
                "p_mw": y_half.real * kv[k] ** 2,
                "q_mvar": -y_half.imag * kv[k] ** 2,
                "vn_kv": kv[k],
                "step": 1,
                "in_service": on,
                "cim_terminal": terminals[k],
                "cim_equipment": mrid(seg),
            },
        )
        for k in ((0, 1) if y_half != 0 else ())
    ]
    return row, shunts


def map_lines(model: CimModel, terms: Terminals, f_hz: float, limits: dict[str, float], bus_vn_kv: pd.Series) -> Lines:
    """Map ACLineSegments: ``line`` rows (totals as per-km values on 1 km), or transformers between voltage levels.

    A segment whose buses have different nominal voltages is a physical impedance in ohm between
    two kV levels (PowSyBl's reading, and what its IEEE-network exports hold). A ``line`` row would
    put it in per unit on the from-bus base with no ratio, i.e. add an ideal transformer
    ``vn_from : vn_to``. Such segments become ``trafo`` rows with rated voltages equal on both sides
    (physical ratio 1:1) and their charging as two ``shunt`` rows. Lines without a PATL get
    ``max_i_ka = inf`` (loading reported as 0 %).

    Parameters
    ----------
    model, terms
        The model and its terminal resolution.
    f_hz : float
        Nominal frequency, Hz (capacitance from ``bch``).
    limits : dict of str to float
        PATL per equipment mRID, kA (:func:`patl_ka`).
    bus_vn_kv : Series
        Nominal voltage (kV) by bus id.

    Raises
    ------
    CimMappingError
        A segment has zero series impedance (name the mRID; model it as a switch).
    """
    rows, ids, trafos, trafo_ids, shunts, switches = [], [], [], [], [], []
    for seg in model.of_class("ACLineSegment"):
        a, b = terms.buses(seg, 2)
        if seg.r == 0 and seg.x == 0:
            raise CimMappingError(f"ACLineSegment {mrid(seg)!r} has zero impedance (r = x = 0); model it as a switch")
        t1, t2 = (mrid(t) for t in terms.of_equipment[mrid(seg)][:2])
        kv = [float(bus_vn_kv[a]), float(bus_vn_kv[b])]
        on, open_ends = open_end_switches(seg, terms, "t" if kv[0] != kv[1] else "l")
        switches += open_ends
        if kv[0] != kv[1]:
            row, sh = _segment_as_trafo(seg, [a, b], kv, [t1, t2], limits.get(mrid(seg), math.inf), on)
            trafos.append(row)
            trafo_ids.append(mrid(seg))
            shunts += sh
            continue
        rows.append(
            {
                "name": seg.name or "",
                "from_bus": a,
                "to_bus": b,
                "length_km": 1.0,
                "r_ohm_per_km": float(seg.r),
                "x_ohm_per_km": float(seg.x),
                "c_nf_per_km": float(seg.bch) / (2 * math.pi * f_hz) * 1e9,
                "g_us_per_km": float(seg.gch) * 1e6,
                "max_i_ka": limits.get(mrid(seg), math.inf),
                "in_service": on,
                "cim_terminal_from": t1,
                "cim_terminal_to": t2,
            }
        )
        ids.append(mrid(seg))
    return Lines(
        pd.DataFrame(rows, index=pd.Index(ids, name="id")),
        pd.DataFrame(trafos, index=pd.Index(trafo_ids, name="id")),
        pd.DataFrame([r for _, r in shunts], index=pd.Index([i for i, _ in shunts], name="id")),
        pd.DataFrame([r for _, r in switches], index=pd.Index([i for i, _ in switches], name="id")),
    )


def _ends_by_trafo(model: CimModel) -> dict[str, list[Any]]:
    ends: dict[str, list[Any]] = defaultdict(list)
    for e in model.of_class("PowerTransformerEnd"):
        if e.PowerTransformer is None:
            raise CimMappingError(f"PowerTransformerEnd {mrid(e)!r} names no PowerTransformer")
        ends[mrid(e.PowerTransformer)].append(e)
    for lst in ends.values():
        lst.sort(key=lambda e: e.endNumber)
    return ends


def _end_bus(end: Any, terms: Terminals) -> tuple[str, bool]:
    t = end.Terminal
    if t is None:
        raise CimMappingError(f"PowerTransformerEnd {mrid(end)!r} names no Terminal")
    return terms.bus_of[mrid(t)], terms.connected[mrid(t)]


Magnetising = Literal["end1", "middle"]


def _leakage_ratio(hv: Any, lv: Any, magnetising: Magnetising) -> float:
    """pandapower's ``leakage_*_ratio_hv`` placing the magnetising admittance (0: at the HV end, 1: at LV).

    ``"end1"``: the admittance of both ends together at the terminal of end 1 (``endNumber`` 1),
    where CGMES asks for it and where PowSyBl's model holds it (IIDM has one admittance, at side 1;
    RealGrid's transformers that give ``b`` on end 2 match OpenLoadFlow only so).
    ``"middle"``: in the middle of pandapower's T model (NEPLAN's reading).
    """
    if magnetising == "middle":
        return 0.5
    return 0.0 if int(hv.endNumber) <= int(lv.endNumber) else 1.0


def _two_winding(
    pt: Any, ends: list[Any], terms: Terminals, model: CimModel, index: TapIndex, magnetising: Magnetising
) -> tuple[dict[str, Any], Taps]:
    """One ``trafo`` row from two ends (impedances summed on the HV end) and what its tap changers gave."""
    hv, lv = sorted(ends, key=lambda e: -float(e.ratedU))
    u_hv, u_lv = float(hv.ratedU), float(lv.ratedU)
    if u_hv <= 0 or u_lv <= 0:
        raise CimMappingError(f"PowerTransformer {mrid(pt)!r}: ratedU must be > 0 on both ends")
    sn = float(hv.ratedS or lv.ratedS)
    if sn <= 0:
        raise CimMappingError(f"PowerTransformer {mrid(pt)!r}: ratedS must be > 0 on an end")
    taps = map_taps({"hv": hv, "lv": lv}, model, index)
    k2 = (u_hv / u_lv) ** 2
    r = (float(hv.r) + float(lv.r) * k2) * taps.r_factor
    x = (float(hv.x) + float(lv.x) * k2) * taps.x_factor
    g = (float(hv.g) + float(lv.g) / k2) * taps.g_factor
    b = (float(hv.b) + float(lv.b) / k2) * taps.b_factor
    if r == 0 and x == 0:
        raise CimMappingError(f"PowerTransformer {mrid(pt)!r} has zero series impedance (r = x = 0 on both ends)")
    z_base = u_hv**2 / sn
    hv_bus, _ = _end_bus(hv, terms)
    lv_bus, _ = _end_bus(lv, terms)
    on, taps.open_ends = open_end_switches(pt, terms, "t")
    ratio = _leakage_ratio(hv, lv, magnetising)
    row: dict[str, Any] = {
        "name": pt.name or "",
        "hv_bus": hv_bus,
        "lv_bus": lv_bus,
        "sn_mva": sn,
        "vn_hv_kv": u_hv * taps.vn_factor.get("hv", 1.0),
        "vn_lv_kv": u_lv * taps.vn_factor.get("lv", 1.0),
        # the sign of x (star legs of three-winding units can be capacitive) rides on vk_percent, as pandapower
        "vk_percent": math.copysign(math.hypot(r, x), x) / z_base * 100,
        "vkr_percent": r / z_base * 100,
        "pfe_kw": g * u_hv**2 * 1e3,
        "i0_percent": math.hypot(g, b) * z_base * 100,
        "shift_degree": sum(taps.shift_degree.values()),
        "tap_side": "",
        "tap_changer_type": "",
        "leakage_resistance_ratio_hv": ratio,
        "leakage_reactance_ratio_hv": ratio,
        "in_service": on,
        "cim_b_positive": b > 0,
        "cim_terminal_hv": mrid(hv.Terminal),
        "cim_terminal_lv": mrid(lv.Terminal),
    }
    row.update(taps.columns)
    return row, taps


def _three_winding(
    pt: Any, ends: list[Any], terms: Terminals, model: CimModel, index: TapIndex
) -> tuple[dict[str, Any], Taps]:
    """One ``trafo3w`` row from three star-connected ends (CIM's star model, pandapower's deltas)."""
    hv, mv, lv = sorted(ends, key=lambda e: -float(e.ratedU))
    u = np.array([float(e.ratedU) for e in (hv, mv, lv)])
    s = np.array([float(e.ratedS) for e in (hv, mv, lv)])
    if (u <= 0).any() or (s <= 0).any():
        raise CimMappingError(f"PowerTransformer {mrid(pt)!r}: ratedU and ratedS must be > 0 on all three ends")
    taps = map_taps({"hv": hv, "mv": mv, "lv": lv}, model, index)
    if (taps.r_factor, taps.x_factor, taps.g_factor, taps.b_factor) != (1.0, 1.0, 1.0, 1.0):
        taps.skipped.append(f"PowerTransformer {mrid(pt)!r}: tap-dependent impedances of a three-winding transformer")
    # star impedances referred to the HV voltage, ohm
    k2 = (u[0] / u) ** 2
    z = np.array([complex(float(e.r), float(e.x)) for e in (hv, mv, lv)]) * k2
    # pairwise short-circuit impedances on min(sn) of each pair (pandapower's definition)
    pairs = {"hv": (0, 1), "mv": (1, 2), "lv": (0, 2)}
    row: dict[str, Any] = {"name": pt.name or ""}
    for name, (i, j) in pairs.items():
        zij = z[i] + z[j]
        sn_pair = min(s[i], s[j])
        row[f"vk_{name}_percent"] = abs(zij) * sn_pair / u[0] ** 2 * 100
        row[f"vkr_{name}_percent"] = zij.real * sn_pair / u[0] ** 2 * 100
    g = sum(float(e.g) / k for e, k in zip((hv, mv, lv), k2, strict=True))
    b = sum(float(e.b) / k for e, k in zip((hv, mv, lv), k2, strict=True))
    on, taps.open_ends = open_end_switches(pt, terms, "t3")
    for side, end, un, sn in zip(("hv", "mv", "lv"), (hv, mv, lv), u, s, strict=True):
        bus, _ = _end_bus(end, terms)
        row |= {
            f"{side}_bus": bus,
            f"vn_{side}_kv": un * taps.vn_factor.get(side, 1.0),
            f"sn_{side}_mva": sn,
            f"cim_terminal_{side}": mrid(end.Terminal),
        }
    hv_shift = taps.shift_degree.get("hv", 0.0)
    row |= {
        "shift_mv_degree": hv_shift + taps.shift_degree.get("mv", 0.0),
        "shift_lv_degree": hv_shift + taps.shift_degree.get("lv", 0.0),
        "tap_side": "",
        "tap_changer_type": "",
        "pfe_kw": g * u[0] ** 2 * 1e3,
        "i0_percent": math.hypot(g, b) * u[0] ** 2 / s[0] * 100,
        "loss_side": "hv",
        "in_service": on,
        "cim_b_positive": b > 0,
    }
    row.update(taps.columns)
    return row, taps


@dataclass
class Trafos:
    """PowerTransformers as Grid rows, with what their tap changers gave.

    Attributes
    ----------
    trafo, trafo3w : DataFrame
        Two- and three-winding transformers.
    tap_changers : DataFrame
        One row per mapped tap changer: ``id`` (transformer), ``tap_changer`` (mRID), ``step`` (the
        step fixed in the row; NaN where the row's ``tap_pos`` is the step).
    open_ends : DataFrame
        Open ``switch`` rows at disconnected ends of transformers with other ends connected.
    notes, skipped : list of str
        Decisions taken; tap changers or parts not applied (to be warned).
    """

    trafo: pd.DataFrame
    trafo3w: pd.DataFrame
    tap_changers: pd.DataFrame
    open_ends: pd.DataFrame
    notes: list[str]
    skipped: list[str]


def map_trafos(model: CimModel, terms: Terminals, magnetising: Magnetising = "end1") -> Trafos:
    """Return the ``trafo`` and ``trafo3w`` tables from PowerTransformers, their ends and tap changers.

    Parameters
    ----------
    model, terms
        The model and its terminal resolution.
    magnetising : {"end1", "middle"}
        Where a two-winding transformer's magnetising admittance sits (:func:`_leakage_ratio`).

    Raises
    ------
    CimMappingError
        A transformer has other than 2 or 3 ends, zero impedance, or a zero rating; names the mRID.
    """
    if magnetising not in ("end1", "middle"):
        raise ValueError(f"magnetising must be 'end1' or 'middle', not {magnetising!r}")
    ends = _ends_by_trafo(model)
    index = index_tap_changers(model)
    rows: dict[int, tuple[list[dict[str, Any]], list[str]]] = {2: ([], []), 3: ([], [])}
    changers, notes, skipped, switches = [], [], [], []
    for pt in model.of_class("PowerTransformer"):
        e = ends.get(mrid(pt), [])
        if len(e) == 2:
            row, taps = _two_winding(pt, e, terms, model, index, magnetising)
        elif len(e) == 3:
            row, taps = _three_winding(pt, e, terms, model, index)
        else:
            raise CimMappingError(f"PowerTransformer {mrid(pt)!r} has {len(e)} PowerTransformerEnds; 2 or 3 expected")
        rows[len(e)][0].append(row)
        rows[len(e)][1].append(mrid(pt))
        changers += [(mrid(pt), tc, step) for tc, step in taps.changers]
        notes += taps.notes
        skipped += taps.skipped
        switches += taps.open_ends
    return Trafos(
        *(pd.DataFrame(r, index=pd.Index(i, name="id")) for r, i in rows.values()),
        pd.DataFrame(changers, columns=["id", "tap_changer", "step"]).set_index("id"),
        pd.DataFrame([r for _, r in switches], index=pd.Index([i for i, _ in switches], name="id")),
        notes,
        skipped,
    )
