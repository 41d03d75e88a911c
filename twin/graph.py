"""The multilayer graph of a grid: physical layer, communication layer and the edges between them.

:meth:`MultiLayerGraph.from_grid` turns a :class:`twin.Grid` (and optionally a :class:`twin.comm.CommLayer`) into
arrays once: node and edge tables, the energised topology, and a *supply tree*, a breadth-first tree grown from
the sources (in-service ``ext_grid`` rows and slack ``gen`` rows) over conducting branches. Every query is then
an array operation on that tree or one scipy traversal, never one traversal per meter or per load.

- Physical nodes are bus ids; a three-winding transformer adds a star node keyed by its own id.
- Physical edges are lines, transformers (``trafo3w``: three edges hv/mv/lv → star) and bus-bus switches, keyed by
  element id. Switches on a line or transformer are not edges: they set the ``closed`` attribute of that element's
  edge (``switches`` lists their ids). Loads, sgens, gens, storage, shunts and ext_grids are node attributes
  (tuples of ids), so "what is at this bus" is a lookup.
- The *radial energised view*: a bus is supplied through the last transformer on its path from a source in the
  supply tree. In a radially operated grid the tree is the grid; in a meshed part the tree takes the path with the
  fewest branches (ties by bus order), so every bus still has exactly one supplying transformer.

networkx views (:meth:`physical`, :meth:`comm`, :meth:`cross`) are built on demand for exploration and plots;
the queries do not use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order

from twin.topology import merge_buses, nearest_marked_ancestor

if TYPE_CHECKING:
    from collections.abc import Iterable

    from twin.comm import CommLayer
    from twin.grid import Grid

__all__ = ["MultiLayerGraph", "nearest_marked_ancestor"]

_TRAFO_KINDS = ("trafo", "trafo3w")
_BUS_ELEMENTS = ("load", "sgen", "gen", "storage", "shunt", "ext_grid")
_SEP = "\x1f"  # joins a trafo3w id and a bus id into the key of one winding


def _frame(
    u: object, v: object, kind: str, element: pd.Index, side: str, in_service: object, closed: object
) -> pd.DataFrame:
    n = len(element)
    return pd.DataFrame(
        {
            "u": np.asarray(u, dtype=object),
            "v": np.asarray(v, dtype=object),
            "kind": np.full(n, kind, dtype=object),
            "element": np.asarray(element, dtype=object),
            "side": np.full(n, side, dtype=object),
            "in_service": np.broadcast_to(np.asarray(in_service, dtype=bool), (n,)),
            "closed": np.broadcast_to(np.asarray(closed, dtype=bool), (n,)),
        }
    )


def _edge_table(grid: Grid) -> pd.DataFrame:
    """Return one row per physical edge: u, v (node ids), kind, element, side, in_service, closed, switches."""
    line, trafo, t3, sw = grid.line, grid.trafo, grid.trafo3w, grid.switch
    bb = sw[sw["et"] == "b"]
    parts = [
        _frame(line["from_bus"], line["to_bus"], "line", line.index, "", line["in_service"], True),
        _frame(trafo["hv_bus"], trafo["lv_bus"], "trafo", trafo.index, "", trafo["in_service"], True),
        *(_frame(t3[f"{s}_bus"], t3.index, "trafo3w", t3.index, s, t3["in_service"], True) for s in ("hv", "mv", "lv")),
        _frame(bb["bus"], bb["element"], "switch", bb.index, "", True, bb["closed"]),
    ]
    edges = pd.concat(parts, ignore_index=True)
    # switches on lines/trafos act on that element's edge; on a trafo3w only on the winding at the switch's bus
    is_t3 = edges["kind"] == "trafo3w"
    edge_key = edges["element"].where(~is_t3, edges["element"] + _SEP + edges["u"]).to_numpy()
    es = sw[sw["et"] != "b"]
    bad_et = es.index[~es["et"].isin(["l", "t", "t3"])]
    if len(bad_et):
        raise ValueError(f"switch {bad_et[:5].tolist()}: et must be 'b', 'l', 't' or 't3'; fix the switch table")
    sw_key = es["element"].where(es["et"] != "t3", es["element"] + _SEP + es["bus"]).to_numpy()
    unknown = es.index[~pd.Index(sw_key).isin(edge_key)]
    if len(unknown):
        raise ValueError(
            f"switch {unknown[:5].tolist()} refers to an element (or trafo3w winding at its bus) that does not "
            "exist; fix the switch's element/bus or add the element"
        )
    switches = pd.Series(es.index.to_numpy(), index=sw_key).groupby(level=0, sort=False).agg(tuple).to_dict()
    edges["switches"] = [switches.get(k, ()) for k in edge_key]
    is_open = pd.Index(edge_key).isin(sw_key[~es["closed"].to_numpy(bool)]) & (edges["kind"] != "switch").to_numpy()
    edges.loc[is_open, "closed"] = False
    return edges


def _node_table(grid: Grid) -> pd.DataFrame:
    """Return one row per physical node: buses, then trafo3w star nodes."""
    bus = grid.bus
    clash = grid.trafo3w.index.intersection(bus.index)
    if len(clash):
        raise ValueError(f"trafo3w ids {clash[:5].tolist()} equal bus ids; rename them (star nodes take the id)")
    stars = pd.DataFrame(
        {"kind": "trafo3w", "vn_kv": grid.trafo3w["vn_hv_kv"], "in_service": grid.trafo3w["in_service"]},
        index=grid.trafo3w.index,
    )
    buses = pd.DataFrame({"kind": "bus", "vn_kv": bus["vn_kv"], "in_service": bus["in_service"]}, index=bus.index)
    nodes = pd.concat([buses, stars])
    nodes["in_service"] = nodes["in_service"].astype(bool)
    return nodes


def _positions(nodes: pd.Index, ids: pd.Series | pd.Index, edges: pd.DataFrame, what: str) -> np.ndarray:
    pos = nodes.get_indexer(pd.Index(ids))
    if (pos < 0).any():
        bad = edges.loc[pos < 0, ["kind", "element"]].head(5).to_numpy().tolist()
        raise ValueError(f"{what} bus ids not in the bus table for {bad}; fix those elements' bus references")
    return pos.astype(np.int64)


@dataclass(frozen=True, slots=True)
class _SupplyTree:
    """Arrays over node positions (length n + 1: the last entry is the virtual root above all sources)."""

    parent: np.ndarray  # int64, -1 at the root and at unsupplied nodes
    energised: np.ndarray  # bool
    island: np.ndarray  # int64 (nodes only, length n)
    trafo: np.ndarray  # object: id of the supplying transformer, "" where none
    children: sp.csr_matrix  # parent -> child


def _source_positions(grid: Grid, nodes: pd.Index) -> np.ndarray:
    ext = grid.ext_grid
    gen = grid.gen
    buses = pd.concat([ext["bus"][ext["in_service"]], gen["bus"][gen["in_service"] & gen["slack"]]])
    pos = nodes.get_indexer(pd.Index(buses))
    if (pos < 0).any():
        raise ValueError(f"ext_grid/gen {buses.index[pos < 0][:5].tolist()} sit at buses not in the bus table")
    return np.unique(pos)


def _trafo_marks(edges: pd.DataFrame, parent: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mark each node whose tree edge from its parent is a conducting transformer (first id of parallel units)."""
    tr = edges[edges["kind"].isin(_TRAFO_KINDS) & edges["conducting"]].sort_values("element", kind="stable")
    lo = np.minimum(tr["u_pos"], tr["v_pos"]).to_numpy()
    hi = np.maximum(tr["u_pos"], tr["v_pos"]).to_numpy()
    keys = pd.Index(lo * (n + 1) + hi)
    first = ~keys.duplicated()
    keys, names = keys[first], tr["element"].to_numpy()[first]
    child = np.arange(n + 1)
    p = parent
    child_keys = np.minimum(child, p) * (n + 1) + np.maximum(child, p)
    hit = keys.get_indexer(child_keys)
    hit[(p < 0) | (p == n)] = -1
    return hit.astype(np.int64), names


def _supply_tree(grid: Grid, nodes: pd.DataFrame, edges: pd.DataFrame) -> _SupplyTree:
    n = len(nodes)
    on = edges["conducting"].to_numpy()
    u, v = edges["u_pos"].to_numpy()[on], edges["v_pos"].to_numpy()[on]
    src = _source_positions(grid, nodes.index)
    src = src[nodes["in_service"].to_numpy()[src]] if src.size else src
    rows = np.concatenate([u, np.full(src.size, n)])
    cols = np.concatenate([v, src])
    adj = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n + 1, n + 1)).tocsr()
    order, pred = breadth_first_order(adj, n, directed=False, return_predecessors=True)
    parent = np.where(pred < 0, -1, pred).astype(np.int64)
    energised = np.zeros(n + 1, dtype=bool)
    energised[order] = True
    mark, names = _trafo_marks(edges, parent, n)
    code = nearest_marked_ancestor(parent, mark)
    trafo = np.where(code >= 0, names[np.maximum(code, 0)] if names.size else "", "").astype(object)
    island, _ = merge_buses(n, u, v)
    has_child = parent >= 0
    children = sp.csr_matrix(
        (np.ones(has_child.sum(), dtype=np.int8), (parent[has_child], np.flatnonzero(has_child))),
        shape=(n + 1, n + 1),
    )
    return _SupplyTree(parent=parent, energised=energised, island=island, trafo=trafo, children=children)


class MultiLayerGraph:
    """Physical grid, communication network and the cross-layer edges, with control-room queries.

    Build with :meth:`from_grid`. The object is read-only: after a switching action or a change of a link
    status, build a new one (about a second for 10,000 buses and meters).

    Attributes
    ----------
    grid : Grid
        The grid the graph was built from.
    comm_layer : CommLayer or None
        The communication layer, when one was given.
    """

    def __init__(self, grid: Grid, comm: CommLayer | None, nodes: pd.DataFrame, edges: pd.DataFrame) -> None:
        self.grid = grid
        self.comm_layer = comm
        self._nodes = nodes
        self._edges = edges
        self._tree = _supply_tree(grid, nodes, edges)
        self._views: dict[str, nx.Graph] = {}

    @classmethod
    def from_grid(cls, grid: Grid, comm: CommLayer | None = None) -> MultiLayerGraph:
        """Build the graph of ``grid`` and, when given, of its communication layer ``comm``.

        Parameters
        ----------
        grid : Grid
            The physical grid.
        comm : CommLayer, optional
            Communication layer; its grid references are checked against ``grid``.

        Raises
        ------
        ValueError
            If an element refers to a missing bus, a switch to a missing element, or the comm layer to a
            missing grid element (the message names the ids and how to fix them).
        """
        nodes = _node_table(grid)
        edges = _edge_table(grid)
        edges["u_pos"] = _positions(nodes.index, edges["u"], edges, "from/hv")
        edges["v_pos"] = _positions(nodes.index, edges["v"], edges, "to/lv")
        node_on = nodes["in_service"].to_numpy()
        edges["conducting"] = (
            edges["in_service"].to_numpy()
            & edges["closed"].to_numpy()
            & node_on[edges["u_pos"].to_numpy()]
            & node_on[edges["v_pos"].to_numpy()]
        )
        if comm is not None:
            comm.check(grid)
        return cls(grid, comm, nodes, edges)

    # -- physical queries ----------------------------------------------------------------
    def islands(self) -> pd.DataFrame:
        """Return the island of every bus over conducting branches (in service, switches closed).

        Returns
        -------
        DataFrame
            Indexed by bus id: ``island`` (int, numbered in bus order), ``energised`` (bool: the bus is reached
            from an in-service ext_grid or slack gen).
        """
        nb = len(self.grid.bus)  # buses come first, so their island numbers are 0..k without gaps
        tree = self._tree
        return pd.DataFrame({"island": tree.island[:nb], "energised": tree.energised[:nb]}, index=self.grid.bus.index)

    def supply_tree(self) -> pd.DataFrame:
        """Return the radial energised view bus by bus.

        Returns
        -------
        DataFrame
            Indexed by bus id: ``parent`` (upstream bus id, "" at a source or where not energised; a trafo3w star
            is skipped), ``trafo`` (supplying transformer id, "" where none), ``energised``, ``island``.
        """
        n, nb = len(self._nodes), len(self.grid.bus)
        parent = self._tree.parent
        up = np.where(parent >= nb, -1, parent)
        star = (parent >= nb) & (parent < n)
        up[star] = parent[parent[star]]
        ids = self._nodes.index.to_numpy()
        out = pd.DataFrame(
            {"parent": np.where(up[:nb] >= 0, ids[np.maximum(up[:nb], 0)], ""), "trafo": self._tree.trafo[:nb]},
            index=self.grid.bus.index,
        )
        return out.join(self.islands())[["parent", "trafo", "energised", "island"]]

    def supplying_trafos(self, element: str = "load") -> pd.Series:
        """Return the transformer that supplies each element of one table (vectorised; used to place meters).

        Parameters
        ----------
        element : str
            A table with a ``bus`` column (``"load"``, ``"sgen"``, ``"storage"``, ...) or ``"bus"``.

        Returns
        -------
        Series
            Element id → id of the nearest upstream transformer in the radial energised view; "" where the bus
            is not energised or no transformer lies between it and the source. An element's own ``in_service``
            flag does not change where it is connected.
        """
        ids = self.grid.bus.index if element == "bus" else self.grid[element]["bus"]
        pos = self._nodes.index.get_indexer(pd.Index(ids))
        if (pos < 0).any():
            bad = self.grid[element].index[pos < 0][:5].tolist()
            raise ValueError(f"{element} {bad} refer to buses that are not in the bus table; fix their bus ids")
        return pd.Series(self._tree.trafo[pos], index=self.grid[element].index, name="trafo", dtype=object)

    def supplying_trafo(self, load_id: str) -> str:
        """Return the transformer that supplies one load ("" when none); see :meth:`supplying_trafos`."""
        return str(self.supplying_trafos("load")[load_id])

    def buses_below(self, trafo_id: str) -> pd.Index:
        """Return the buses supplied through a transformer's lower-voltage side(s) in the radial energised view.

        All levels below are included (an HV/MV transformer's set holds the LV buses under its MV/LV
        transformers). Parallel transformers between the same two buses share their buses below. A transformer
        that is open, out of service or closes a mesh (not on the supply tree) supplies nothing: empty index.
        """
        start = self._tree_child_of(trafo_id)
        if start < 0:
            return pd.Index([], dtype=object, name="id")
        below = breadth_first_order(self._tree.children, start, directed=True, return_predecessors=False)
        nb = len(self.grid.bus)
        mask = np.zeros(nb, dtype=bool)
        mask[below[below < nb]] = True
        return self.grid.bus.index[mask]

    def loads_below(self, trafo_id: str) -> pd.Index:
        """Return the loads at the buses of :meth:`buses_below` (in load-table order)."""
        load = self.grid.load
        return load.index[load["bus"].isin(self.buses_below(trafo_id))]

    def _tree_child_of(self, trafo_id: str) -> int:
        """Return the node position where the tree passes through the transformer, -1 if it does not."""
        edges = self._edges[self._edges["element"] == trafo_id]
        edges = edges[edges["kind"].isin(_TRAFO_KINDS)]
        if edges.empty:
            raise KeyError(f"{trafo_id!r} is not a trafo or trafo3w id of grid {self.grid.name!r}")
        parent = self._tree.parent
        if edges["kind"].iloc[0] == "trafo3w":
            star = int(edges["v_pos"].iloc[0])
            return star if parent[star] >= 0 else -1
        row = edges.iloc[0]
        u, v = int(row["u_pos"]), int(row["v_pos"])
        if not row["conducting"]:
            return -1
        if parent[v] == u:
            return v
        return u if parent[u] == v else -1

    # -- communication queries --------------------------------------------------------------
    def _comm(self) -> CommLayer:
        if self.comm_layer is None:
            raise ValueError("this graph has no communication layer; build it with from_grid(grid, comm=layer)")
        return self.comm_layer

    def device_buses(self) -> pd.Series:
        """Return the bus of every comm device's grid element ("" for none, or for branch elements)."""
        dev = self._comm().devices
        out = pd.Series("", index=dev.index, dtype=object, name="bus")
        kind = dev["element_kind"]
        out[kind == "bus"] = dev["element"][kind == "bus"]
        for table in _BUS_ELEMENTS:
            sel = kind == table
            if sel.any():
                out[sel] = self.grid[table]["bus"].reindex(dev["element"][sel]).fillna("").to_numpy()
        return out

    def meters_below(self, trafo_id: str) -> pd.Index:
        """Return the meters whose grid element sits at a bus of :meth:`buses_below`."""
        dev = self._comm().devices
        below = self.device_buses().isin(self.buses_below(trafo_id)) & (dev["kind"] == "meter")
        return dev.index[below.to_numpy()]

    def meters_table(self) -> pd.DataFrame:
        """Return the meters table of ``docs/design/timeseries.md`` (customer, load, bus, trafo, interval, ...)."""
        dev = self._comm().devices
        meters = dev[dev["kind"] == "meter"]
        bus = self.device_buses()[meters.index]
        trafo = pd.Series(self._tree.trafo[: len(self.grid.bus)], index=self.grid.bus.index)
        out = pd.DataFrame(
            {
                "customer": meters["customer"],
                "load": meters["element"].where(meters["element_kind"] == "load", ""),
                "bus": bus,
                "trafo": trafo.reindex(bus).fillna("").to_numpy(),
                "interval_min": meters["interval_min"].fillna(0).astype(np.int64),
                "parameters": meters["parameters"],
            },
            index=pd.Index(meters.index, name="meter"),
        )
        return out

    def controllable_now(self, kinds: Iterable[str] | None = None, *, without: Iterable[str] = ()) -> pd.DataFrame:
        """Return the grid elements that can be controlled now.

        An element counts when it is marked ``controllable`` in the grid and one of its controllers (devices of
        kind ``controller`` whose element it is) has a path from the head-end (or a gateway) on which every link
        has status ``"up"``.

        Parameters
        ----------
        kinds : iterable of str, optional
            Element tables to consider; default ``("load", "sgen", "storage")``.
        without : iterable of str
            Link ids to treat as failed (what-if).

        Returns
        -------
        DataFrame
            Indexed by element id: ``element_kind``, ``controller`` (the fastest reachable one), ``latency_ms``.
        """
        from twin.comm import CONTROL_STATUSES, CONTROLLABLE_KINDS

        kinds = tuple(CONTROLLABLE_KINDS if kinds is None else kinds)
        bad = [k for k in kinds if k not in CONTROLLABLE_KINDS]
        if bad:
            raise ValueError(f"kinds {bad} cannot be controlled; choose from {list(CONTROLLABLE_KINDS)}")
        comm = self._comm()
        marked = pd.concat(
            [
                pd.DataFrame({"element_kind": k, "element": self.grid[k].index[self.grid[k]["controllable"]]})
                for k in kinds
            ]
        )
        reach = comm.reachability(CONTROL_STATUSES, without=without)
        dev = comm.devices.join(reach)
        ctrl = dev[(dev["kind"] == "controller") & dev["reachable"]].rename_axis("controller").reset_index()
        hit = marked.merge(ctrl, on=["element_kind", "element"]).sort_values(["latency_ms", "controller"])
        hit = hit.drop_duplicates(["element_kind", "element"]).set_index("element").rename_axis("id")
        return hit[["element_kind", "controller", "latency_ms"]]

    def observability_loss(self, link_id: str) -> pd.DataFrame:
        """Return the meters and controllers that lose their working path if link ``link_id`` fails.

        Meters need a path of links that are ``"up"`` or ``"degraded"``; controllers need all links ``"up"``.
        Alternative paths (meshes, redundant links) are taken into account: two traversals in all.

        Returns
        -------
        DataFrame
            Indexed by device id: ``kind`` (meter or controller), ``element``, ``element_kind``.
        """
        from twin.comm import CONTROL_STATUSES, OBSERVE_STATUSES

        comm = self._comm()
        if link_id not in comm.links.index:
            raise KeyError(f"{link_id!r} is not a link id of the communication layer")
        dev = comm.devices
        lost = pd.Series(False, index=dev.index)
        for kind, statuses in (("meter", OBSERVE_STATUSES), ("controller", CONTROL_STATUSES)):
            before = comm.reachability(statuses)["reachable"]
            after = comm.reachability(statuses, without=[link_id])["reachable"]
            lost |= (dev["kind"] == kind) & before & ~after
        return dev.loc[lost.to_numpy(), ["kind", "element", "element_kind"]]

    # -- networkx views ----------------------------------------------------------------------
    def physical(self, energised: bool = False) -> nx.MultiGraph:
        """Return the physical layer as a frozen networkx MultiGraph.

        Parameters
        ----------
        energised : bool
            Keep only conducting edges (in service, switches closed) between energised nodes.

        Returns
        -------
        networkx.MultiGraph
            Nodes: bus ids (and trafo3w star ids) with ``kind``, ``vn_kv``, ``in_service``, ``energised``,
            ``island``, ``trafo`` (supplying transformer) and tuples ``load``, ``sgen``, ``gen``, ``storage``,
            ``shunt``, ``ext_grid``. Edges keyed by element id with ``kind``, ``element``, ``side``,
            ``in_service``, ``closed``, ``switches``.
        """
        key = f"physical-{energised}"
        if key not in self._views:
            self._views[key] = nx.freeze(self._build_physical(energised))
        return self._views[key]

    def _node_attrs(self) -> pd.DataFrame:
        n = len(self._nodes)
        attrs = self._nodes.copy()
        attrs["energised"] = self._tree.energised[:n]
        attrs["island"] = self._tree.island
        attrs["trafo"] = self._tree.trafo[:n]
        for table in _BUS_ELEMENTS:
            df = self.grid[table]
            ids = pd.Series(df.index, index=df.index).groupby(df["bus"].to_numpy()).agg(tuple)
            lookup = ids.to_dict()
            attrs[table] = [lookup.get(node, ()) for node in attrs.index]
        return attrs

    def _build_physical(self, energised: bool) -> nx.MultiGraph:
        attrs = self._node_attrs()
        edges = self._edges
        if energised:
            on = self._tree.energised
            attrs = attrs[on[: len(attrs)]]
            edges = edges[edges["conducting"] & on[edges["u_pos"]] & on[edges["v_pos"]]]
        graph = nx.MultiGraph(name=self.grid.name, layer="physical")
        graph.add_nodes_from(attrs.to_dict("index").items())
        cols = ["kind", "element", "side", "in_service", "closed", "switches"]
        records = edges[cols].to_dict("records")
        graph.add_edges_from(zip(edges["u"], edges["v"], edges["element"], records, strict=True))
        return graph

    def comm(self) -> nx.MultiGraph:
        """Return the communication layer: nodes = device ids (device columns as attributes), edges keyed by link id."""
        if "comm" not in self._views:
            layer = self._comm()
            graph = nx.MultiGraph(layer="comm")
            graph.add_nodes_from(layer.devices.to_dict("index").items())
            links = layer.links
            records = links.drop(columns=["a", "b"]).to_dict("records")
            graph.add_edges_from(zip(links["a"], links["b"], links.index, records, strict=True))
            self._views["comm"] = nx.freeze(graph)
        return self._views["comm"]

    def cross(self) -> nx.Graph:
        """Return the cross-layer edges as a networkx Graph with layer-qualified tuple nodes.

        Nodes are ``("device", id)`` (layer ``"comm"``), ``(element_kind, id)`` and ``("bus", id)`` (layer
        ``"physical"``). Edges: device → the element it measures or controls (``relation``: ``measures``,
        ``controls`` or ``located_at``) and element → its bus (``relation``: ``connected_to``).
        """
        if "cross" not in self._views:
            dev = self._comm().devices
            dev = dev[dev["element"] != ""]
            rel = dev["kind"].map({"meter": "measures", "controller": "controls"}).fillna("located_at")
            graph = nx.Graph(layer="cross")
            graph.add_nodes_from((("device", d) for d in dev.index), layer="comm")
            elems = list(zip(dev["element_kind"], dev["element"], strict=True))
            graph.add_nodes_from(elems, layer="physical")
            graph.add_edges_from(
                (("device", d), e, {"relation": r}) for d, e, r in zip(dev.index, elems, rel, strict=True)
            )
            bus = self.device_buses()[dev.index]
            has_bus = (bus != "") & (dev["element_kind"] != "bus")
            graph.add_nodes_from((("bus", b) for b in bus[has_bus]), layer="physical")
            graph.add_edges_from(
                ((k, e), ("bus", b), {"relation": "connected_to"})
                for k, e, b in zip(dev["element_kind"][has_bus], dev["element"][has_bus], bus[has_bus], strict=True)
            )
            self._views["cross"] = nx.freeze(graph)
        return self._views["cross"]
