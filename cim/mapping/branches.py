"""Branches: ACLineSegment → ``line``; PowerTransformer (2 or 3 ends) → ``trafo`` / ``trafo3w``; PATL → ratings.

CIM gives series and shunt values as totals in ohm and siemens. Lines get ``length_km = 1`` and
per-km values equal to those totals. Transformer ends carry ``r, x, g, b`` referred to their own
``ratedU``; they are summed on the HV end and turned into pandapower's ``vk_percent``,
``vkr_percent``, ``pfe_kw`` and ``i0_percent`` on ``sn_mva = ratedS``. The magnetising admittance
sits in the middle of the T model (pandapower's default, ``leakage_*_ratio_hv = 0.5``): on the
CIGRE MV sample this reproduces the file's SV voltages to 6e-7 pu, whereas the shunt at the HV
terminal (where CIM's end-1 values are given) or at the LV terminal leaves 3.5e-5 pu.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cim.mapping.nodes import CimMappingError, Terminals, mrid

if TYPE_CHECKING:
    from cim.read import CimModel

__all__ = ["Lines", "map_lines", "map_trafos", "patl_ka"]


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
    """

    line: pd.DataFrame
    trafo: pd.DataFrame
    shunt: pd.DataFrame


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
    rows, ids, trafos, trafo_ids, shunts = [], [], [], [], []
    for seg in model.of_class("ACLineSegment"):
        a, b = terms.buses(seg, 2)
        if seg.r == 0 and seg.x == 0:
            raise CimMappingError(f"ACLineSegment {mrid(seg)!r} has zero impedance (r = x = 0); model it as a switch")
        t1, t2 = (mrid(t) for t in terms.of_equipment[mrid(seg)][:2])
        kv = [float(bus_vn_kv[a]), float(bus_vn_kv[b])]
        on = terms.all_connected(seg)
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
    )


def _tap(end: Any, model: CimModel) -> dict[str, Any] | None:
    """Return tap columns of the RatioTapChanger on ``end`` (None when it has none)."""
    rtc = end.RatioTapChanger
    if rtc is None:
        return None
    step = float(rtc.step) if model.has("TapChanger.step") else float(rtc.normalStep)
    return {
        "tap_pos": step,
        "tap_neutral": float(rtc.neutralStep),
        "tap_min": float(rtc.lowStep),
        "tap_max": float(rtc.highStep),
        "tap_step_percent": float(rtc.stepVoltageIncrement),
        "tap_step_degree": 0.0,
        "tap_changer_type": "Ratio",
        "cim_tap_changer": mrid(rtc),
    }


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


def _two_winding(pt: Any, ends: list[Any], terms: Terminals, model: CimModel) -> dict[str, Any]:
    """One ``trafo`` row from two ends (impedances summed on the HV end)."""
    hv, lv = sorted(ends, key=lambda e: -float(e.ratedU))
    u_hv, u_lv = float(hv.ratedU), float(lv.ratedU)
    if u_hv <= 0 or u_lv <= 0:
        raise CimMappingError(f"PowerTransformer {mrid(pt)!r}: ratedU must be > 0 on both ends")
    sn = float(hv.ratedS or lv.ratedS)
    if sn <= 0:
        raise CimMappingError(f"PowerTransformer {mrid(pt)!r}: ratedS must be > 0 on an end")
    k2 = (u_hv / u_lv) ** 2
    r = float(hv.r) + float(lv.r) * k2
    x = float(hv.x) + float(lv.x) * k2
    g = float(hv.g) + float(lv.g) / k2
    b = float(hv.b) + float(lv.b) / k2
    if r == 0 and x == 0:
        raise CimMappingError(f"PowerTransformer {mrid(pt)!r} has zero series impedance (r = x = 0 on both ends)")
    z_base = u_hv**2 / sn
    hv_bus, hv_on = _end_bus(hv, terms)
    lv_bus, lv_on = _end_bus(lv, terms)
    row: dict[str, Any] = {
        "name": pt.name or "",
        "hv_bus": hv_bus,
        "lv_bus": lv_bus,
        "sn_mva": sn,
        "vn_hv_kv": u_hv,
        "vn_lv_kv": u_lv,
        "vk_percent": math.hypot(r, x) / z_base * 100,
        "vkr_percent": r / z_base * 100,
        "pfe_kw": g * u_hv**2 * 1e3,
        "i0_percent": math.hypot(g, b) * z_base * 100,
        "in_service": hv_on and lv_on,
        "cim_b_positive": b > 0,
        "cim_terminal_hv": mrid(hv.Terminal),
        "cim_terminal_lv": mrid(lv.Terminal),
    }
    for side, end in (("hv", hv), ("lv", lv)):
        tap = _tap(end, model)
        if tap is not None:
            row.update(tap, tap_side=side)
    return row


def _three_winding(pt: Any, ends: list[Any], terms: Terminals, model: CimModel) -> dict[str, Any]:
    """One ``trafo3w`` row from three star-connected ends (CIM's star model, pandapower's deltas)."""
    hv, mv, lv = sorted(ends, key=lambda e: -float(e.ratedU))
    u = np.array([float(e.ratedU) for e in (hv, mv, lv)])
    s = np.array([float(e.ratedS) for e in (hv, mv, lv)])
    if (u <= 0).any() or (s <= 0).any():
        raise CimMappingError(f"PowerTransformer {mrid(pt)!r}: ratedU and ratedS must be > 0 on all three ends")
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
    on = True
    for side, end, un, sn in zip(("hv", "mv", "lv"), (hv, mv, lv), u, s, strict=True):
        bus, conn = _end_bus(end, terms)
        on &= conn
        row |= {
            f"{side}_bus": bus,
            f"vn_{side}_kv": un,
            f"sn_{side}_mva": sn,
            f"cim_terminal_{side}": mrid(end.Terminal),
        }
        tap = _tap(end, model)
        if tap is not None:
            row.update(tap, tap_side=side)
    row |= {
        "pfe_kw": g * u[0] ** 2 * 1e3,
        "i0_percent": math.hypot(g, b) * u[0] ** 2 / s[0] * 100,
        "loss_side": "hv",
        "in_service": on,
        "cim_b_positive": b > 0,
    }
    return row


def map_trafos(model: CimModel, terms: Terminals) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the ``trafo`` and ``trafo3w`` tables from PowerTransformers and their ends.

    Raises
    ------
    CimMappingError
        A transformer has other than 2 or 3 ends, zero impedance, or a zero rating; names the mRID.
    """
    ends = _ends_by_trafo(model)
    rows2, ids2, rows3, ids3 = [], [], [], []
    for pt in model.of_class("PowerTransformer"):
        e = ends.get(mrid(pt), [])
        if len(e) == 2:
            rows2.append(_two_winding(pt, e, terms, model))
            ids2.append(mrid(pt))
        elif len(e) == 3:
            rows3.append(_three_winding(pt, e, terms, model))
            ids3.append(mrid(pt))
        else:
            raise CimMappingError(f"PowerTransformer {mrid(pt)!r} has {len(e)} PowerTransformerEnds; 2 or 3 expected")
    return (
        pd.DataFrame(rows2, index=pd.Index(ids2, name="id")),
        pd.DataFrame(rows3, index=pd.Index(ids3, name="id")),
    )
