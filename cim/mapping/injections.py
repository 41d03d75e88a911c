"""Injections: loads, machines, external and equivalent injections, shunts; slack choice.

CIM gives ``p, q`` of loads, machines and injections in load sign convention (positive = out of
the node into the equipment). Loads keep that sign; generating units are turned around
(generator convention, ``p_mw`` fed in). Where a file has no SSH values for loads (NEPLAN's CIGRE
MV export), their ``p, q`` come from the SvPowerFlow at their terminal; the source is reported.

Voltage control: a SynchronousMachine, ExternalNetworkInjection, EquivalentInjection or
StaticVarCompensator that regulates voltage becomes a ``gen`` (``vm_pu`` = target over the regulated
node's nominal voltage, held at its own bus), otherwise an ``sgen``; an EnergySource is an ``sgen``.
Every energised island (buses joined by in-service branches and closed switches, holding an in-service
regulating unit or ExternalNetworkInjection) gets one slack: the lowest positive
``referencePriority``, else the largest (ratedS, then maxP, then |p|). A slack ExternalNetworkInjection
becomes an ``ext_grid`` row, a slack SynchronousMachine a ``gen`` with ``slack=True``.
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

#: consumers → ``load`` (AsynchronousMachine: a motor, or a generator with p < 0, at its SSH p, q, as PowSyBl)
LOAD_CLASSES = ("EnergyConsumer", "ConformLoad", "NonConformLoad", "StationSupply", "AsynchronousMachine")
_SOURCE_CLASSES = (
    "SynchronousMachine",
    "ExternalNetworkInjection",
    "EquivalentInjection",
    "StaticVarCompensator",
    "EnergySource",
)


def _sv_flow(model: CimModel) -> dict[str, tuple[float, float]]:
    """SvPowerFlow ``(p_mw, q_mvar)`` per Terminal mRID (load sign convention)."""
    return {mrid(f.Terminal): (float(f.p), float(f.q)) for f in model.of_class("SvPowerFlow") if f.Terminal}


_ZIP_COLUMNS = ("const_z_p_percent", "const_i_p_percent", "const_z_q_percent", "const_i_q_percent")


def _exponent_shares(e: float) -> tuple[float, float] | None:
    """(Z, I) shares (%) of ``V**e``: exact for e = 0, 1, 2; for 0 < e < 2 the ZIP mix with the same value and
    slope at 1 pu (``e = k + f`` → ``1 - f`` at exponent k, ``f`` at k + 1); None outside [0, 2]."""
    if not 0.0 <= e <= 2.0:
        return None
    k = min(int(e), 1)
    f = e - k
    share = {k: 1.0 - f, k + 1: f}
    return 100.0 * share.get(2, 0.0), 100.0 * share.get(1, 0.0)


def _zip_shares(lrc: Any, inexact: list[str]) -> dict[str, float]:
    """ZIP columns of a LoadResponseCharacteristic; records the mRID in ``inexact`` where not exact."""
    out: dict[str, float] = {}
    for pq in ("p", "q"):
        if lrc.exponentModel:
            e = float(getattr(lrc, f"{pq}VoltageExponent"))
            zi = _exponent_shares(e)
            if zi is None or e not in (0.0, 1.0, 2.0):
                inexact.append(f"{mrid(lrc)} ({pq}VoltageExponent {e:g})")
            z, i = zi if zi is not None else (0.0, 0.0)
        else:
            z = float(getattr(lrc, f"{pq}ConstantImpedance"))
            i = float(getattr(lrc, f"{pq}ConstantCurrent"))
            total = z + i + float(getattr(lrc, f"{pq}ConstantPower"))
            if abs(total - 1.0) > 1e-6:
                inexact.append(f"{mrid(lrc)} ({pq} shares sum to {total:g}; normalised)")
            z, i = (100.0 * z / total, 100.0 * i / total) if total else (0.0, 0.0)
        out[f"const_z_{pq}_percent"], out[f"const_i_{pq}_percent"] = z, i
    return out


def map_loads(model: CimModel, terms: Terminals) -> tuple[pd.DataFrame, str, list[str]]:
    """Return the ``load`` table, where ``p, q`` came from (``"SSH"``, ``"SvPowerFlow"`` or ``"none"``), and
    the LoadResponseCharacteristics not mapped exactly.

    A load's LoadResponseCharacteristic sets pandapower's ZIP columns (``const_z_p_percent``,
    ``const_i_p_percent``, ``const_z_q_percent``, ``const_i_q_percent``): the ZIP model
    (``exponentModel`` false) from its constant-impedance and constant-current shares (normalised to
    their sum with the constant-power share), the exponent model exactly for exponents 0, 1 and 2
    and, for exponents between, by the ZIP mix with the same value and slope at 1 pu (listed as not
    exact, as are exponents outside [0, 2], which become constant power). Frequency exponents do not
    enter a power flow at nominal frequency.
    """
    loads = model.of_class(*LOAD_CLASSES)
    has_ssh = any(model.has(f"{c}.p") for c in (*LOAD_CLASSES, "RotatingMachine"))
    sv = _sv_flow(model)
    source = "SSH" if has_ssh or not loads else ("SvPowerFlow" if sv else "none")
    rows, ids, inexact = [], [], []
    shares: dict[str, dict[str, float]] = {}
    for ld in loads:
        (bus,) = terms.buses(ld, 1)
        if source == "SvPowerFlow":
            p, q = sv.get(mrid(terms.of_equipment[mrid(ld)][0]), (0.0, 0.0))
        else:
            p, q = float(ld.p), float(ld.q)
        row = {"name": ld.name or "", "bus": bus, "p_mw": p, "q_mvar": q, "in_service": terms.all_connected(ld)}
        lrc = getattr(ld, "LoadResponse", None)
        if lrc is not None:
            if mrid(lrc) not in shares:
                shares[mrid(lrc)] = _zip_shares(lrc, inexact)
            row |= shares[mrid(lrc)]
        rows.append(row)
        ids.append(mrid(ld))
    if source == "none":
        warnings.warn(
            f"{len(loads)} loads have neither SSH p/q nor SvPowerFlow; imported with p = q = 0",
            UserWarning,
            stacklevel=3,
        )
    df = pd.DataFrame(rows, index=pd.Index(ids, name="id"))
    if len(df):
        for col in _ZIP_COLUMNS:
            df[col] = df[col].fillna(0.0) if col in df else 0.0
    return df, source, inexact


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
    """Tables of sources and what the mapping decided.

    ``slack_ids`` holds one slack per energised island, the largest island's first; ``slack_id``
    is that first one (None when no island has a candidate).
    """

    gen: pd.DataFrame
    sgen: pd.DataFrame
    ext_grid: pd.DataFrame
    slack_ids: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def slack_id(self) -> str | None:
        """The slack of the largest energised island."""
        return self.slack_ids[0] if self.slack_ids else None


def _is_regulating(src: Any, model: CimModel) -> bool:
    """Whether a regulating unit's RegulatingControl is on, in voltage mode, with a target."""
    rc = src.RegulatingControl
    enabled = src.controlEnabled if model.has("RegulatingCondEq.controlEnabled") else rc is not None
    if rc is None or not enabled or str(rc.mode or "voltage").rsplit(".", 1)[-1] != "voltage":
        return False
    return bool(rc.targetValue) and not (model.has("RegulatingControl.enabled") and not rc.enabled)


def _voltage_target(
    src: Any, model: CimModel, terms: Terminals, bus: str, bus_vn_kv: pd.Series
) -> tuple[float | None, str]:
    """Return ``(vm_pu or None, note)`` for a source: None when it does not regulate voltage.

    The target is in per unit of the regulated node's nominal voltage; a remote node's target is
    applied at the unit's own bus (noted), as OpenLoadFlow does without remote voltage control.
    EnergySources are fixed injections.
    """
    cls = type(src).__name__
    if cls == "EquivalentInjection":
        if not (src.regulationCapability and src.regulationStatus and src.regulationTarget):
            return None, ""
        return float(src.regulationTarget) / float(bus_vn_kv[bus]), ""
    if cls == "EnergySource" or not _is_regulating(src, model):
        return None, ""
    rc = src.RegulatingControl
    target_bus, note = bus, ""
    if rc.Terminal is not None and terms.bus_of.get(mrid(rc.Terminal), bus) != bus:
        target_bus = terms.bus_of[mrid(rc.Terminal)]
        note = f"{cls} {mrid(src)!r} regulates remote bus {target_bus!r}; its target (pu) is held at its own bus"
    return float(rc.targetValue) / float(bus_vn_kv[target_bus]), note


def _size_key(src: Any) -> tuple[float, float, float]:
    """Size of a source for the slack choice: ratedS (MVA), then maxP (MW), then |p| (MW), compared in turn.

    Exports that give every unit the same rating (PowSyBl's IEEE networks: ratedS = 9999) are told
    apart by the active power set-point.
    """
    unit = getattr(src, "GeneratingUnit", None)
    max_p = getattr(src, "maxP", 0.0) or getattr(unit, "maxOperatingP", 0.0) or 0.0
    return float(getattr(src, "ratedS", 0.0) or 0.0), float(max_p), abs(float(getattr(src, "p", 0.0)))


def _choose_slacks(cands: list[tuple[Any, str, int]], island_of: pd.Series) -> list[int]:
    """One candidate per island: lowest positive referencePriority, else the largest (:func:`_size_key`).

    ``cands`` are ``(source, bus, position)``; islands are ordered by their number of buses (largest first).
    """
    best: dict[int, tuple[tuple[float, ...], int]] = {}
    for src, bus, k in cands:
        prio = int(getattr(src, "referencePriority", 0) or 0)
        key = (prio if prio > 0 else 1 << 30, *(-v for v in _size_key(src)), k)
        isl = int(island_of[bus])
        if isl not in best or key < best[isl][0]:
            best[isl] = (key, k)
    size = island_of.value_counts()
    return [best[i][1] for i in sorted(best, key=lambda i: (-size[i], i))]


def _source_rows(
    info: list[tuple[Any, str, float | None, bool]],
    slacks: set[int],
    ssh_pq: dict[str, bool],
    sv_vm_pu: pd.Series | None,
) -> tuple[dict[str, list[tuple[str, dict[str, Any]]]], list[str]]:
    """gen / sgen / ext_grid rows of the sources (``info``: source, bus, voltage target, in service)."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {"gen": [], "sgen": [], "ext_grid": []}
    notes = []
    for k, (src, bus, vm_target, on) in enumerate(info):
        vm, cls, is_slack = vm_target, type(src).__name__, k in slacks
        p_attr, q_attr = ("activePower", "reactivePower") if cls == "EnergySource" else ("p", "q")
        has_p = ssh_pq[cls] and hasattr(src, p_attr)
        p = -float(getattr(src, p_attr)) if has_p else (0.0 if cls == "StaticVarCompensator" else math.nan)
        q = -float(getattr(src, q_attr)) if ssh_pq[cls] else math.nan
        base = {"name": src.name or "", "bus": bus, "in_service": on}
        if is_slack and vm is None:
            if sv_vm_pu is not None and bus in sv_vm_pu.index:
                vm = float(sv_vm_pu[bus])
                notes.append(f"slack {cls} {mrid(src)!r} has no voltage target; SvVoltage {vm:.6f} pu used")
            else:
                vm = 1.0
                notes.append(f"slack {cls} {mrid(src)!r} has no voltage target; 1.0 pu used")
        if is_slack and cls == "ExternalNetworkInjection":
            out["ext_grid"].append((mrid(src), base | {"vm_pu": vm, "va_degree": 0.0}))
        elif vm is not None:
            row = base | {"p_mw": 0.0 if math.isnan(p) else p, "vm_pu": vm, "slack": is_slack}
            out["gen"].append((mrid(src), row))
        else:
            row = base | {"p_mw": 0.0 if math.isnan(p) else p, "q_mvar": 0.0 if math.isnan(q) else q}
            out["sgen"].append((mrid(src), row))
        if math.isnan(p) and not is_slack:
            notes.append(f"{cls} {mrid(src)!r} has no SSH p/q; 0 MW used")
    return out, notes


def map_injections(
    model: CimModel,
    terms: Terminals,
    bus_vn_kv: pd.Series,
    island_of: pd.Series,
    sv_vm_pu: pd.Series | None = None,
) -> Injections:
    """Map SynchronousMachine, ExternalNetworkInjection, EquivalentInjection and StaticVarCompensator; choose slacks.

    Parameters
    ----------
    model, terms
        The model and its terminal resolution.
    bus_vn_kv : Series
        Nominal voltage (kV) by bus id.
    island_of : Series
        Island number by bus id (buses joined by in-service branches and closed switches): every
        island with an in-service voltage-regulating unit or external network injection gets a slack.
    sv_vm_pu : Series, optional
        SvVoltage magnitudes (pu) by bus id: the set-point of a slack whose file gives none
        (no SSH), noted in the report.
    """
    srcs = model.of_class(*_SOURCE_CLASSES)
    notes: list[str] = []
    tags = {
        "SynchronousMachine": ("RotatingMachine.p", "RotatingMachine.q"),
        "EnergySource": ("EnergySource.activePower",),
    }
    ssh_pq = {c: any(model.has(t) for t in tags.get(c, (f"{c}.p", f"{c}.q"))) for c in _SOURCE_CLASSES}
    cands: list[tuple[Any, str, int]] = []
    info = []
    for k, src in enumerate(srcs):
        (bus,) = terms.buses(src, 1)
        vm, note = _voltage_target(src, model, terms, bus, bus_vn_kv)
        if note:
            notes.append(note)
        on = terms.all_connected(src)
        info.append((src, bus, vm, on))
        cls = type(src).__name__
        if on and cls != "StaticVarCompensator" and (vm is not None or cls == "ExternalNetworkInjection"):
            cands.append((src, bus, k))
    slack_k = _choose_slacks(cands, island_of)
    rows, more = _source_rows(info, set(slack_k), ssh_pq, sv_vm_pu)
    if len(slack_k) > 1:
        notes.append(f"{len(slack_k)} energised islands, one slack each: {[mrid(srcs[k]) for k in slack_k]}")

    def frame(items: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
        return pd.DataFrame([r for _, r in items], index=pd.Index([i for i, _ in items], name="id"))

    return Injections(
        frame(rows["gen"]), frame(rows["sgen"]), frame(rows["ext_grid"]), [mrid(srcs[k]) for k in slack_k], notes + more
    )
