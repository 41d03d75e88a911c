"""The communication layer: devices, links and SIMs as tables; reachability, data usage and files.

Three pandas tables keyed by string ids (columns and units in :data:`DEVICES`, :data:`LINKS`, :data:`SIMS`; file
format in ``docs/design/comm.md``):

- ``devices`` (index ``device``): meters, concentrators, gateways, routers, controllers and head-ends, each with
  the grid element it measures, controls or sits at, and its reporting interval and payload.
- ``links`` (index ``link``): two device ids, a technology, latency, bandwidth and a status (up/degraded/down).
- ``sims`` (index ``sim``): the monthly data plan of each SIM; a device holds at most one SIM (``devices.sim``).

Paths start at the head-end devices (the control centre), or at the gateways when a layer has no head-end.
Meters need a path of links that are up or degraded (:data:`OBSERVE_STATUSES`); control needs every link up
(:data:`CONTROL_STATUSES`). :meth:`CommLayer.reachability` finds all paths in one Dijkstra traversal.

:func:`generate_comm` (from :mod:`twin.commgen`, re-exported here) builds a plausible layer for any grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from twin.schema.base import Column, TableSchema
from twin.topology import nearest_marked_ancestor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from twin.grid import Grid

__all__ = [
    "CONTROLLABLE_KINDS",
    "CONTROL_STATUSES",
    "DEVICES",
    "DEVICE_KINDS",
    "ELEMENT_KINDS",
    "LINKS",
    "LINK_STATUSES",
    "OBSERVE_STATUSES",
    "PLANS_MB",
    "SIMS",
    "TECHNOLOGIES",
    "TECH_DEFAULTS",
    "CommLayer",
    "Problem",
    "bytes_per_reading",
    "data_usage",
    "find_problems",
    "generate_comm",
    "read_comm",
    "sims_over_plan",
    "write_comm",
]

DEVICE_KINDS = ("meter", "concentrator", "gateway", "router", "controller", "headend")
TECHNOLOGIES = ("plc", "rf_mesh", "cellular", "fiber", "ethernet")
LINK_STATUSES = ("up", "degraded", "down")
ELEMENT_KINDS = ("bus", "load", "sgen", "gen", "storage", "shunt", "ext_grid", "line", "trafo", "trafo3w")
CONTROLLABLE_KINDS = ("load", "sgen", "storage")
OBSERVE_STATUSES = ("up", "degraded")
CONTROL_STATUSES = ("up",)
FORMAT = "gridtwin.comm"
FORMAT_VERSION = 1
_EPS_MS = 1e-9  # added to every link latency so that zero-latency links stay edges for scipy

DEVICES = TableSchema(
    name="devices",
    columns=(
        Column("kind", "str", required=True, doc="meter, concentrator, gateway, router, controller or headend"),
        Column("element", "str", doc="id of the grid element it measures, controls or sits at ('' none)"),
        Column("element_kind", "str", doc="grid table of `element`: load, sgen, storage, bus, trafo, ..."),
        Column("customer", "str", doc="customer id (meters)"),
        Column("interval_min", "float", doc="reading or report interval, min (empty: sends no periodic data)"),
        Column("bytes_per_reading", "float", doc="payload of one reading, bytes"),
        Column("parameters", "str", doc="comma-separated parameter names a meter sends ('A+,A-')"),
        Column("sim", "str", doc="id of the SIM it holds ('' none)"),
    ),
    doc="communication devices",
)
LINKS = TableSchema(
    name="links",
    columns=(
        Column("a", "str", required=True, doc="device id at one end"),
        Column("b", "str", required=True, doc="device id at the other end"),
        Column("technology", "str", required=True, doc="plc, rf_mesh, cellular, fiber or ethernet"),
        Column("latency_ms", "float", required=True, doc="one-way latency, ms"),
        Column("bandwidth_kbps", "float", required=True, doc="usable bandwidth, kbit/s"),
        Column("status", "str", default="up", doc="up, degraded or down"),
    ),
    doc="communication links (undirected)",
)
SIMS = TableSchema(
    name="sims",
    columns=(
        Column("data_plan_mb_month", "float", required=True, doc="data volume included per month, MB (10^6 bytes)"),
        Column("operator", "str", doc="mobile network operator"),
    ),
    doc="SIM cards and their data plans",
)
_SCHEMAS = {"devices": DEVICES, "links": LINKS, "sims": SIMS}
_INDEX = {"devices": "device", "links": "link", "sims": "sim"}


class Problem(NamedTuple):
    """One validation problem: table, row position (-1: the whole table), row id and what to do."""

    table: str
    pos: int
    id: str
    text: str


def _conform(table: str, df: pd.DataFrame) -> pd.DataFrame:
    out = _SCHEMAS[table].conform(df)
    out.index.name = _INDEX[table]
    return out


@dataclass
class CommLayer:
    """A communication network as three tables (see the module docstring and ``docs/design/comm.md``).

    Parameters
    ----------
    devices, links, sims : DataFrame
        Tables keyed by string id; missing optional columns get their defaults.
    name : str
        Name of the layer.
    meta : dict
        Provenance (generator settings, source file).

    Raises
    ------
    ValueError
        If the tables are inconsistent (unknown kinds, links to missing devices, duplicate ids, ...); the message
        names table, id and how to fix it. Grid references are checked by :meth:`check`.
    """

    devices: pd.DataFrame = field(default_factory=DEVICES.empty_frame)
    links: pd.DataFrame = field(default_factory=LINKS.empty_frame)
    sims: pd.DataFrame = field(default_factory=SIMS.empty_frame)
    name: str = "comm"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.devices = _conform("devices", self.devices)
        self.links = _conform("links", self.links)
        self.sims = _conform("sims", self.sims)
        _raise(
            find_problems(self.devices, self.links, self.sims),
            lambda p: f"{p.table} {p.id!r}" if p.pos >= 0 else p.table,
        )

    def check(self, grid: Grid) -> None:
        """Raise ``ValueError`` if a device refers to a grid element that ``grid`` does not have."""
        _raise(find_problems(self.devices, self.links, self.sims, grid), lambda p: f"{p.table} {p.id!r}")

    def reachability(self, statuses: Iterable[str] = CONTROL_STATUSES, without: Iterable[str] = ()) -> pd.DataFrame:
        """Return every device's best path from a head-end over links whose status is in ``statuses``.

        Parameters
        ----------
        statuses : iterable of str
            Link statuses that carry traffic (:data:`CONTROL_STATUSES` or :data:`OBSERVE_STATUSES`).
        without : iterable of str
            Link ids to treat as failed.

        Returns
        -------
        DataFrame
            Indexed by device id: ``reachable`` (bool), ``latency_ms`` (lowest total latency, NaN when not
            reachable), ``upstream`` (next device towards the head-end), ``gateway`` and ``sim_device`` (nearest
            gateway / SIM-holding device on the path, the device itself included; "" when none).
        """
        dev, links = self.devices, self.links
        n = len(dev)
        use = links["status"].isin(list(statuses)).to_numpy() & ~links.index.isin(list(without))
        a = dev.index.get_indexer(links["a"][use])
        b = dev.index.get_indexer(links["b"][use])
        kind = dev["kind"].to_numpy()
        roots = np.flatnonzero(kind == "headend")
        roots = roots if roots.size else np.flatnonzero(kind == "gateway")
        lo = np.concatenate([np.minimum(a, b), roots])
        hi = np.concatenate([np.maximum(a, b), np.full(roots.size, n)])
        w = np.concatenate([links["latency_ms"].to_numpy()[use], np.zeros(roots.size)]) + _EPS_MS
        order = np.lexsort((w, hi, lo))  # keep the fastest of parallel links
        lo, hi, w = lo[order], hi[order], w[order]
        first = np.ones(lo.size, dtype=bool)
        first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
        graph = sp.csr_matrix((w[first], (lo[first], hi[first])), shape=(n + 1, n + 1))
        dist, pred = dijkstra(graph, directed=False, indices=n, return_predecessors=True)
        parent = np.where((pred < 0) | (pred == n), -1, pred)[:n].astype(np.int64)
        reachable = np.isfinite(dist[:n])
        ids = dev.index.to_numpy()
        pos = np.arange(n)

        def nearest(mark: np.ndarray) -> np.ndarray:
            code = nearest_marked_ancestor(parent, np.where(mark, pos, -1))
            return np.where(code >= 0, ids[np.maximum(code, 0)], "") if n else np.array([], dtype=object)

        return pd.DataFrame(
            {
                "reachable": reachable,
                "latency_ms": np.where(reachable, dist[:n] - _EPS_MS, np.nan),
                "upstream": np.where(parent >= 0, ids[np.maximum(parent, 0)], "") if n else [],
                "gateway": nearest(kind == "gateway"),
                "sim_device": nearest(dev["sim"].to_numpy() != ""),
            },
            index=dev.index,
        )


def _raise(problems: list[Problem], where: Callable[[Problem], str]) -> None:
    if problems:
        lines = [f"{where(p)}: {p.text}" for p in problems[:20]]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError("invalid communication layer:\n  " + "\n  ".join(lines) + more)


def _rows(df: pd.DataFrame, table: str, mask: object, text: str, col: str | None = None) -> list[Problem]:
    """Return one Problem per row where ``mask`` holds; ``{v}`` in ``text`` becomes the row's ``col`` value."""
    hit = np.flatnonzero(np.asarray(mask, dtype=bool))
    values = df[col].to_numpy()[hit] if col else [None] * hit.size
    ids = df.index.to_numpy()[hit]
    return [
        Problem(table, int(p), str(i), text.format(v=repr(v.item() if isinstance(v, np.generic) else v)))
        for p, i, v in zip(hit, ids, values, strict=True)
    ]


def _device_rules(dev: pd.DataFrame, sims: pd.DataFrame) -> list[tuple[object, str | None, str]]:
    meter, ctrl, kind_given = dev["kind"] == "meter", dev["kind"] == "controller", dev["element_kind"] != ""
    has_sim = dev["sim"] != ""
    return [
        (~dev["kind"].isin(DEVICE_KINDS), "kind", f"kind {{v}} must be one of {list(DEVICE_KINDS)}"),
        (
            kind_given & ~dev["element_kind"].isin(ELEMENT_KINDS),
            "element_kind",
            f"element_kind {{v}} must be one of {list(ELEMENT_KINDS)}",
        ),
        ((dev["element"] == "") == kind_given, None, "element and element_kind must be given together (or both empty)"),
        (meter & (dev["element"] == ""), None, "a meter needs the grid element it measures (element, element_kind)"),
        (
            ctrl & ~dev["element_kind"].isin(CONTROLLABLE_KINDS),
            None,
            f"a controller must control one of {list(CONTROLLABLE_KINDS)}",
        ),
        (meter & ~(dev["interval_min"] > 0), "interval_min", "meter interval_min {v} must be > 0"),
        (meter & ~(dev["bytes_per_reading"] > 0), "bytes_per_reading", "meter bytes_per_reading {v} must be > 0"),
        (dev["interval_min"] < 0, "interval_min", "interval_min {v} must be >= 0 or empty"),
        (dev["bytes_per_reading"] < 0, "bytes_per_reading", "bytes_per_reading {v} must be >= 0 or empty"),
        (has_sim & ~dev["sim"].isin(sims.index), "sim", "sim {v} is not in sims; add it there or clear the cell"),
        (
            has_sim & dev["sim"].duplicated(),
            "sim",
            "sim {v} is already held by another device; a SIM sits in one device",
        ),
    ]


def _link_rules(links: pd.DataFrame, dev: pd.DataFrame) -> list[tuple[object, str | None, str]]:
    sim_dev = dev.index[dev["sim"] != ""]
    no_sim = (links["technology"] == "cellular") & ~(links["a"].isin(sim_dev) | links["b"].isin(sim_dev))
    return [
        (~links["a"].isin(dev.index), "a", "a {v} is not a device id; add the device or fix the id"),
        (~links["b"].isin(dev.index), "b", "b {v} is not a device id; add the device or fix the id"),
        (links["a"] == links["b"], "a", "a link must join two different devices, not {v} to itself"),
        (
            ~links["technology"].isin(TECHNOLOGIES),
            "technology",
            f"technology {{v}} must be one of {list(TECHNOLOGIES)}",
        ),
        (~links["status"].isin(LINK_STATUSES), "status", f"status {{v}} must be one of {list(LINK_STATUSES)}"),
        (~(links["latency_ms"] >= 0), "latency_ms", "latency_ms {v} must be a number >= 0"),
        (~(links["bandwidth_kbps"] > 0), "bandwidth_kbps", "bandwidth_kbps {v} must be a number > 0"),
        (no_sim, None, "a cellular link needs a device with a SIM at one end; set devices.sim"),
    ]


def find_problems(
    devices: pd.DataFrame, links: pd.DataFrame, sims: pd.DataFrame, grid: Grid | None = None
) -> list[Problem]:
    """Return the problems of conformed comm tables (empty when valid); with ``grid``, also grid references."""
    rules = {
        "devices": _device_rules(devices, sims),
        "links": _link_rules(links, devices),
        "sims": [(~(sims["data_plan_mb_month"] > 0), "data_plan_mb_month", "data_plan_mb_month {v} must be > 0")],
    }
    if grid is not None:
        rules["devices"] += [
            (
                (devices["element_kind"] == kind) & ~devices["element"].isin(grid[kind].index),
                "element",
                f"element {kind} {{v}} is not in grid {grid.name!r}; fix the id or add the element to the grid",
            )
            for kind in ELEMENT_KINDS
        ]
    out: list[Problem] = []
    for table, df in (("devices", devices), ("links", links), ("sims", sims)):
        out += _rows(df, table, df.index.duplicated(), f"duplicate id in {table}; give every row its own id")
        out += _rows(df, table, df.index == "", "empty id; give every row an id")
        for mask, col, text in rules[table]:
            out += _rows(df, table, mask, text, col)
    return out


# -- files ---------------------------------------------------------------------------------------
def write_comm(layer: CommLayer, path: str | Path) -> Path:
    """Write ``layer`` as a folder: ``comm.json`` plus ``devices.csv``, ``links.csv``, ``sims.csv``.

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for table in _SCHEMAS:
        files[table] = f"{table}.csv"
        getattr(layer, table).to_csv(folder / files[table], index_label=_INDEX[table])
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "name": layer.name, "tables": files, "meta": layer.meta}
    (folder / "comm.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return folder


def _empty(table: str) -> pd.DataFrame:
    """Return an empty table ``table`` (used where a file could not be read)."""
    return _SCHEMAS[table].empty_frame().rename_axis(_INDEX[table])


def _read_table(file: Path, table: str) -> tuple[pd.DataFrame, list[str]]:
    """Read one CSV as text; parse numbers cell by cell so that a bad cell is reported with its line."""
    if not file.is_file():
        return _empty(table), [f"{file}: file missing; write the {table} table there (a header if empty)"]
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        return _empty(table), [f"{file}: not a readable UTF-8 CSV table ({err}); rewrite it with write_comm"]
    errors: list[str] = []
    idx = _INDEX[table]
    required = [idx] + [c.name for c in _SCHEMAS[table].columns if c.required]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        return raw, [f"{file}:1: missing column(s) {missing}; the header must name {required}"]
    for col in (c for c in _SCHEMAS[table].columns if c.dtype == "float" and c.name in raw.columns):
        text = raw[col.name].str.strip()
        num = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = num.isna() & (text != "")
        errors += [
            f"{file}:{p + 2}: {table} {raw[idx].iloc[p]!r}: {col.name} {text.iloc[p]!r} is not a number ({col.doc})"
            for p in np.flatnonzero(bad)[:20]
        ]
        raw[col.name] = num
    return raw.set_index(idx), errors


def read_comm(path: str | Path, grid: Grid | None = None) -> CommLayer:
    """Read a layer written by :func:`write_comm` (a folder, or its ``comm.json``) and validate it.

    Parameters
    ----------
    path : str or Path
        The folder or its ``comm.json``.
    grid : Grid, optional
        When given, every grid reference must exist in it.

    Raises
    ------
    ValueError
        Listing every problem as ``file:line: table 'id': what is wrong and how to fix it``.
    """
    folder = Path(path)
    manifest_file = folder if folder.suffix == ".json" else folder / "comm.json"
    folder = manifest_file.parent
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{manifest_file}: cannot read the comm manifest ({err}); write it with write_comm") from err
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_file}: 'format' must be {FORMAT!r}, found {manifest.get('format')!r}")
    tables, errors, files = {}, [], {}
    for table in _SCHEMAS:
        files[table] = folder / manifest.get("tables", {}).get(table, f"{table}.csv")
        tables[table], errs = _read_table(files[table], table)
        errors += errs
    if errors:
        raise ValueError("invalid communication layer:\n  " + "\n  ".join(errors))
    conformed = {t: _conform(t, df) for t, df in tables.items()}
    problems = find_problems(conformed["devices"], conformed["links"], conformed["sims"], grid)
    _raise(problems, lambda p: f"{files[p.table]}:{p.pos + 2}: {p.table} {p.id!r}")
    return CommLayer(**conformed, name=manifest.get("name", "comm"), meta=manifest.get("meta", {}))


# -- data usage ------------------------------------------------------------------------------------
def data_usage(
    layer: CommLayer,
    *,
    days: float = 30.0,
    overhead_pct: float = 50.0,
    keepalive_kb_day: float = 10.0,
    statuses: Iterable[str] = LINK_STATUSES,
) -> pd.DataFrame:
    """Return each SIM's data volume over ``days`` against its plan.

    A device's traffic goes through the nearest SIM on its path to the head-end (its own SIM if it holds one).
    ``usage_mb = days × (Σ 1440 / interval_min × bytes_per_reading × (1 + overhead_pct / 100)
    + 1000 × keepalive_kb_day) / 10^6`` (1 MB = 10^6 bytes, the sum over the devices behind the SIM).

    Parameters
    ----------
    layer : CommLayer
    days : float
        Length of the billing month, days.
    overhead_pct : float
        Protocol overhead (TCP/IP, TLS, DLMS framing) on the payload, %.
    keepalive_kb_day : float
        Fixed traffic per SIM (keep-alives, time sync, session set-up), kB/day.
    statuses : iterable of str
        Link statuses used for routing; default all (the nominal topology).

    Returns
    -------
    DataFrame
        Indexed by SIM id: ``device``, ``meters`` (meters behind it), ``readings_per_day``, ``payload_mb``,
        ``usage_mb``, ``plan_mb``, ``usage_pct``, ``over_plan``.
    """
    dev = layer.devices
    route = layer.reachability(statuses)
    per_day = (1440.0 / dev["interval_min"]).where(dev["interval_min"] > 0, 0.0)
    payload = per_day * dev["bytes_per_reading"].fillna(0.0)
    traffic = pd.DataFrame(
        {"sim_device": route["sim_device"], "meters": dev["kind"] == "meter", "per_day": per_day, "payload": payload}
    )
    by_sim = traffic[traffic["sim_device"] != ""].groupby("sim_device")[["meters", "per_day", "payload"]].sum()
    holder = dev[dev["sim"] != ""]
    out = pd.DataFrame({"device": holder.index.to_numpy()}, index=pd.Index(holder["sim"], name="sim"))
    totals = by_sim.reindex(holder.index).fillna(0.0)
    out["meters"] = totals["meters"].to_numpy().astype(np.int64)
    out["readings_per_day"] = totals["per_day"].to_numpy()
    out["payload_mb"] = days * totals["payload"].to_numpy() / 1e6
    overhead = out["payload_mb"] * overhead_pct / 100.0
    out["usage_mb"] = out["payload_mb"] + overhead + days * keepalive_kb_day * 1e3 / 1e6
    out["plan_mb"] = layer.sims["data_plan_mb_month"].reindex(out.index).to_numpy()
    out["usage_pct"] = 100.0 * out["usage_mb"] / out["plan_mb"]
    out["over_plan"] = out["usage_mb"] > out["plan_mb"]
    return out


def sims_over_plan(layer: CommLayer, **kwargs: Any) -> pd.DataFrame:
    """Return the rows of :func:`data_usage` whose usage exceeds the plan (same keyword arguments)."""
    usage = data_usage(layer, **kwargs)
    return usage[usage["over_plan"]]


# -- technologies, data plans and payloads (the defaults twin.commgen builds a layer from) ----------------
TECH_DEFAULTS: dict[str, tuple[float, float]] = {  # typical one-way latency (ms) and bandwidth (kbit/s) per hop
    "plc": (400.0, 20.0),  # G3-PLC / PRIME narrowband, per hop
    "rf_mesh": (150.0, 50.0),  # 868/915 MHz mesh, per hop
    "cellular": (80.0, 1000.0),  # LTE-M / 4G to the head-end, core network included
    "fiber": (2.0, 1_000_000.0),
    "ethernet": (1.0, 100_000.0),
}
PLANS_MB = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0)


def bytes_per_reading(parameters: pd.Series) -> pd.Series:
    """Return a reading's payload, bytes: 32 (meter id, timestamp, status) + 16 per register (OBIS, value, scaler)."""
    n = parameters.str.count(",") + (parameters.str.strip() != "")
    return 32.0 + 16.0 * n


# generate_comm builds on this module (CommLayer, data_usage), so it is imported, and re-exported, last.
from twin.commgen import generate_comm  # noqa: E402
