"""Injections: loads, machines, external and equivalent injections, shunts; slack choice.

CIM gives ``p, q`` of loads, machines and injections in load sign convention (positive = out of
the node into the equipment). Loads keep that sign; generating units are turned around
(generator convention, ``p_mw`` fed in). Where a file has no SSH values for loads (NEPLAN's CIGRE
MV export), their ``p, q`` come from the SvPowerFlow at their terminal; the source is reported.

Voltage control: a SynchronousMachine, ExternalNetworkInjection or EquivalentInjection that
regulates voltage becomes a ``gen`` (``vm_pu = targetValue / bus vn_kv``), otherwise an ``sgen``.
The slack is the regulating unit with the lowest positive ``referencePriority``; when none has
one, the largest (ratedS, then maxP, then |p|). A slack ExternalNetworkInjection becomes the ``ext_grid``
row, a slack SynchronousMachine a ``gen`` with ``slack=True``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from cim.mapping.nodes import Terminals, mrid

if TYPE_CHECKING:
    from cim.read import CimModel

__all__ = ["LOAD_CLASSES", "Injections", "map_injections", "map_loads", "map_shunts"]

LOAD_CLASSES = ("EnergyConsumer", "ConformLoad", "NonConformLoad")
_SOURCE_CLASSES = ("SynchronousMachine", "ExternalNetworkInjection", "EquivalentInjection")


def _sv_flow(model: CimModel) -> dict[str, tuple[float, float]]:
    """SvPowerFlow ``(p_mw, q_mvar)`` per Terminal mRID (load sign convention)."""
    return {mrid(f.Terminal): (float(f.p), float(f.q)) for f in model.of_class("SvPowerFlow") if f.Terminal}


def map_loads(model: CimModel, terms: Terminals) -> tuple[pd.DataFrame, str]:
    """Return the ``load`` table and where ``p, q`` came from (``"SSH"``, ``"SvPowerFlow"`` or ``"none"``)."""
    loads = model.of_class(*LOAD_CLASSES)
    has_ssh = any(model.has(f"{c}.p") for c in LOAD_CLASSES)
    sv = _sv_flow(model)
    source = "SSH" if has_ssh or not loads else ("SvPowerFlow" if sv else "none")
    rows, ids = [], []
    for ld in loads:
        (bus,) = terms.buses(ld, 1)
        if source == "SvPowerFlow":
            p, q = sv.get(mrid(terms.of_equipment[mrid(ld)][0]), (0.0, 0.0))
        else:
            p, q = float(ld.p), float(ld.q)
        rows.append({"name": ld.name or "", "bus": bus, "p_mw": p, "q_mvar": q, "in_service": terms.all_connected(ld)})
        ids.append(mrid(ld))
    if source == "none":
        warnings.warn(
            f"{len(loads)} loads have neither SSH p/q nor SvPowerFlow; imported with p = q = 0",
            UserWarning,
            stacklevel=3,
        )
    return pd.DataFrame(rows, index=pd.Index(ids, name="id")), source


def map_shunts(model: CimModel, terms: Terminals) -> pd.DataFrame:
    """Return the ``shunt`` table from LinearShuntCompensators (``sections`` from SSH, else normalSections).

    Per section: ``q_mvar = -bPerSection·nomU²`` and ``p_mw = gPerSection·nomU²`` (consumption at
    ``vn_kv = nomU``). Sections are rounded to whole steps.
    """
    has_sections = model.has("ShuntCompensator.sections")
    rows, ids = [], []
    for sh in model.of_class("LinearShuntCompensator"):
        (bus,) = terms.buses(sh, 1)
        u = float(sh.nomU)
        sections = float(sh.sections) if has_sections else float(sh.normalSections)
        rows.append(
            {
                "name": sh.name or "",
                "bus": bus,
                "p_mw": float(sh.gPerSection) * u**2,
                "q_mvar": -float(sh.bPerSection) * u**2,
                "vn_kv": u,
                "step": round(sections),
                "in_service": terms.all_connected(sh),
            }
        )
        ids.append(mrid(sh))
    return pd.DataFrame(rows, index=pd.Index(ids, name="id"))


@dataclass
class Injections:
    """Tables of sources and what the mapping decided."""

    gen: pd.DataFrame
    sgen: pd.DataFrame
    ext_grid: pd.DataFrame
    slack_id: str | None
    notes: list[str] = field(default_factory=list)


def _voltage_target(src: Any, model: CimModel, terms: Terminals, bus: str, vn_kv: float) -> tuple[float | None, str]:
    """Return ``(vm_pu or None, note)`` for a source: None when it does not regulate voltage."""
    cls = type(src).__name__
    if cls == "EquivalentInjection":
        if not (src.regulationCapability and src.regulationStatus and src.regulationTarget):
            return None, ""
        return float(src.regulationTarget) / vn_kv, ""
    rc = src.RegulatingControl
    enabled = src.controlEnabled if model.has("RegulatingCondEq.controlEnabled") else rc is not None
    if rc is None or not enabled or str(rc.mode or "voltage").rsplit(".", 1)[-1] != "voltage":
        return None, ""
    if model.has("RegulatingControl.enabled") and not rc.enabled:
        return None, ""
    note = ""
    if rc.Terminal is not None and terms.bus_of.get(mrid(rc.Terminal), bus) != bus:
        note = f"{cls} {mrid(src)!r} regulates remote bus {terms.bus_of[mrid(rc.Terminal)]!r}; regulated locally"
    if not rc.targetValue:
        return None, ""
    return float(rc.targetValue) / vn_kv, note


def _size_key(src: Any) -> tuple[float, float, float]:
    """Size of a source for the slack choice: ratedS (MVA), then maxP (MW), then |p| (MW), compared in turn.

    Exports that give every unit the same rating (PowSyBl's IEEE networks: ratedS = 9999) are told
    apart by the active power set-point.
    """
    unit = getattr(src, "GeneratingUnit", None)
    max_p = getattr(src, "maxP", 0.0) or getattr(unit, "maxOperatingP", 0.0) or 0.0
    return float(getattr(src, "ratedS", 0.0) or 0.0), float(max_p), abs(float(src.p))


def map_injections(
    model: CimModel, terms: Terminals, bus_vn_kv: pd.Series, sv_vm_pu: pd.Series | None = None
) -> Injections:
    """Map SynchronousMachine, ExternalNetworkInjection and EquivalentInjection; choose the slack.

    Parameters
    ----------
    model, terms
        The model and its terminal resolution.
    bus_vn_kv : Series
        Nominal voltage (kV) by bus id.
    sv_vm_pu : Series, optional
        SvVoltage magnitudes (pu) by bus id: the set-point of a slack whose file gives none
        (no SSH), noted in the report.
    """
    srcs = model.of_class(*_SOURCE_CLASSES)
    notes: list[str] = []
    ssh_pq = {c: model.has(f"{'RotatingMachine' if c == 'SynchronousMachine' else c}.p") for c in _SOURCE_CLASSES}
    cand: list[tuple[float, ...]] = []  # (priority key, -ratedS, -maxP, -|p|, index)
    info = []
    for k, src in enumerate(srcs):
        (bus,) = terms.buses(src, 1)
        vm, note = _voltage_target(src, model, terms, bus, float(bus_vn_kv[bus]))
        if note:
            notes.append(note)
        prio = int(getattr(src, "referencePriority", 0) or 0)
        info.append((src, bus, vm))
        if vm is not None or type(src).__name__ == "ExternalNetworkInjection":
            cand.append((prio if prio > 0 else 1 << 30, *(-v for v in _size_key(src)), k))
    slack_k = int(min(cand)[-1]) if cand else None
    gen, sgen, ext = [], [], []
    for k, (src, bus, vm_target) in enumerate(info):
        vm = vm_target
        cls = type(src).__name__
        on = terms.all_connected(src)
        p, q = (-float(src.p), -float(src.q)) if ssh_pq[cls] else (math.nan, math.nan)
        base = {"name": src.name or "", "bus": bus, "in_service": on}
        if k == slack_k and vm is None:
            if sv_vm_pu is not None and bus in sv_vm_pu.index:
                vm = float(sv_vm_pu[bus])
                notes.append(f"slack {cls} {mrid(src)!r} has no voltage target; SvVoltage {vm:.6f} pu used")
            else:
                vm = 1.0
                notes.append(f"slack {cls} {mrid(src)!r} has no voltage target; 1.0 pu used")
        if k == slack_k and cls == "ExternalNetworkInjection":
            ext.append((mrid(src), base | {"vm_pu": vm, "va_degree": 0.0}))
        elif vm is not None:
            gen.append((mrid(src), base | {"p_mw": 0.0 if math.isnan(p) else p, "vm_pu": vm, "slack": k == slack_k}))
        else:
            sgen.append(
                (mrid(src), base | {"p_mw": 0.0 if math.isnan(p) else p, "q_mvar": 0.0 if math.isnan(q) else q})
            )
        if math.isnan(p) and k != slack_k:
            notes.append(f"{cls} {mrid(src)!r} has no SSH p/q; 0 MW used")

    def frame(items: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
        return pd.DataFrame([r for _, r in items], index=pd.Index([i for i, _ in items], name="id"))

    return Injections(frame(gen), frame(sgen), frame(ext), mrid(srcs[slack_k]) if slack_k is not None else None, notes)
