"""Power-flow results → CGMES 2.4.15 SV profile (SvVoltage, SvPowerFlow, SvTapStep, SvStatus) as RDF/XML.

The SV file references the source model by mRID: SvVoltage names the TopologicalNodes (the
Grid's bus ids, or the TopologicalNode of a ConnectivityNode bus through
``grid.meta["topological_node"]``), SvPowerFlow the Terminals, SvTapStep the tap changers and
SvStatus the ConductingEquipment. What links Grid rows back to Terminals and tap changers is kept
by the importer in ``grid.meta["cim_terminals"]`` and ``grid.meta["cim_tap_changers"]``, so only
grids from :func:`cim.load` can be exported.

Flows are in CIM's sign convention (load sign: positive from the node into the equipment), MW and
Mvar. Branch terminals take the PF branch flows; loads, static generators and shunts their
set-points at the solved voltage; a generator or external grid takes the balance of its bus when it
is the only one on that bus (several on one bus: no SvPowerFlow for them, their split is not
defined by the power flow).
"""

from __future__ import annotations

import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from lxml import etree

if TYPE_CHECKING:
    import xarray as xr

    from twin.grid import Grid

__all__ = ["export_sv", "terminal_flows"]

CIM16_NS = "http://iec.ch/TC57/2013/CIM-schema-cim16#"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
MD_NS = "http://iec.ch/TC57/61970-552/ModelDescription/1#"
ENTSOE_NS = "http://entsoe.eu/CIM/SchemaExtension/3/1#"
SV_PROFILE = "http://entsoe.eu/CIM/StateVariables/4/1"
_DEPENDS_ON = ("Topology", "SteadyStateHypothesis")


def _require_cim_grid(grid: Grid) -> pd.DataFrame:
    terminals = grid.meta.get("cim_terminals")
    if not isinstance(terminals, pd.DataFrame):
        raise ValueError(
            f"grid {grid.name!r} has no meta['cim_terminals']: SV export needs a grid imported by cim.load"
        )
    return terminals


def _single_step(result: xr.Dataset) -> xr.Dataset:
    if "time" in result.dims:
        raise ValueError("result has a time dimension: export one step, e.g. result.isel(time=k)")
    if not bool(result["converged"]):
        raise ValueError("result did not converge; an SV profile of it would not be a solution")
    return result


def _injection_flows(grid: Grid, vm: pd.Series) -> dict[str, pd.DataFrame]:
    """Load-sign ``p_mw, q_mvar`` of loads, sgens and shunts at the solved voltages (NaN when off)."""
    out = {}
    load = grid.load
    if len(load):
        v = vm.reindex(load["bus"]).to_numpy()
        z_p, i_p = load["const_z_p_percent"].to_numpy() / 100, load["const_i_p_percent"].to_numpy() / 100
        z_q, i_q = load["const_z_q_percent"].to_numpy() / 100, load["const_i_q_percent"].to_numpy() / 100
        s = load["scaling"].to_numpy(float) * np.where(load["in_service"].to_numpy(bool), 1.0, np.nan)
        out["load"] = pd.DataFrame(
            {
                "p_mw": load["p_mw"].to_numpy() * s * (1 - z_p - i_p + i_p * v + z_p * v**2),
                "q_mvar": load["q_mvar"].to_numpy() * s * (1 - z_q - i_q + i_q * v + z_q * v**2),
            },
            index=load.index,
        )
    sgen = grid.sgen
    if len(sgen):
        on = np.where(sgen["in_service"].to_numpy(bool) & vm.reindex(sgen["bus"]).notna().to_numpy(), 1.0, np.nan)
        s = -sgen["scaling"].to_numpy(float) * on
        out["sgen"] = pd.DataFrame(
            {"p_mw": sgen["p_mw"].to_numpy() * s, "q_mvar": sgen["q_mvar"].to_numpy() * s}, index=sgen.index
        )
    shunt = grid.shunt
    if len(shunt):
        bus_kv = grid.bus["vn_kv"].reindex(shunt["bus"]).to_numpy(float)
        rated = shunt["vn_kv"].fillna(pd.Series(bus_kv, index=shunt.index)).to_numpy(float)
        k = (vm.reindex(shunt["bus"]).to_numpy() * bus_kv / rated) ** 2 * shunt["step"].to_numpy(float)
        k = np.where(shunt["in_service"].to_numpy(bool), k, np.nan)
        out["shunt"] = pd.DataFrame(
            {"p_mw": shunt["p_mw"].to_numpy() * k, "q_mvar": shunt["q_mvar"].to_numpy() * k}, index=shunt.index
        )
    return out


def _source_flows(grid: Grid, result: xr.Dataset, known: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Load-sign flows of gens and external grids: the bus balance, where one such unit sits on its bus."""
    bus_s = pd.DataFrame({"p_mw": result["p_mw"].to_series(), "q_mvar": result["q_mvar"].to_series()})
    for table in ("load", "sgen", "shunt"):
        if table in known:
            bus_s = bus_s.sub(known[table].fillna(0.0).groupby(grid[table]["bus"]).sum(), fill_value=0.0)
    units = pd.concat(
        [grid[t].loc[grid[t]["in_service"].astype(bool), ["bus"]].assign(table=t) for t in ("gen", "ext_grid")]
    )
    alone = units[~units["bus"].duplicated(keep=False)]
    out = {}
    for table in ("gen", "ext_grid"):
        rows = alone[alone["table"] == table]
        out[table] = bus_s.reindex(rows["bus"]).set_axis(rows.index)
    return out


def terminal_flows(grid: Grid, result: xr.Dataset) -> pd.DataFrame:
    """Return ``p_mw, q_mvar`` per CIM Terminal mRID (load sign: from the node into the equipment).

    Parameters
    ----------
    grid : Grid
        From :func:`cim.load` (uses ``meta["cim_terminals"]``).
    result : xarray.Dataset
        One converged step of :func:`solvers.run_pf` on ``grid``.

    Returns
    -------
    DataFrame
        Indexed by Terminal mRID; terminals whose flow is not defined (element out of service,
        de-energised, or a generator sharing its bus with another) are left out.
    """
    terminals = _require_cim_grid(grid)
    result = _single_step(result)
    vm = result["vm_pu"].to_series()
    flows = _injection_flows(grid, vm)
    flows |= _source_flows(grid, result, flows)
    parts = []
    branch = terminals[terminals["side"] != "bus"]
    if len(branch):
        frm = branch["side"].to_numpy() == "from"
        el = branch["element"].to_numpy()
        p = np.where(frm, result["p_from_mw"].to_series().reindex(el), result["p_to_mw"].to_series().reindex(el))
        q = np.where(frm, result["q_from_mvar"].to_series().reindex(el), result["q_to_mvar"].to_series().reindex(el))
        parts.append(pd.DataFrame({"p_mw": p, "q_mvar": q}, index=branch.index))
    for table, df in flows.items():
        rows = terminals[(terminals["table"] == table) & terminals["element"].isin(df.index)]
        parts.append(df.reindex(rows["element"]).set_axis(rows.index))
    if not parts:
        return pd.DataFrame(columns=["p_mw", "q_mvar"], dtype=float)
    out = pd.concat(parts)
    # a terminal with several parts (segment between voltage levels: trafo row + end shunt) is their sum
    return out.groupby(level=0, sort=False).sum(min_count=1).dropna()


def _source_models(files: list[str]) -> list[str]:
    """``rdf:about`` of the TP and SSH FullModel headers among ``files`` (those still readable)."""
    found = []
    for name in files:
        path, _, member = name.partition("!")
        if not Path(path).is_file():
            continue
        with zipfile.ZipFile(path) if member else open(path, "rb") as src:  # noqa: PTH123
            stream = src.open(member) if member else src
            for _, elem in etree.iterparse(stream, events=("end",), tag=f"{{{MD_NS}}}FullModel"):
                profile = " ".join(e.text or "" for e in elem.iter(f"{{{MD_NS}}}Model.profile"))
                if any(f"/{p}/" in profile for p in _DEPENDS_ON):
                    found.append(elem.get(f"{{{RDF_NS}}}about"))
                break
    return found


def _sub(parent: etree._Element, tag: str, text: str | None = None, ref: str | None = None) -> None:
    el = etree.SubElement(parent, f"{{{parent.nsmap['cim']}}}{tag}")
    if ref is not None:
        el.set(f"{{{RDF_NS}}}resource", f"#{ref}")
    else:
        el.text = text


def _obj(root: etree._Element, cls: str) -> etree._Element:
    el = etree.SubElement(root, f"{{{root.nsmap['cim']}}}{cls}")
    el.set(f"{{{RDF_NS}}}ID", f"_{uuid.uuid4()}")
    return el


def _node_voltages(grid: Grid, result: xr.Dataset) -> pd.DataFrame:
    """``v_kv, angle_deg`` per TopologicalNode id (0, 0 for de-energised nodes, as PowSyBl writes them)."""
    vm = result["vm_pu"].to_series()
    df = pd.DataFrame(
        {
            "v_kv": (vm * grid.bus["vn_kv"].reindex(vm.index)).fillna(0.0),
            "angle_deg": result["va_deg"].to_series().where(vm.notna(), 0.0),
        }
    )
    tn = grid.meta.get("topological_node")
    if isinstance(tn, pd.Series):
        df = df.set_axis(tn.reindex(df.index).to_numpy()).dropna(how="all")
        df = df[df.index.notna()]
        df = df.sort_values("v_kv", ascending=False).groupby(level=0, sort=False).first()
    return df


def export_sv(
    grid: Grid,
    result: xr.Dataset,
    path: str | Path,
    *,
    dependent_on: list[str] | None = None,
    scenario_time: datetime | None = None,
) -> Path:
    """Write the SV profile of a power-flow result, referencing the source model's mRIDs.

    Parameters
    ----------
    grid : Grid
        From :func:`cim.load` (buses from TopologicalNodes, or ConnectivityNodes of a model with TP).
    result : xarray.Dataset
        One converged step of :func:`solvers.run_pf` on ``grid``.
    path : str or Path
        The XML file to write.
    dependent_on : list of str, optional
        ``md:Model.DependentOn`` URIs; by default the TP and SSH headers of ``grid.meta["cim_files"]``
        that can still be read.
    scenario_time : datetime, optional
        ``md:Model.scenarioTime``; now (UTC) by default.

    Returns
    -------
    Path
        The file written: SvVoltage (kV, degrees) per TopologicalNode, SvPowerFlow (MW, Mvar, load
        sign) per Terminal where known, SvTapStep per tap changer, SvStatus per equipment.
    """
    terminals = _require_cim_grid(grid)
    flows = terminal_flows(grid, result)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # the source model's CIM16 namespace (2013, or 2012 as NEPLAN writes it): cimpy reads one namespace per model
    cim_ns = grid.meta.get("cim_namespace") or CIM16_NS
    if "CIM-schema-cim16" not in cim_ns:
        raise ValueError(f"SV export writes CGMES 2.4.15 (CIM16); the source model is in {cim_ns!r}")
    nsmap = {"cim": cim_ns, "entsoe": ENTSOE_NS, "md": MD_NS, "rdf": RDF_NS}
    root = etree.Element(f"{{{RDF_NS}}}RDF", nsmap=nsmap)
    head = etree.SubElement(root, f"{{{MD_NS}}}FullModel")
    head.set(f"{{{RDF_NS}}}about", f"urn:uuid:{uuid.uuid4()}")
    when = scenario_time.strftime("%Y-%m-%dT%H:%M:%SZ") if scenario_time else now
    for tag, text in (("scenarioTime", when), ("created", now), ("description", "gridtwin SV"), ("version", "1")):
        etree.SubElement(head, f"{{{MD_NS}}}Model.{tag}").text = text
    deps = _source_models(list(grid.meta.get("cim_files", []))) if dependent_on is None else dependent_on
    for dep in deps:
        etree.SubElement(head, f"{{{MD_NS}}}Model.DependentOn").set(f"{{{RDF_NS}}}resource", dep)
    etree.SubElement(head, f"{{{MD_NS}}}Model.profile").text = SV_PROFILE
    etree.SubElement(head, f"{{{MD_NS}}}Model.modelingAuthoritySet").text = "gridtwin"
    for tn, (v_kv, angle) in _node_voltages(grid, result).iterrows():
        el = _obj(root, "SvVoltage")
        _sub(el, "SvVoltage.angle", repr(float(angle)))
        _sub(el, "SvVoltage.v", repr(float(v_kv)))
        _sub(el, "SvVoltage.TopologicalNode", ref=str(tn))
    for term, (p, q) in flows.iterrows():
        el = _obj(root, "SvPowerFlow")
        _sub(el, "SvPowerFlow.p", repr(float(p)))
        _sub(el, "SvPowerFlow.q", repr(float(q)))
        _sub(el, "SvPowerFlow.Terminal", ref=str(term))
    tap_changers = grid.meta.get("cim_tap_changers", pd.DataFrame(columns=["tap_changer", "step"]))
    steps = tap_changers["step"] if "step" in tap_changers else pd.Series(np.nan, index=tap_changers.index)
    for (elem, tc), fixed in zip(tap_changers["tap_changer"].items(), steps.to_numpy(float), strict=True):
        table = "trafo" if elem in grid.trafo.index else "trafo3w"
        el = _obj(root, "SvTapStep")
        # a tap changer folded into a fixed ratio/shift keeps its step; the others are the row's tap_pos
        position = fixed if np.isfinite(fixed) else float(grid[table].at[elem, "tap_pos"])
        _sub(el, "SvTapStep.position", repr(float(position)))
        _sub(el, "SvTapStep.TapChanger", ref=str(tc))
    pairs = terminals[["equipment", "table"]].drop_duplicates()
    for equipment, table in pairs.itertuples(index=False):
        if equipment not in grid[table].index:  # the end shunts of a segment between voltage levels
            continue
        el = _obj(root, "SvStatus")
        _sub(el, "SvStatus.inService", "true" if bool(grid[table].at[equipment, "in_service"]) else "false")
        _sub(el, "SvStatus.ConductingEquipment", ref=str(equipment))
    out = Path(path)
    etree.ElementTree(root).write(str(out), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out
