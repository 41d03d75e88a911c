"""Who am I, the grid summary and its topology (node-link JSON of the physical/comm layers, or GeoJSON)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import networkx as nx
from fastapi import APIRouter, Depends, Query, Request

from twin.api.auth import Principal, require
from twin.api.models import jsonable

router = APIRouter(tags=["grid"])

# comm-layer attributes that identify people: not served
_PRIVATE = frozenset({"customer"})


@router.get("/whoami")
async def whoami(principal: Annotated[Principal, Depends(require("read", "write"))]) -> dict[str, str]:
    """The caller's token: ``{name, role, token_id}``."""
    return {"name": principal.name, "role": principal.role.value, "token_id": principal.token_id}


@router.get("/grid", dependencies=[Depends(require("read"))])
def grid_summary(request: Request) -> dict[str, Any]:
    """Grid name, element counts per kind, rated transformer power (MVA), comm devices and the store's time range."""
    site = request.app.state.site
    grid = site.require_grid()
    counts = {kind: len(t) for kind, t in grid.tables.items() if len(t)}
    rated = float(grid.tables["trafo"]["sn_mva"].sum()) if len(grid.tables["trafo"]) else 0.0
    groups = {}
    for group in site.groups():
        ds = site.dataset(group)  # cached: its time index is in memory
        if "time" in ds.dims and ds.sizes["time"]:
            times = ds.indexes["time"]
            groups[group] = {"start": times[0], "end": times[-1], "steps": len(times)}
    return jsonable(
        {
            "name": grid.name,
            "counts": counts,
            "trafo_rated_mva": rated,
            "comm_devices": None if site.comm is None else len(site.comm.devices),
            "store": {"path": site.store_path.name, "freq": site.store.attrs.get("freq"), "groups": groups},
        }
    )


def _node_link(graph: nx.MultiGraph, layer: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes = [
        {"id": str(n), "layer": layer, **{k: v for k, v in d.items() if k not in _PRIVATE}}
        for n, d in graph.nodes(data=True)
    ]
    edges = [
        {"source": str(a), "target": str(b), "id": str(k), "layer": layer, **d}
        for a, b, k, d in graph.edges(keys=True, data=True)
    ]
    return nodes, edges


def _geojson(grid: Any) -> dict[str, Any]:
    """Buses with coordinates as Points; lines and transformers between two placed buses as LineStrings."""
    bus = grid.tables["bus"]
    xy = bus[["x", "y"]].astype(float)
    placed = xy.notna().all(axis=1)
    features = [
        {
            "type": "Feature",
            "id": str(b),
            "geometry": {"type": "Point", "coordinates": [float(xy.at[b, "x"]), float(xy.at[b, "y"])]},
            "properties": {"kind": "bus", "id": str(b), "vn_kv": bus.at[b, "vn_kv"], "name": bus.at[b, "name"]},
        }
        for b in bus.index[placed.to_numpy()]
    ]
    for kind, a_col, b_col in (("line", "from_bus", "to_bus"), ("trafo", "hv_bus", "lv_bus")):
        table = grid.tables[kind]
        ok = table[a_col].isin(xy.index[placed.to_numpy()]) & table[b_col].isin(xy.index[placed.to_numpy()])
        for eid, row in table[ok.to_numpy()].iterrows():
            coords = [xy.loc[row[a_col]].tolist(), xy.loc[row[b_col]].tolist()]
            features.append(
                {
                    "type": "Feature",
                    "id": str(eid),
                    "geometry": {"type": "LineString", "coordinates": coords},
                    "properties": {"kind": kind, "id": str(eid), "from_bus": row[a_col], "to_bus": row[b_col]},
                }
            )
    unplaced = [str(b) for b in bus.index[~placed.to_numpy()]]
    return {"type": "FeatureCollection", "features": features, "unplaced_buses": unplaced}


@router.get("/grid/topology", dependencies=[Depends(require("read"))])
def topology(
    request: Request,
    layer: Annotated[Literal["physical", "comm", "all"], Query(description="which layer")] = "all",
    format: Annotated[Literal["graph", "geojson"], Query(description="node-link JSON or GeoJSON")] = "graph",
) -> dict[str, Any]:
    """The multilayer graph as node-link JSON (``nodes``, ``edges``, ``cross`` links device → bus), or GeoJSON of
    the physical layer (buses as points, lines and transformers as lines; buses without coordinates listed)."""
    site = request.app.state.site
    grid = site.require_grid()
    if format == "geojson":
        if layer == "comm":
            raise ValueError("GeoJSON is only available for the physical layer (comm devices have no coordinates)")
        return jsonable(_geojson(grid))
    graph = site.graph
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    if layer in ("physical", "all"):
        n, e = _node_link(graph.physical(), "physical")
        nodes, edges = nodes + n, edges + e
        bus = grid.tables["bus"]
        for node in nodes:
            if node["layer"] == "physical" and node["id"] in bus.index:
                node["x"], node["y"] = bus.at[node["id"], "x"], bus.at[node["id"], "y"]
    cross: list[dict[str, Any]] = []
    if layer in ("comm", "all"):
        if site.comm is None:
            raise LookupError("this service has no comm layer: start it with 'gridtwin serve STORE --comm DIR'")
        n, e = _node_link(graph.comm(), "comm")
        nodes, edges = nodes + n, edges + e
        buses = graph.device_buses()
        cross = [{"device": str(d), "bus": str(b)} for d, b in buses.items() if isinstance(b, str) and b]
    return jsonable({"layer": layer, "nodes": nodes, "edges": edges, "cross": cross})
