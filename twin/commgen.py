"""A plausible communication layer for any grid: head-end, concentrators, gateways, meters and controllers.

:func:`generate_comm` (re-exported by :mod:`twin.comm`) equips every in-service secondary substation with a PLC
concentrator and a cellular gateway, gives every meter a PLC path along the cable (meters repeat for each other,
found with :func:`twin.topology.nearest_marked_ancestor` on the grid's supply tree) or a SIM of its own, connects
every controllable element and picks each SIM's data plan from :func:`twin.comm.data_usage`. Layout and rules are in
``docs/design/comm.md`` ("Generator"); latencies come from :data:`twin.comm.TECH_DEFAULTS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from twin.comm import CONTROLLABLE_KINDS, PLANS_MB, TECH_DEFAULTS, CommLayer, bytes_per_reading, data_usage
from twin.graph import MultiLayerGraph
from twin.topology import nearest_marked_ancestor

if TYPE_CHECKING:
    from twin.grid import Grid

__all__ = ["generate_comm"]

_HEADEND = "headend"
_CONTROLLER_REPORT = (15.0, 48.0)  # a controller reports its state every 15 min, 48 bytes


def _devices(ids: pd.Index | pd.Series, kind: str, **cols: object) -> pd.DataFrame:
    index = pd.Index(np.asarray(ids, dtype=object), name="device")
    return pd.DataFrame(
        {"kind": kind, **{k: np.asarray(v, dtype=object) if not np.isscalar(v) else v for k, v in cols.items()}},
        index=index,
    )


def _links(a: object, b: object, tech: str, rng: np.random.Generator) -> pd.DataFrame:
    a = np.asarray(a, dtype=object)
    b = np.broadcast_to(np.asarray(b, dtype=object), a.shape)
    latency, bandwidth = TECH_DEFAULTS[tech]
    jitter = rng.lognormal(0.0, 0.25, a.size)
    return pd.DataFrame(
        {"a": a, "b": b, "technology": tech, "latency_ms": np.round(latency * jitter, 1), "bandwidth_kbps": bandwidth},
        index=pd.Index(a + "--" + b, name="link"),
    )


def _meters_for(
    grid: Grid, graph: MultiLayerGraph, meters: pd.DataFrame | None, interval_min: int, parameters: str
) -> pd.DataFrame:
    """Return the meters table (docs/design/timeseries.md) to equip: given one, checked, or one meter per load."""
    supply = graph.supplying_trafos("load")
    if meters is None:
        load = grid.load.index.to_series()
        return pd.DataFrame(
            {
                "customer": "customer/" + load,
                "load": load,
                "bus": grid.load["bus"],
                "trafo": supply,
                "interval_min": interval_min,
                "parameters": parameters,
            },
        ).set_axis(pd.Index("meter/" + load, name="meter"))
    missing = [c for c in ("customer", "load", "interval_min", "parameters") if c not in meters.columns]
    if missing:
        raise ValueError(f"meters table lacks columns {missing}; see docs/design/timeseries.md (meters table)")
    m = meters.copy()
    bad = m.index[~m["load"].isin(grid.load.index)]
    if len(bad):
        raise ValueError(f"meters {bad[:5].tolist()} measure loads not in grid {grid.name!r}; fix their 'load' ids")
    grid_bus = grid.load["bus"].reindex(m["load"]).to_numpy()
    bus = m["bus"].astype(str).to_numpy() if "bus" in m else grid_bus
    bad = m.index[(bus != grid_bus) & (bus != "")]
    if len(bad):
        raise ValueError(f"meters {bad[:5].tolist()}: 'bus' differs from their load's bus in the grid; fix or clear it")
    trafo = m["trafo"].astype(str).to_numpy() if "trafo" in m else np.full(len(m), "", dtype=object)
    known = grid.trafo.index.union(grid.trafo3w.index)
    bad = m.index[(trafo != "") & ~pd.Index(trafo).isin(known)]
    if len(bad):
        raise ValueError(f"meters {bad[:5].tolist()}: 'trafo' is not a transformer of the grid; fix or clear it")
    if not (m["interval_min"] > 0).all():
        raise ValueError(f"meters {m.index[~(m['interval_min'] > 0)][:5].tolist()}: interval_min must be > 0")
    m["bus"], m["trafo"] = grid_bus, np.where(trafo == "", supply.reindex(m["load"]).to_numpy(), trafo)
    return m.rename_axis("meter")


def _plc_targets(grid: Grid, graph: MultiLayerGraph, pm: pd.DataFrame, subs: pd.Index) -> np.ndarray:
    """Return the upstream device of each PLC meter: PLC repeats along the cable towards the concentrator.

    The first meter (by id) at a bus relays for the others there; a relay talks to the nearest relay upstream,
    or to the concentrator at the transformer's LV bus. Meters whose trafo disagrees with the grid's radial
    view (a given meters table) talk to their trafo's concentrator directly.
    """
    tree = graph.supply_tree()
    nb = len(tree)
    parent = tree.index.get_indexer(tree["parent"])
    bus_pos = tree.index.get_indexer(pm["bus"])
    consistent = tree["trafo"].to_numpy()[bus_pos] == pm["trafo"].to_numpy()
    lv_pos = tree.index.get_indexer(grid.trafo.loc[subs, "lv_bus"])
    at_lv = tree["trafo"].to_numpy()[lv_pos] == subs.to_numpy()
    names = np.concatenate(["dc/" + subs[at_lv].to_numpy(dtype=object), pm.index.to_numpy(dtype=object)])
    anchor = np.full(nb, -1, dtype=np.int64)
    rows = np.flatnonzero(consistent)
    rows = rows[np.argsort(pm.index.to_numpy(dtype=str)[rows], kind="stable")]
    relay_rows = rows[np.unique(bus_pos[rows], return_index=True)[1]]  # the first meter id at each bus
    anchor[bus_pos[relay_rows]] = at_lv.sum() + relay_rows
    anchor[lv_pos[at_lv]] = np.arange(at_lv.sum())
    up = nearest_marked_ancestor(parent, anchor)
    strict = np.where(parent >= 0, up[np.maximum(parent, 0)], -1)
    own = anchor[bus_pos]
    is_relay = own == at_lv.sum() + np.arange(len(pm))
    code = np.where(is_relay, strict[bus_pos], own)
    target = np.where(code >= 0, names[np.maximum(code, 0)], "")
    return np.where(consistent & (code >= 0), target, "dc/" + pm["trafo"].to_numpy(dtype=object))


def _controllables(grid: Grid, graph: MultiLayerGraph) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"element_kind": k, "trafo": graph.supplying_trafos(k)[grid[k]["controllable"]]})
        for k in CONTROLLABLE_KINDS
    ]
    return pd.concat(parts).rename_axis("element").reset_index()


def _pick_plans(layer: CommLayer, headroom: float) -> pd.Series:
    need = data_usage(layer)["usage_mb"] * headroom
    tiers = np.asarray(PLANS_MB)
    pos = np.minimum(np.searchsorted(tiers, need.to_numpy()), tiers.size - 1)
    return pd.Series(tiers[pos], index=need.index)


def generate_comm(
    grid: Grid,
    *,
    meters: pd.DataFrame | None = None,
    seed: int = 0,
    plc_share: float = 0.85,
    lv_max_kv: float = 1.0,
    interval_min: int = 15,
    parameters: str = "A+,A-",
    plan_headroom: float = 1.5,
) -> CommLayer:
    """Generate a plausible communication layer for any grid.

    - one head-end (``headend``) at the control centre;
    - per in-service secondary substation (transformer with ``vn_lv_kv <= lv_max_kv``): a PLC concentrator
      ``dc/<trafo>`` and a cellular gateway ``gw/<trafo>`` with a SIM (ethernet between them);
    - one meter per load (``meter/<load>``), or the rows of ``meters`` (docs/design/timeseries.md); a meter below a
      secondary substation uses PLC with probability ``plc_share`` (repeating along the cable), others a SIM;
    - per controllable load/sgen/storage a controller ``ctrl/<id>``: over PLC to its substation's concentrator, or
      behind its own cellular gateway ``gw/<id>`` where no secondary substation supplies it;
    - latencies from :data:`TECH_DEFAULTS` with log-normal jitter; each SIM gets the smallest plan of
      :data:`PLANS_MB` above its :func:`data_usage` × ``plan_headroom``.

    Parameters
    ----------
    grid : Grid
    meters : DataFrame, optional
        Meters table; its ``trafo`` is used where given, else the grid's radial view decides.
    seed : int
        Seed of the random choices (PLC or SIM, jitter).
    plc_share : float
        Share of meters below a secondary substation that use PLC, 0..1.
    lv_max_kv : float
        Highest LV-side voltage of a secondary substation, kV.
    interval_min : int
        Reading interval of generated meters, min.
    parameters : str
        Parameters of generated meters (comma-separated); sets ``bytes_per_reading``.
    plan_headroom : float
        Factor between expected usage and the chosen plan.
    """
    if not 0.0 <= plc_share <= 1.0:
        raise ValueError(f"plc_share must lie in [0, 1], got {plc_share}")
    rng = np.random.default_rng(seed)
    graph = MultiLayerGraph.from_grid(grid)
    m = _meters_for(grid, graph, meters, interval_min, parameters)
    tr = grid.trafo
    subs = tr.index[(tr["vn_lv_kv"] <= lv_max_kv).to_numpy() & tr["in_service"].to_numpy()]
    plc = (m["trafo"].isin(subs) & (rng.random(len(m)) < plc_share)).to_numpy()
    sim = np.where(plc, "", "sim/" + m.index.to_numpy(dtype=object))
    ctrl = _controllables(grid, graph)
    ctrl_id = "ctrl/" + ctrl["element"]
    by_plc = ctrl["trafo"].isin(subs).to_numpy()
    own_gw = "gw/" + ctrl["element"][~by_plc]
    gws = pd.Index(np.concatenate(["gw/" + subs.to_numpy(dtype=object), own_gw.to_numpy(dtype=object)]))
    devices = [
        _devices([_HEADEND], "headend"),
        _devices("dc/" + subs, "concentrator", element=subs, element_kind="trafo"),
        _devices(
            gws,
            "gateway",
            sim="sim/" + gws,
            element=np.concatenate([subs, ctrl["element"][~by_plc]]),
            element_kind=np.concatenate([np.full(len(subs), "trafo"), ctrl["element_kind"][~by_plc]]),
        ),
        _devices(
            m.index,
            "meter",
            element=m["load"],
            element_kind="load",
            customer=m["customer"],
            interval_min=m["interval_min"].astype(float),
            bytes_per_reading=bytes_per_reading(m["parameters"]),
            parameters=m["parameters"],
            sim=sim,
        ),
        _devices(
            ctrl_id,
            "controller",
            element=ctrl["element"],
            element_kind=ctrl["element_kind"],
            interval_min=_CONTROLLER_REPORT[0],
            bytes_per_reading=_CONTROLLER_REPORT[1],
        ),
    ]
    links = [
        _links("dc/" + subs, "gw/" + subs, "ethernet", rng),
        _links(gws, _HEADEND, "cellular", rng),
        _links(m.index[~plc], _HEADEND, "cellular", rng),
        _links(m.index[plc], _plc_targets(grid, graph, m[plc], subs), "plc", rng),
        _links(ctrl_id[by_plc], "dc/" + ctrl["trafo"][by_plc], "plc", rng),
        _links(ctrl_id[~by_plc], own_gw, "ethernet", rng),
    ]
    sim_ids = pd.Index(np.concatenate(["sim/" + gws.to_numpy(dtype=object), sim[~plc]]), name="sim")
    sims = pd.DataFrame({"data_plan_mb_month": PLANS_MB[-1], "operator": ""}, index=sim_ids)
    meta = {"generator": "twin.comm.generate_comm", "grid": grid.name, "seed": seed, "plc_share": plc_share}
    layer = CommLayer(pd.concat(devices), pd.concat(links), sims, name=f"{grid.name}-comm", meta=meta)
    layer.sims["data_plan_mb_month"] = _pick_plans(layer, plan_headroom).reindex(layer.sims.index).to_numpy()
    return layer
