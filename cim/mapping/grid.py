"""Assemble a :class:`twin.Grid` from a :class:`cim.read.CimModel`, family by family, with an import report.

The report (``grid.meta["cim_report"]``) has one row per CIM class in the model: how many objects,
how many became Grid rows (or were used as parameters of other rows), the table they went to and
why the rest were skipped. Classes that would change the power flow but that gridtwin does not map
yet (any ConductingEquipment outside the mapped families) are named in one :class:`CimImportWarning`,
with what was mapped only in part (tap changers without a table point for their step, load responses
that are not ZIP, boundary nodes that no file defines).
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cim.mapping.branches import Lines, Magnetising, map_lines, map_trafos, patl_ka
from cim.mapping.injections import LOAD_CLASSES, map_injections, map_loads, map_shunts
from cim.mapping.nodes import (
    SWITCH_CLASSES,
    BusSource,
    Terminals,
    map_buses,
    map_switches,
    mrid,
    uses_topological_nodes,
)
from cim.mapping.state import map_sv_flows, map_sv_voltages
from cim.mapping.taps import PHASE_TAP_CLASSES
from twin.grid import Grid
from twin.topology import find_islands

if TYPE_CHECKING:
    from cim.read import CimModel

__all__ = ["CimImportWarning", "to_grid"]

#: classes read as parameters of other rows (not rows themselves)
_USED = {
    "BaseVoltage": "bus/line vn_kv",
    "Terminal": "element buses, connected flag",
    "PowerTransformerEnd": "trafo parameters",
    "LoadResponseCharacteristic": "load const_z_*/const_i_* percent (ZIP)",
    "RatioTapChangerTable": "trafo fixed ratio at the tap step",
    "RatioTapChangerTablePoint": "trafo fixed ratio at the tap step",
    "PhaseTapChangerTable": "trafo fixed ratio and shift at the tap step",
    "PhaseTapChangerTablePoint": "trafo fixed ratio and shift at the tap step",
    "RegulatingControl": "gen vm_pu",
    "CurrentLimit": "line max_i_ka (PATL)",
    "OperationalLimitSet": "line max_i_ka (PATL)",
    "OperationalLimitType": "PATL / TATL kind",
    "SvVoltage": "meta['sv']",
    "SvPowerFlow": "meta['sv_flow'] (and load p/q without SSH)",
}
#: classes without a power-flow role in gridtwin's model (structure, diagrams, names, state kept elsewhere)
_NO_PF_ROLE = frozenset(
    {
        "Substation",
        "VoltageLevel",
        "Bay",
        "GeographicalRegion",
        "SubGeographicalRegion",
        "BusbarSection",
        "Junction",
        "Connector",
        "OperationalLimitType",
        "VoltageLimit",
        "ActivePowerLimit",
        "ApparentPowerLimit",
        "Diagram",
        "DiagramObject",
        "DiagramObjectPoint",
        "DiagramStyle",
        "DiagramObjectStyle",
        "TextDiagramObject",
        "CoordinateSystem",
        "Location",
        "PositionPoint",
        "Name",
        "NameType",
        "ControlArea",
        "ControlAreaGeneratingUnit",
        "TieFlow",
        "TopologicalIsland",
        "SvStatus",
        "SvTapStep",
        "SvInjection",
        "SvShuntCompensatorSections",
        "LoadArea",
        "SubLoadArea",
        "ConformLoadGroup",
        "NonConformLoadGroup",
        "ConformLoadSchedule",
        "NonConformLoadSchedule",
        "DayType",
        "Season",
        "GeneratingUnit",
        "ThermalGeneratingUnit",
        "HydroGeneratingUnit",
        "WindGeneratingUnit",
        "NuclearGeneratingUnit",
        "SolarGeneratingUnit",
        "FossilFuel",
        "ReactiveCapabilityCurve",
        "CurveData",
        "TapChangerControl",
        "RegulationSchedule",
        "EnergySchedulingType",
        "GeographicalLocationVersion",
        # neutral grounding: no role in a balanced (positive-sequence) power flow
        "Ground",
        "GroundingImpedance",
        "PetersenCoil",
    }
)


class CimImportWarning(UserWarning):
    """CIM content that changes the power flow was not imported (see ``grid.meta["cim_report"]``)."""


def _pf_relevant(obj: object) -> bool:
    """Whether an unmapped object would change the power flow."""
    from cimpy.cgmes_v2_4_15.ConductingEquipment import ConductingEquipment

    name = type(obj).__name__
    return isinstance(obj, ConductingEquipment) or name in PHASE_TAP_CLASSES or name == "RatioTapChanger"


def _report(model: CimModel, imported: dict[str, tuple[int, str]]) -> pd.DataFrame:
    counts = model.class_counts()
    rows = []
    first = {}
    for o in model.objects.values():
        first.setdefault(type(o).__name__, o)
    for cls, n in sorted(counts.items()):
        if cls in imported:
            k, table = imported[cls]
            note = "" if k == n else f"{n - k} not imported ({table})"
            rows.append((cls, n, k, table, note, False))
        elif cls in _USED:
            rows.append((cls, n, n, _USED[cls], "", False))
        elif cls in _NO_PF_ROLE or not _pf_relevant(first[cls]):
            rows.append((cls, n, 0, "", "no power-flow role in gridtwin", False))
        else:
            rows.append((cls, n, 0, "", "not supported yet: changes the power flow", True))
    unknown = Counter()
    for msg, k in model.cimpy_messages.items():
        if msg.startswith("Module ") and msg.endswith(" not implemented"):
            unknown[msg.split()[1]] += k
    rows += [(cls, k, 0, "", "cimpy does not know this class", False) for cls, k in sorted(unknown.items())]
    return pd.DataFrame(rows, columns=["cim_class", "count", "imported", "table", "note", "unsupported"]).set_index(
        "cim_class"
    )


#: (table, terminal column, result element suffix, result side) of branch terminals
_BRANCH_ENDS = (
    ("line", "from", "", "from"),
    ("line", "to", "", "to"),
    ("trafo", "hv", "", "from"),
    ("trafo", "lv", "", "to"),
    ("trafo3w", "hv", "/hv", "from"),
    ("trafo3w", "mv", "/mv", "to"),
    ("trafo3w", "lv", "/lv", "to"),
)


def _pop_terminals(tables: dict[str, pd.DataFrame], terms: Terminals) -> pd.DataFrame:
    """Return which Grid element carries the flow at each Terminal, and drop the ``cim_terminal*`` columns.

    One row per (Terminal, element part): ``equipment`` (ConductingEquipment mRID), ``table``,
    ``element`` (the id in PF results: branch id, ``<trafo3w id>/<side>``, or the row id of an
    injection), ``side`` (``from``, ``to``, or ``bus`` for injections) and ``bus`` (the Terminal's bus
    id). A Terminal can have several
    rows (a segment between voltage levels: its trafo row and its end shunt); its flow is their sum.
    """
    parts = []
    for table, end, suffix, side in _BRANCH_ENDS:
        df = tables[table]
        col = f"cim_terminal_{end}"
        if col in df:
            ids = df.index.astype(str)
            parts.append(
                pd.DataFrame(
                    {
                        "terminal": df[col].to_numpy(),
                        "equipment": ids,
                        "table": table,
                        "element": ids + suffix,
                        "side": side,
                    }
                )
            )
    for table in ("load", "shunt", "gen", "sgen", "ext_grid"):
        df = tables[table]
        if not len(df):
            continue
        own = df["cim_terminal"].isna().to_numpy() if "cim_terminal" in df else np.ones(len(df), bool)
        term = df["cim_terminal"].to_numpy(object).copy() if "cim_terminal" in df else np.empty(len(df), object)
        equip = df["cim_equipment"].to_numpy(object).copy() if "cim_equipment" in df else np.empty(len(df), object)
        ids = df.index.to_numpy(object)
        term[own] = [mrid(terms.of_equipment[i][0]) for i in ids[own]]
        equip[own] = ids[own]
        parts.append(
            pd.DataFrame({"terminal": term, "equipment": equip, "table": table, "element": ids, "side": "bus"})
        )
    for table, df in tables.items():
        tables[table] = df.drop(columns=[c for c in df.columns if c.startswith(("cim_terminal", "cim_equipment"))])
    out = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["terminal", "equipment", "table", "element", "side"])
    )
    out["bus"] = out["terminal"].map(terms.bus_of)
    return out.set_index("terminal")


def _islands(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Island number by bus id: buses joined by in-service branches or closed bus-bus switches.

    A branch end behind an open branch switch joins nothing.
    """
    idx = tables["bus"].index
    sw = tables["switch"]
    cut = pd.MultiIndex.from_arrays([sw["element"].to_numpy(object), sw["bus"].to_numpy(object)]) if len(sw) else None
    ends = [("line", "from_bus", "to_bus"), ("trafo", "hv_bus", "lv_bus")]
    ends += [("trafo3w", "hv_bus", "mv_bus"), ("trafo3w", "hv_bus", "lv_bus"), ("switch", "bus", "element")]
    a, b = [], []
    for table, col_a, col_b in ends:
        df = tables[table]
        if not len(df):
            continue
        if table == "switch":
            on = df["closed"].to_numpy(bool) & (df["et"] == "b").to_numpy()
        else:
            on = df["in_service"].to_numpy(bool, copy=True)
            if cut is not None:
                for col in (col_a, col_b):
                    on &= ~pd.MultiIndex.from_arrays([df.index.to_numpy(object), df[col].to_numpy(object)]).isin(cut)
        a.append(idx.get_indexer(df.loc[on, col_a]))
        b.append(idx.get_indexer(df.loc[on, col_b]))
    f = np.concatenate(a) if a else np.zeros(0, np.int64)
    t = np.concatenate(b) if b else np.zeros(0, np.int64)
    return pd.Series(find_islands(len(idx), f, t), index=idx)


def _notes(tables: dict[str, pd.DataFrame], lines: Lines, internal: set[str], load_source: str) -> list[str]:
    """Decisions of the mapping worth reporting (and pop the helper column ``cim_b_positive``)."""
    notes = []
    if load_source != "SSH":
        notes.append(f"load p/q taken from {load_source} (the files give no SSH values)")
    n_b_pos = sum(
        int(tables[t].pop("cim_b_positive").sum()) for t in ("trafo", "trafo3w") if "cim_b_positive" in tables[t]
    )
    if n_b_pos:
        notes.append(f"{n_b_pos} transformers have capacitive magnetising b > 0; modelled inductive (i0_percent)")
    if len(lines.trafo):
        notes.append(
            f"{len(lines.trafo)} ACLineSegments join buses of different nominal voltages; modelled as 1:1 "
            "transformers (trafo rows, same mRID) with their charging as shunt rows '<mRID>_shunt1/2'"
        )
    if internal:
        notes.append(f"{len(internal)} switches lie inside one TopologicalNode and were not imported as rows")
    return notes


def _imported(
    model: CimModel,
    tables: dict[str, pd.DataFrame],
    ctx: dict[str, Any],
    node_cls: str,
) -> dict[str, tuple[int, str]]:
    """Objects per class that became Grid rows (or parameters of rows), with where they went."""
    counts = model.class_counts()
    imported: dict[str, tuple[int, str]] = {node_cls: (len(tables["bus"]), "bus")}
    if node_cls == "TopologicalNode" and counts.get("ConnectivityNode"):
        imported["ConnectivityNode"] = (counts["ConnectivityNode"], "merged into TopologicalNode buses")
    done = set(tables["switch"].index) | ctx["internal"]
    for cls in SWITCH_CLASSES:
        imported[cls] = (sum(1 for o in model.of_class(cls) if o.mRID in done), "switch (or inside one node)")
    lines, trafos = ctx["lines"], ctx["trafos"]
    for cls in LOAD_CLASSES:
        imported[cls] = (counts.get(cls, 0), "load")
    used_tc = set(trafos.tap_changers["tap_changer"])
    for cls in ("RatioTapChanger", *PHASE_TAP_CLASSES):
        imported[cls] = (
            sum(1 for o in model.of_class(cls) if o.mRID in used_tc),
            "trafo tap columns / fixed ratio, shift",
        )
    imported |= {
        "ACLineSegment": (len(tables["line"]) + len(lines.trafo), "line (trafo + shunts between voltage levels)"),
        "PowerTransformer": (len(trafos.trafo) + len(trafos.trafo3w), "trafo / trafo3w"),
        "LinearShuntCompensator": (len(tables["shunt"]) - len(lines.shunt), "shunt"),
    }
    for cls in ("SynchronousMachine", "ExternalNetworkInjection", "EquivalentInjection", "StaticVarCompensator"):
        imported[cls] = (counts.get(cls, 0), "gen / sgen / ext_grid")
    imported["EnergySource"] = (counts.get("EnergySource", 0), "sgen")
    return imported


def _warn(report: pd.DataFrame, details: list[tuple[str, list[str]]]) -> None:
    """One CimImportWarning for unsupported classes and for content mapped only in part."""
    parts = []
    bad = report[report["unsupported"]]
    if len(bad):
        listed = ", ".join(f"{c} {n}" for c, n in bad["count"].items())
        parts.append(f"CIM classes not imported (count): {listed}; they change the power flow")
    for what, items in details:
        if items:
            shown = "; ".join(items[:10]) + ("; ..." if len(items) > 10 else "")
            parts.append(f"{what} ({len(items)}): {shown}")
    if parts:
        warnings.warn(". ".join(parts) + ". See grid.meta['cim_report'].", CimImportWarning, stacklevel=4)


def _sv_vm_by_bus(model: CimModel, sv: pd.DataFrame, bus: pd.DataFrame, buses: BusSource) -> pd.Series | None:
    """SvVoltage magnitude (pu) per bus; ConnectivityNode buses take their TopologicalNode's."""
    if not len(sv):
        return None
    if uses_topological_nodes(model, buses):
        return sv["vm_pu"]
    tn = pd.Series({mrid(cn): mrid(cn.TopologicalNode) for cn in model.of_class("ConnectivityNode")})
    v_kv = sv["v_kv"].reindex(tn.reindex(bus.index).to_numpy()).to_numpy()
    return pd.Series(v_kv / bus["vn_kv"].to_numpy(), index=bus.index).dropna()


def _tables(
    model: CimModel, buses: BusSource, f_hz: float, magnetising: Magnetising
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Map every family; return the Grid tables and what the report needs."""
    bus, terms, created = map_buses(model, buses)
    switch, internal = map_switches(model, terms)
    lines = map_lines(model, terms, f_hz, patl_ka(model), bus["vn_kv"])
    trafos = map_trafos(model, terms, magnetising)
    load, load_source, inexact = map_loads(model, terms)
    shunt = map_shunts(model, terms)
    tables = {
        "bus": bus,
        "switch": pd.concat([t for t in (switch, lines.open_ends, trafos.open_ends) if len(t)] or [switch]),
        "line": lines.line,
        "trafo": pd.concat([t for t in (trafos.trafo, lines.trafo) if len(t)]) if len(lines.trafo) else trafos.trafo,
        "trafo3w": trafos.trafo3w,
        "load": load,
        "shunt": pd.concat([t for t in (shunt, lines.shunt) if len(t)]) if len(lines.shunt) else shunt,
    }
    sv = map_sv_voltages(model, bus["vn_kv"])
    inj = map_injections(model, terms, bus["vn_kv"], _islands(tables), _sv_vm_by_bus(model, sv, bus, buses))
    tables |= {"gen": inj.gen, "sgen": inj.sgen, "ext_grid": inj.ext_grid}
    notes = inj.notes + trafos.notes + _notes(tables, lines, internal, load_source)
    context = {"terms": terms, "lines": lines, "trafos": trafos, "sv": sv, "inj": inj, "notes": notes}
    context["internal"] = internal
    context["details"] = [
        ("boundary nodes named by Terminals but defined by no file (boundary set missing?), made buses", created),
        ("tap changers not applied", trafos.skipped),
        ("LoadResponseCharacteristics not mapped exactly (ZIP fit or constant power)", sorted(set(inexact))),
    ]
    return tables, context


def to_grid(
    model: CimModel,
    *,
    name: str = "cgmes",
    f_hz: float = 50.0,
    sn_mva: float = 100.0,
    buses: BusSource = "auto",
    magnetising: Magnetising = "end1",
) -> Grid:
    """Map a CimModel to a Grid whose ids are the CIM mRIDs.

    Parameters
    ----------
    model : CimModel
        From :func:`cim.read.read_cgmes`.
    name : str
        Grid name.
    f_hz : float
        Nominal frequency, Hz (CGMES 2.4.15 does not carry it; used for line capacitance).
    sn_mva : float
        System base power, MVA.
    buses : {"auto", "topological", "connectivity"}
        Buses from TopologicalNodes (``auto``: when the model has them) or from ConnectivityNodes
        and switches (node-breaker; the compiler merges closed switches).
    magnetising : {"end1", "middle"}
        Two-winding transformers' magnetising admittance at the terminal of end 1 (CGMES, PowSyBl)
        or in the middle of the T model (NEPLAN); see :mod:`cim.mapping.branches`.

    Returns
    -------
    Grid
        With ``meta`` keys ``sv`` (SvVoltage by bus id: ``v_kv``, ``angle_deg``, ``vm_pu``),
        ``sv_flow`` (SvPowerFlow by terminal id), ``cim_report`` (per class), ``cim_notes``
        (decisions taken: value sources, remote regulation made local), ``slack`` (mRID of the
        largest island's slack), ``slacks`` (one per energised island), ``cim_files``,
        ``cim_tap_changers`` and, for ConnectivityNode buses in a model that also has
        TopologicalNodes, ``topological_node`` (TopologicalNode id by bus id).

    Warns
    -----
    CimImportWarning
        Classes that change the power flow were not imported, or were mapped only in part (tap
        changers without a table point for their step, load responses that are not ZIP); lists
        them with counts and mRIDs.
    """
    tables, ctx = _tables(model, buses, f_hz, magnetising)
    cim_terminals = _pop_terminals(tables, ctx["terms"])
    grid = Grid(name=name, sn_mva=sn_mva, f_hz=f_hz, tables={k: v for k, v in tables.items() if len(v)})
    use_tp = uses_topological_nodes(model, buses)
    report = _report(model, _imported(model, tables, ctx, "TopologicalNode" if use_tp else "ConnectivityNode"))
    _warn(report, ctx["details"])
    grid.meta.update(
        sv=ctx["sv"],
        sv_flow=map_sv_flows(model),
        cim_report=report,
        cim_notes=ctx["notes"],
        slack=ctx["inj"].slack_id,
        slacks=list(ctx["inj"].slack_ids),
        cim_files=list(model.files),
        cim_namespace=model.namespace,
        cim_terminals=cim_terminals,
        cim_tap_changers=ctx["trafos"].tap_changers,
        source="cgmes",
    )
    if not use_tp and model.class_counts().get("TopologicalNode"):
        grid.meta["topological_node"] = pd.Series(
            {mrid(cn): mrid(cn.TopologicalNode) for cn in model.of_class("ConnectivityNode")}, name="topological_node"
        )
    return grid
