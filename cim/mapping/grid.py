"""Assemble a :class:`twin.Grid` from a :class:`cim.read.CimModel`, family by family, with an import report.

The report (``grid.meta["cim_report"]``) has one row per CIM class in the model: how many objects,
how many became Grid rows (or were used as parameters of other rows), the table they went to and
why the rest were skipped. Classes that would change the power flow but that gridtwin does not map
yet (any ConductingEquipment outside the mapped families, phase tap changers, load response
characteristics, classes cimpy could not read) are also named in one :class:`CimImportWarning`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cim.mapping.branches import map_lines, map_trafos, patl_ka
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
from twin.grid import Grid

if TYPE_CHECKING:
    from cim.read import CimModel

__all__ = ["CimImportWarning", "to_grid"]

#: classes read as parameters of other rows (not rows themselves)
_USED = {
    "BaseVoltage": "bus/line vn_kv",
    "Terminal": "element buses, connected flag",
    "PowerTransformerEnd": "trafo parameters",
    "RatioTapChanger": "trafo tap columns",
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
    }
)


class CimImportWarning(UserWarning):
    """CIM content that changes the power flow was not imported (see ``grid.meta["cim_report"]``)."""


def _pf_relevant(obj: object) -> bool:
    """Whether an unmapped object would change the power flow."""
    from cimpy.cgmes_v2_4_15.ConductingEquipment import ConductingEquipment

    name = type(obj).__name__
    return isinstance(obj, ConductingEquipment) or "PhaseTapChanger" in name or name == "LoadResponseCharacteristic"


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
    injection) and ``side`` (``from``, ``to``, or ``bus`` for injections). A Terminal can have several
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
    return out.set_index("terminal")


def to_grid(
    model: CimModel, *, name: str = "cgmes", f_hz: float = 50.0, sn_mva: float = 100.0, buses: BusSource = "auto"
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

    Returns
    -------
    Grid
        With ``meta`` keys ``sv`` (SvVoltage by bus id: ``v_kv``, ``angle_deg``, ``vm_pu``),
        ``sv_flow`` (SvPowerFlow by terminal id), ``cim_report`` (per class), ``cim_notes``
        (decisions taken: value sources, remote regulation made local), ``slack`` (mRID of the
        element chosen as slack), ``cim_files`` and, for ConnectivityNode buses in a model that
        also has TopologicalNodes, ``topological_node`` (TopologicalNode id by bus id).

    Warns
    -----
    CimImportWarning
        Classes that change the power flow were not imported; lists them with counts.
    """
    bus, terms = map_buses(model, buses)
    switch, internal = map_switches(model, terms)
    limits = patl_ka(model)
    lines = map_lines(model, terms, f_hz, limits, bus["vn_kv"])
    line = lines.line
    trafo, trafo3w = map_trafos(model, terms)
    trafo = pd.concat([t for t in (trafo, lines.trafo) if len(t)]) if len(lines.trafo) else trafo
    load, load_source = map_loads(model, terms)
    shunt = map_shunts(model, terms)
    shunt = pd.concat([t for t in (shunt, lines.shunt) if len(t)]) if len(lines.shunt) else shunt
    sv = map_sv_voltages(model, bus["vn_kv"])
    inj = map_injections(model, terms, bus["vn_kv"], sv["vm_pu"] if len(sv) else None)
    notes = list(inj.notes)
    if load_source != "SSH":
        notes.append(f"load p/q taken from {load_source} (the files give no SSH values)")
    n_b_pos = 0
    for df in (trafo, trafo3w):
        if "cim_b_positive" in df:
            n_b_pos += int(df.pop("cim_b_positive").sum())
    if n_b_pos:
        notes.append(f"{n_b_pos} transformers have capacitive magnetising b > 0; modelled inductive (i0_percent)")
    if len(lines.trafo):
        notes.append(
            f"{len(lines.trafo)} ACLineSegments join buses of different nominal voltages; modelled as 1:1 "
            "transformers (trafo rows, same mRID) with their charging as shunt rows '<mRID>_shunt1/2'"
        )
    if internal:
        notes.append(f"{internal} switches lie inside one TopologicalNode and were not imported as rows")
    tables = {
        "bus": bus,
        "switch": switch,
        "line": line,
        "trafo": trafo,
        "trafo3w": trafo3w,
        "load": load,
        "shunt": shunt,
        "gen": inj.gen,
        "sgen": inj.sgen,
        "ext_grid": inj.ext_grid,
    }
    cim_terminals = _pop_terminals(tables, terms)
    tap_changers = pd.concat(
        [tables[t].pop("cim_tap_changer").dropna() for t in ("trafo", "trafo3w") if "cim_tap_changer" in tables[t]]
        or [pd.Series(dtype=object)]
    )
    grid = Grid(name=name, sn_mva=sn_mva, f_hz=f_hz, tables={k: v for k, v in tables.items() if len(v)})
    use_tp = uses_topological_nodes(model, buses)
    node_cls = "TopologicalNode" if use_tp else "ConnectivityNode"
    counts = model.class_counts()
    imported: dict[str, tuple[int, str]] = {node_cls: (len(bus), "bus")}
    if node_cls == "TopologicalNode" and counts.get("ConnectivityNode"):
        imported["ConnectivityNode"] = (counts["ConnectivityNode"], "merged into TopologicalNode buses")
    for cls in SWITCH_CLASSES:
        imported[cls] = (sum(1 for o in model.of_class(cls) if o.mRID in switch.index), "switch")
    for cls in LOAD_CLASSES:
        imported[cls] = (counts.get(cls, 0), "load")
    imported |= {
        "ACLineSegment": (len(line) + len(lines.trafo), "line (trafo + shunts between voltage levels)"),
        "PowerTransformer": (len(trafo) - len(lines.trafo) + len(trafo3w), "trafo / trafo3w"),
        "LinearShuntCompensator": (len(shunt) - len(lines.shunt), "shunt"),
    }
    for cls in ("SynchronousMachine", "ExternalNetworkInjection", "EquivalentInjection"):
        imported[cls] = (counts.get(cls, 0), "gen / sgen / ext_grid")
    report = _report(model, imported)
    bad = report[report["unsupported"]]
    if len(bad):
        listed = ", ".join(f"{c} {n}" for c, n in bad["count"].items())
        warnings.warn(
            f"CIM classes not imported (count): {listed}; they change the power flow. See grid.meta['cim_report'].",
            CimImportWarning,
            stacklevel=3,
        )
    grid.meta.update(
        sv=sv,
        sv_flow=map_sv_flows(model),
        cim_report=report,
        cim_notes=notes,
        slack=inj.slack_id,
        cim_files=list(model.files),
        cim_namespace=model.namespace,
        cim_terminals=cim_terminals,
        cim_tap_changers=tap_changers.rename("tap_changer").rename_axis("id").to_frame(),
        source="cgmes",
    )
    if not use_tp and counts.get("TopologicalNode"):
        grid.meta["topological_node"] = pd.Series(
            {mrid(cn): mrid(cn.TopologicalNode) for cn in model.of_class("ConnectivityNode")}, name="topological_node"
        )
    return grid
