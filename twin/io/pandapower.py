"""Import a pandapower net into a :class:`twin.Grid`.

Ids: buses ``str(index)``; every other element ``"<table>/<index>"`` (``line/3``, ``trafo/0``,
``trafo3w/1``, ``load/12``, ``sgen/4`` ...). Element semantics and units are pandapower's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from twin.grid import Grid
from twin.schema import COMPONENTS, SCHEMAS

if TYPE_CHECKING:
    from pandapower.auxiliary import pandapowerNet

__all__ = ["from_pandapower", "to_pandapower"]

# pandapower element tables gridtwin has no model for yet: importing a net that uses them in service
# would give wrong power flows, so we refuse and say which rows.
_UNSUPPORTED = (
    "ward",
    "xward",
    "impedance",
    "dcline",
    "motor",
    "asymmetric_load",
    "asymmetric_sgen",
    "svc",
    "tcsc",
    "ssc",
    "vsc",
    "line_dc",
    "source_dc",
    "load_dc",
    "b2b_vsc",
)

_SWITCH_ET_TABLE = {"l": "line", "t": "trafo", "t3": "trafo3w"}


def _element_ids(table: str, index: pd.Index) -> pd.Index:
    if table == "bus":
        return pd.Index(index.astype(str), dtype=object, name="id")
    return pd.Index([f"{table}/{i}" for i in index], dtype=object, name="id")


def _bus_xy(geo: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    x = np.full(len(geo), np.nan)
    y = np.full(len(geo), np.nan)
    for k, g in enumerate(geo.to_numpy()):
        if isinstance(g, str) and g:
            coords = json.loads(g).get("coordinates")
            if coords is not None and len(coords) == 2:
                x[k], y[k] = float(coords[0]), float(coords[1])
    return x, y


def _check_supported(net: pandapowerNet) -> None:
    for table in _UNSUPPORTED:
        df = net.get(table)
        if isinstance(df, pd.DataFrame) and len(df) and df.get("in_service", pd.Series(True)).any():
            ids = df.index[df.get("in_service", pd.Series(True, index=df.index)).astype(bool)][:5].tolist()
            raise NotImplementedError(
                f"pandapower table {table!r} has {len(df)} in-service rows (e.g. {ids}); gridtwin does not "
                f"model {table} elements yet. Remove them or set them out of service to import this net."
            )
    for table in ("trafo", "trafo3w"):
        df = net[table]
        if "tap_dependency_table" in df and df["tap_dependency_table"].fillna(False).astype(bool).any():
            bad = df.index[df["tap_dependency_table"].fillna(False).astype(bool)][:5].tolist()
            raise NotImplementedError(
                f"{table} rows {bad} use tap_dependency_table characteristics, which gridtwin does not "
                "model yet; set tap_dependency_table=False to use the plain tap step model."
            )
    sh = net.shunt
    if "step_dependency_table" in sh and sh["step_dependency_table"].fillna(False).astype(bool).any():
        raise NotImplementedError("shunt step_dependency_table characteristics are not modelled by gridtwin yet")


def from_pandapower(net: pandapowerNet, name: str | None = None) -> Grid:
    """Build a Grid from a pandapower net.

    Parameters
    ----------
    net : pandapowerNet
        The net; it is not modified.
    name : str, optional
        Grid name (defaults to ``net.name``).

    Returns
    -------
    Grid
        Tables with pandapower's columns and units, ids as described in the module docstring.

    Raises
    ------
    NotImplementedError
        If the net uses in-service elements gridtwin cannot model (wards, DC lines, ...).
    """
    _check_supported(net)
    tables: dict[str, pd.DataFrame] = {}
    for comp in COMPONENTS:
        src = net.get(comp, None)
        if src is None or not len(src):
            continue
        schema = SCHEMAS[comp]
        df = src.copy()
        df.index = _element_ids(comp, src.index)
        for col in schema.bus_columns:
            missing = src[col].isna().to_numpy()
            if missing.any():
                raise ValueError(
                    f"pandapower {comp} rows {src.index[missing][:5].tolist()} have no {col!r}; every {comp} "
                    "must reference a bus index"
                )
            df[col] = src[col].astype(np.int64).astype(str).to_numpy()
        if comp == "bus" and "geo" in src:
            df["x"], df["y"] = _bus_xy(src["geo"])
        if comp == "switch":
            et = src["et"].to_numpy()
            elem = src["element"].astype(np.int64).to_numpy()
            df["element"] = [
                str(e) if t == "b" else f"{_SWITCH_ET_TABLE[t]}/{e}" for t, e in zip(et, elem, strict=True)
            ]
            if "z_ohm" in src:
                df["z_ohm"] = src["z_ohm"].fillna(0.0).to_numpy()
        if comp == "shunt":
            vn = df["vn_kv"].to_numpy(dtype=float)
            bus_vn = net.bus.loc[src["bus"], "vn_kv"].to_numpy()
            df["vn_kv"] = np.where(np.isnan(vn), bus_vn, vn)
        if comp in ("trafo", "trafo3w") and "tap_changer_type" in df:
            df["tap_changer_type"] = df["tap_changer_type"].where(df["tap_changer_type"].notna(), "")
            df["tap_side"] = df["tap_side"].where(df["tap_side"].notna(), "")
        keep = [c for c in schema.column_names if c in df.columns]
        extra = [c for c in df.columns if c not in keep and c not in ("geo", "std_type") and df[c].dtype != object]
        tables[comp] = df[keep + extra]
    meta: dict[str, Any] = {"source": "pandapower", "pandapower_name": net.name}
    return Grid(
        name=name or (net.name if isinstance(net.name, str) and net.name else "pandapower"),
        sn_mva=float(net.sn_mva),
        f_hz=float(net.f_hz),
        tables=tables,
        meta=meta,
    )


def to_pandapower(grid: Grid) -> pandapowerNet:
    """Build a pandapower net from a Grid (for cross-checks and for users of pandapower tools).

    Element indices are positions; the Grid id is kept in each table's ``name`` column when it
    has none.
    """
    import pandapower as pp

    net = pp.create_empty_network(name=grid.name, f_hz=grid.f_hz, sn_mva=grid.sn_mva)
    bus_pos = pd.Series(np.arange(grid.n_bus), index=grid.bus.index)
    for comp in COMPONENTS:
        df = grid[comp]
        if not len(df):
            continue
        out = df.reset_index(drop=True).copy()
        if "name" in out:
            out["name"] = np.where(out["name"].astype(str) == "", df.index.to_numpy(), out["name"])
        for col in SCHEMAS[comp].bus_columns:
            out[col] = bus_pos.loc[df[col]].to_numpy()
        if comp == "switch":
            pos = {t: pd.Series(np.arange(len(grid[t])), index=grid[t].index) for t in ("line", "trafo", "trafo3w")}
            et = df["et"].to_numpy()
            out["element"] = [
                int(bus_pos[e]) if t == "b" else int(pos[_SWITCH_ET_TABLE[t]][e])
                for t, e in zip(et, df["element"].to_numpy(), strict=True)
            ]
        for col in ("tap_changer_type", "tap_side"):
            if col in out:
                out[col] = out[col].replace("", None)
        template = net[comp]
        for col in template.columns:
            if col not in out:
                out[col] = None if template[col].dtype == object else np.nan
        net[comp] = out[[c for c in out.columns if c not in ("x", "y")]]
    return net
