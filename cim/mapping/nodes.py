"""Buses and switches: TopologicalNode (bus-branch) or ConnectivityNode (node-breaker) → ``bus``; Switch → ``switch``.

With a TP profile every TopologicalNode becomes a bus (id = its mRID). Without one, every
ConnectivityNode becomes a bus and every Switch a bus-bus switch row (``et="b"``) that the
compiler merges when closed. :class:`Terminals` resolves a Terminal to its bus id and tells
whether it is connected.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

if TYPE_CHECKING:
    from cim.read import CimModel

__all__ = [
    "SWITCH_CLASSES",
    "BusSource",
    "CimMappingError",
    "Terminals",
    "base_kv",
    "map_buses",
    "map_switches",
    "mrid",
    "uses_topological_nodes",
]

SWITCH_CLASSES = (
    "Switch",
    "Breaker",
    "Disconnector",
    "LoadBreakSwitch",
    "Fuse",
    "Jumper",
    "GroundDisconnector",
    "DisconnectingCircuitBreaker",
    "Cut",
)
_SWITCH_TYPE = {
    "Breaker": "CB",
    "DisconnectingCircuitBreaker": "CB",
    "Disconnector": "DS",
    "LoadBreakSwitch": "LBS",
    "Fuse": "FUSE",
}


class CimMappingError(ValueError):
    """The CIM data cannot be mapped to a Grid; the message names the object (mRID)."""


def mrid(obj: Any) -> str:
    """Return the mRID of a cimpy object (``""`` for ``None``)."""
    return "" if obj is None else str(obj.mRID)


def base_kv(obj: Any) -> float:
    """Nominal voltage (kV) of an equipment or node: its BaseVoltage, else its container's.

    The container is the node's VoltageLevel, or the VoltageLevel of its Bay.

    Raises
    ------
    CimMappingError
        Neither the object nor its VoltageLevel (directly or through a Bay) names a BaseVoltage.
    """
    bv = getattr(obj, "BaseVoltage", None)
    if bv is None:
        container = getattr(obj, "ConnectivityNodeContainer", None) or getattr(obj, "EquipmentContainer", None)
        if type(container).__name__ == "Bay":  # a Bay belongs to a VoltageLevel
            container = getattr(container, "VoltageLevel", None)
        bv = getattr(container, "BaseVoltage", None)
    if bv is None or not bv.nominalVoltage:
        raise CimMappingError(
            f"{type(obj).__name__} {mrid(obj)!r} has no BaseVoltage (neither its own nor its VoltageLevel's)"
        )
    return float(bv.nominalVoltage)


@dataclass
class Terminals:
    """Terminal → bus resolution for one model.

    Attributes
    ----------
    bus_of : dict of str to str
        Bus id of every Terminal mRID.
    connected : dict of str to bool
        ``Terminal.connected`` (True when no file gives the attribute).
    of_equipment : dict of str to list
        Terminals of each ConductingEquipment mRID, by sequenceNumber.
    """

    bus_of: dict[str, str]
    connected: dict[str, bool]
    of_equipment: dict[str, list[Any]]

    def buses(self, equipment: Any, n: int) -> list[str]:
        """Return the bus ids of the first ``n`` terminals of ``equipment``; raise naming it if it has fewer."""
        terms = self.of_equipment.get(mrid(equipment), [])
        if len(terms) < n:
            raise CimMappingError(
                f"{type(equipment).__name__} {mrid(equipment)!r} has {len(terms)} Terminal(s); {n} expected"
            )
        return [self.bus_of[mrid(t)] for t in terms[:n]]

    def all_connected(self, equipment: Any) -> bool:
        """Whether every terminal of ``equipment`` is connected."""
        return all(self.connected[mrid(t)] for t in self.of_equipment.get(mrid(equipment), []))


BusSource = Literal["auto", "topological", "connectivity"]


def uses_topological_nodes(model: CimModel, buses: BusSource = "auto") -> bool:
    """Whether buses come from TopologicalNodes (``auto``: when the model has a TP profile)."""
    if buses not in ("auto", "topological", "connectivity"):
        raise ValueError(f"buses must be 'auto', 'topological' or 'connectivity', not {buses!r}")
    if buses == "auto":
        return bool(model.of_class("TopologicalNode"))
    return buses == "topological"


def _node_kv(node: Any) -> float:
    """Nominal voltage of a node: :func:`base_kv`; a ConnectivityNode outside any VoltageLevel (in a Line
    container, as on boundaries) takes its TopologicalNode's BaseVoltage."""
    container = type(getattr(node, "ConnectivityNodeContainer", None)).__name__
    tn = getattr(node, "TopologicalNode", None)
    if container not in ("VoltageLevel", "Bay") and getattr(tn, "BaseVoltage", None) is not None:
        return base_kv(tn)
    return base_kv(node)


def _boundary_nodes(model: CimModel, missing: dict[str, list[Any]], node_class: str) -> pd.DataFrame:
    """Buses for nodes that Terminals name but no file defines, where an EquivalentInjection sits on them.

    Such a node is a boundary node whose boundary set (EQ_BD/TP_BD) was not given (ENTSO-E MiniGrid
    ships without one); its nominal voltage is that of the other equipment on it. Any other missing
    node raises, naming the Terminal.
    """
    rows, ids = [], []
    for ref, terms in missing.items():
        kinds = {type(t.ConductingEquipment).__name__ for t in terms}
        kv = [
            base_kv(t.ConductingEquipment)
            for t in terms
            if getattr(t.ConductingEquipment, "BaseVoltage", None) is not None
        ]
        if "EquivalentInjection" not in kinds or not kv:
            raise CimMappingError(f"Terminal {mrid(terms[0])!r} refers to {node_class} {ref!r}, which no file defines")
        rows.append({"name": f"boundary node {ref} (not defined in the files)", "vn_kv": kv[0], "zone": ""})
        ids.append(ref)
    return pd.DataFrame(rows, index=pd.Index(ids, name="id"))


def map_buses(model: CimModel, buses: BusSource = "auto") -> tuple[pd.DataFrame, Terminals, list[str]]:
    """Return the ``bus`` table, the Terminal → bus resolution and the boundary nodes created.

    Parameters
    ----------
    model : CimModel
    buses : {"auto", "topological", "connectivity"}
        Build buses from TopologicalNodes (``auto``: when present) or from ConnectivityNodes
        (node-breaker detail; switches then become bus-bus switch rows).

    Returns
    -------
    bus : DataFrame
    terminals : Terminals
    created : list of str
        Boundary nodes named by Terminals but defined by no file, made buses (:func:`_boundary_nodes`).
        A Terminal without any node that belongs to a boundary Junction (the boundary set gives only
        its ConnectivityNode) is left out with its Junction, which has no power-flow role.

    Raises
    ------
    CimMappingError
        A Terminal names a node that no file defines (other than a boundary node), names none, or a
        node has no BaseVoltage; the message gives the mRIDs.
    """
    use_tp = uses_topological_nodes(model, buses)
    node_class = "TopologicalNode" if use_tp else "ConnectivityNode"
    nodes = model.of_class(node_class)
    bus = pd.DataFrame(
        {
            "name": [n.name or "" for n in nodes],
            "vn_kv": [_node_kv(n) for n in nodes],
            "zone": [mrid(getattr(n.ConnectivityNodeContainer, "Substation", None)) for n in nodes],
        },
        index=pd.Index([mrid(n) for n in nodes], name="id"),
    )
    has_connected = model.has("ACDCTerminal.connected") or model.has("Terminal.connected")
    bus_of: dict[str, str] = {}
    connected: dict[str, bool] = {}
    of_eq: dict[str, list[Any]] = defaultdict(list)
    missing: dict[str, list[Any]] = defaultdict(list)
    for t in model.of_class("Terminal"):
        tid = mrid(t)
        if t.ConductingEquipment is None:
            ref = model.terminal_refs.get(tid, {}).get("Terminal.ConductingEquipment")
            raise CimMappingError(f"Terminal {tid!r} refers to ConductingEquipment {ref!r}, which no file defines")
        node = t.TopologicalNode if use_tp else t.ConnectivityNode
        if use_tp and node is None and t.ConnectivityNode is not None:
            node = t.ConnectivityNode.TopologicalNode
        if node is None:
            ref = model.terminal_refs.get(tid, {}).get(f"Terminal.{node_class}")
            if ref:
                missing[ref].append(t)
                bus_of[tid] = ref
            elif type(t.ConductingEquipment).__name__ == "Junction":
                continue
            else:
                raise CimMappingError(f"Terminal {tid!r} names no {node_class}")
        else:
            bus_of[tid] = mrid(node)
        connected[tid] = bool(t.connected) if has_connected else True
        of_eq[mrid(t.ConductingEquipment)].append(t)
    for terms in of_eq.values():
        terms.sort(key=lambda t: t.sequenceNumber)
    if missing:
        bus = pd.concat([bus, _boundary_nodes(model, missing, node_class)])
    return bus, Terminals(bus_of, connected, dict(of_eq)), sorted(missing)


def map_switches(model: CimModel, terms: Terminals) -> tuple[pd.DataFrame, set[str]]:
    """Return the ``switch`` table (bus-bus rows) and the mRIDs of the switches inside one node.

    The state is ``Switch.open`` (SSH) when given, else ``Switch.normalOpen``; a switch with a
    disconnected terminal is open. A switch whose two terminals sit on the same bus (inside one
    TopologicalNode) has no effect and is left out (counted).
    """
    has_open = model.has("Switch.open")
    rows, ids, internal = [], [], set()
    for sw in model.of_class(*SWITCH_CLASSES):
        a, b = terms.buses(sw, 2)
        if a == b:
            internal.add(mrid(sw))
            continue
        is_open = bool(sw.open) if has_open else bool(sw.normalOpen)
        rows.append(
            {
                "name": sw.name or "",
                "bus": a,
                "element": b,
                "et": "b",
                "closed": not is_open and terms.all_connected(sw),
                "type": _SWITCH_TYPE.get(type(sw).__name__, "SW"),
            }
        )
        ids.append(mrid(sw))
    return pd.DataFrame(rows, index=pd.Index(ids, name="id")), internal
