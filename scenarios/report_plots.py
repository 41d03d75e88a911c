"""HoloViews plots comparing scenario results: loading duration curves, hours over limit, network maps.

Every builder takes the results Dataset of :func:`scenarios.report.compare_table` (a ``scenario`` dim; see
``docs/design/scenarios_report.md``) and returns a HoloViews object; :func:`scenarios.report.write_report` renders
them into one offline HTML file. Failed scenarios (status other than ``"ok"``) carry NaN and are left out of the
plots; the report lists them with their error.

Network maps draw branches between bus positions: the grid's ``bus.x``/``bus.y`` when every bus has them (SimBench
and pandapower geodata), otherwise a networkx layout of the branch graph (Kamada-Kawai up to
:data:`KAMADA_KAWAI_MAX_BUSES` buses, a seeded spring layout above), so a grid without coordinates still gets a map.
A three-winding transformer is drawn as three segments from its windings' buses to a star point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import holoviews as hv
import holoviews.plotting.bokeh  # registers the Bokeh backend, so plot options can be set
import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, depth_first_order

if TYPE_CHECKING:
    import xarray as xr

    from twin.grid import Grid

__all__ = [
    "KAMADA_KAWAI_MAX_BUSES",
    "branch_segments",
    "build_duration_curves",
    "build_hours_bars",
    "build_network_maps",
    "bus_positions",
    "ok_scenarios",
]

KAMADA_KAWAI_MAX_BUSES = 400
_WIDTH = 1000


def ok_scenarios(results: xr.Dataset) -> list[str]:
    """Return the ids of the scenarios whose ``status`` is ``"ok"``, in the Dataset's order."""
    status = results["status"].to_numpy().astype(str)
    return [str(s) for s, st in zip(results["scenario"].to_numpy(), status, strict=True) if st == "ok"]


def _branch_ends(grid: Grid) -> pd.DataFrame:
    """Every branch of ``grid`` as the solver names it: index branch id, columns kind, from_bus, to_bus.

    Lines run from_bus → to_bus, transformers hv_bus → lv_bus, and each trafo3w winding ``<id>/<side>`` runs from
    its bus to the star node ``<id>``.
    """
    line, trafo, t3 = grid.line, grid.trafo, grid.trafo3w
    parts = [
        pd.DataFrame({"kind": "line", "from_bus": line["from_bus"], "to_bus": line["to_bus"]}, index=line.index),
        pd.DataFrame({"kind": "trafo", "from_bus": trafo["hv_bus"], "to_bus": trafo["lv_bus"]}, index=trafo.index),
        *(
            pd.DataFrame(
                {"kind": "trafo3w", "from_bus": t3[f"{side}_bus"].to_numpy(), "to_bus": t3.index.to_numpy()},
                index=pd.Index([f"{i}/{side}" for i in t3.index]),
            )
            for side in ("hv", "mv", "lv")
        ),
    ]
    ends = pd.concat([p for p in parts if len(p)]) if any(len(p) for p in parts) else parts[0]
    ends.index = ends.index.astype(str)
    return ends.astype({"from_bus": str, "to_bus": str})


def _tree_layout(adj: sp.csr_array, roots: np.ndarray) -> np.ndarray:
    """Layered layout of a spanning forest: y = −depth from a root, x = leaf order, parents centred over children.

    ``adj`` is the symmetric node adjacency (n × n), ``roots`` one node per connected component. O(n) in numpy plus
    one loop over depth levels; radial grids come out as their feeder trees.
    """
    n = adj.shape[0]
    hub = sp.csr_array((np.ones(len(roots)), (np.full(len(roots), n), roots)), shape=(n + 1, n + 1))
    padded = sp.block_diag([adj, sp.csr_array((1, 1))], format="csr") + hub
    order, pred = depth_first_order(padded, n, directed=False, return_predecessors=True)
    parent = np.where(pred < 0, n, pred)
    depth, jump = (np.arange(n + 1) != n).astype(np.int64), parent.copy()
    while (jump != n).any():  # pointer jumping: depth = number of steps to the hub
        depth, jump = depth + depth[jump], jump[jump]
    is_leaf = ~np.isin(np.arange(n + 1), parent[:n])
    rank = np.empty(n + 1, dtype=np.int64)
    rank[order] = np.arange(n + 1)
    leaves = np.flatnonzero(is_leaf)
    x_lo = np.full(n + 1, np.inf)
    x_lo[leaves[np.argsort(rank[leaves])]] = np.arange(len(leaves), dtype=float)
    x_hi = np.where(np.isfinite(x_lo), x_lo, -np.inf)
    for level in range(int(depth.max()), 0, -1):
        nodes = np.flatnonzero(depth == level)
        np.minimum.at(x_lo, parent[nodes], x_lo[nodes])
        np.maximum.at(x_hi, parent[nodes], x_hi[nodes])
    return np.column_stack([(x_lo[:n] + x_hi[:n]) / 2.0, -depth[:n].astype(float)])


def _layout(grid: Grid, ends: pd.DataFrame) -> pd.DataFrame:
    """Bus (and trafo3w star) positions from the branch graph (deterministic).

    A radial grid, or one with more than :data:`KAMADA_KAWAI_MAX_BUSES` nodes, gets a tree layout grown from its
    external grid buses (a spanning tree where meshed); a small meshed grid gets networkx's Kamada-Kawai layout.
    """
    nodes = pd.Index([*grid.bus.index.astype(str), *grid.trafo3w.index.astype(str)], name="bus")
    u, v = nodes.get_indexer(ends["from_bus"]), nodes.get_indexer(ends["to_bus"])
    ok = (u >= 0) & (v >= 0)
    adj = sp.csr_array((np.ones(ok.sum()), (u[ok], v[ok])), shape=(len(nodes), len(nodes)))
    adj = ((adj + adj.T) > 0).astype(float)
    n_comp, label = connected_components(adj, directed=False)
    is_radial = adj.nnz // 2 == len(nodes) - n_comp
    if is_radial or len(nodes) > KAMADA_KAWAI_MAX_BUSES:
        sources = nodes.get_indexer(grid.ext_grid["bus"].astype(str))
        candidates = np.concatenate([sources[sources >= 0], np.arange(len(nodes))])  # sources first
        _, first = np.unique(label[candidates], return_index=True)
        xy = _tree_layout(adj, candidates[first])
    else:
        pos = nx.kamada_kawai_layout(nx.from_scipy_sparse_array(adj))
        xy = np.array([pos[k] for k in range(len(nodes))], dtype=float).reshape(-1, 2)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}, index=nodes)


def bus_positions(grid: Grid) -> tuple[pd.DataFrame, str]:
    """Plot positions of every bus and trafo3w star node, and where they came from.

    Parameters
    ----------
    grid : twin.Grid
        The grid the scenarios ran on.

    Returns
    -------
    positions : pandas.DataFrame
        Index bus (or trafo3w) id, columns ``x`` and ``y`` (the grid's coordinate units, or layout units).
    source : str
        ``"geodata"`` when every bus has finite ``x``/``y`` in the grid, else ``"layout"``.
    """
    ends = _branch_ends(grid)
    xy = grid.bus[["x", "y"]].astype(float)
    if len(xy) and np.isfinite(xy.to_numpy()).all():
        xy.index = xy.index.astype(str).rename("bus")
        t3 = grid.trafo3w
        stars = [xy.loc[t3[f"{s}_bus"].astype(str)].to_numpy() for s in ("hv", "mv", "lv")]
        star_xy = pd.DataFrame(np.mean(stars, axis=0).reshape(-1, 2), index=t3.index.astype(str), columns=["x", "y"])
        return pd.concat([xy, star_xy]), "geodata"
    return _layout(grid, ends), "layout"


def branch_segments(
    results: xr.Dataset, grid: Grid, positions: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Geometry of the results' branches: one row per branch found in ``grid``.

    Parameters
    ----------
    results : xarray.Dataset
        Scenario results with a ``branch`` coordinate.
    grid : twin.Grid
        The grid the scenarios ran on.
    positions : pandas.DataFrame, optional
        Node positions from :func:`bus_positions` (computed when not given).

    Returns
    -------
    segments : pandas.DataFrame
        Index branch id; columns ``kind``, ``from_bus``, ``to_bus``, ``x0``, ``y0``, ``x1``, ``y1``.
    missing : list of str
        Branch ids of the results that ``grid`` does not have (e.g. added by a scenario); they are not drawn and
        the report names them.
    """
    ends = _branch_ends(grid)
    branch = pd.Index(results["branch"].to_numpy().astype(str))
    found = branch.isin(ends.index)
    seg = ends.loc[branch[found]].copy()
    pos = bus_positions(grid)[0] if positions is None else positions
    start = pos.reindex(seg["from_bus"]).to_numpy()
    end = pos.reindex(seg["to_bus"]).to_numpy()
    seg["x0"], seg["y0"], seg["x1"], seg["y1"] = start[:, 0], start[:, 1], end[:, 0], end[:, 1]
    seg.index.name = "branch"
    return seg, branch[~found].tolist()


def _most_loaded(results: xr.Dataset, scenarios: list[str], n_assets: int) -> list[str]:
    """The ``n_assets`` branches with the highest max loading over the ok scenarios (all-NaN ones skipped)."""
    peak = results["max_loading_pct"].sel(scenario=scenarios).max("scenario", skipna=True).to_pandas()
    return [str(b) for b in peak.dropna().sort_values(ascending=False, kind="stable").index[:n_assets]]


def build_duration_curves(results: xr.Dataset, n_assets: int = 8, limit_pct: float = 100.0) -> hv.HoloMap:
    """Loading duration curves of the most loaded assets: a HoloMap keyed by ``branch``, one curve per scenario.

    Parameters
    ----------
    results : xarray.Dataset
        Scenario results with ``loading_duration_pct`` (scenario, branch, percentile).
    n_assets : int
        How many branches to show (those with the highest max loading over the ok scenarios).
    limit_pct : float
        Loading limit drawn as a horizontal line, %.

    Returns
    -------
    holoviews.HoloMap
        Keys are branch ids; empty when no scenario succeeded.
    """
    scenarios = ok_scenarios(results)
    kind = results["branch_kind"].to_pandas()
    kind.index = kind.index.astype(str)
    share = results["percentile"].to_numpy().astype(float)
    frames = {}
    for branch in _most_loaded(results, scenarios, n_assets) if scenarios else []:
        curves = results["loading_duration_pct"].sel(branch=branch, scenario=scenarios).to_numpy()
        overlay = hv.NdOverlay(
            {
                s: hv.Curve((share, curves[k]), "time_share_pct", "loading_pct").opts(tools=["hover"], line_width=2)
                for k, s in enumerate(scenarios)
            },
            kdims=["scenario"],
        )
        frames[branch] = (overlay * hv.HLine(limit_pct).opts(color="black", line_dash="dashed")).opts(
            title=f"Loading duration curve of {branch} ({kind[branch]})",
            width=_WIDTH,
            height=350,
            legend_position="right",
            xlabel="share of the time the loading is exceeded (%)",
            ylabel="loading (%)",
        )
    return hv.HoloMap(frames, kdims=["branch"], sort=False)


def build_hours_bars(results: xr.Dataset) -> hv.Bars:
    """Hours over the limit per ok scenario, summed over lines and over transformers (grouped bars, h)."""
    scenarios = ok_scenarios(results)
    hours = results["hours_over_limit"].sel(scenario=scenarios).groupby("branch_kind").sum("branch", skipna=True)
    frame = hours.to_dataframe(name="hours_over_limit_h").reset_index()[
        ["scenario", "branch_kind", "hours_over_limit_h"]
    ]
    frame = frame.astype({"scenario": str, "branch_kind": str})
    return hv.Bars(frame, ["scenario", "branch_kind"], "hours_over_limit_h").opts(
        title="Hours over limit per scenario (sum over assets, h)",
        width=_WIDTH,
        height=350,
        tools=["hover"],
        xrotation=30,
        ylabel="hours over limit (h)",
    )


def build_network_maps(
    results: xr.Dataset, grid: Grid, limit_pct: float = 100.0, positions: tuple[pd.DataFrame, str] | None = None
) -> hv.HoloMap:
    """Network maps coloured by each branch's max loading: a HoloMap keyed by ``scenario`` (ok scenarios).

    Parameters
    ----------
    results : xarray.Dataset
        Scenario results (``max_loading_pct``, ``hours_over_limit``, ``min_vm_pu``, ``max_vm_pu``).
    grid : twin.Grid
        The grid the scenarios ran on (bus coordinates, branch ends).
    limit_pct : float
        Loading limit, %: the colour scale runs from 0 to the largest of 1.5 × limit and the highest loading.
    positions : tuple of (pandas.DataFrame, str), optional
        What :func:`bus_positions` returns for ``grid`` (computed when not given).

    Returns
    -------
    holoviews.HoloMap
        Keys are scenario ids; each frame overlays branch segments (hover: branch id, kind, buses, max loading,
        hours over limit) and bus points (hover: bus id, min and max voltage).
    """
    scenarios = ok_scenarios(results)
    pos, source = bus_positions(grid) if positions is None else positions
    seg, _ = branch_segments(results, grid, pos)
    loading = results["max_loading_pct"].sel(scenario=scenarios, branch=seg.index.to_numpy())
    hours = results["hours_over_limit"].sel(scenario=scenarios, branch=seg.index.to_numpy())
    top = float(np.nanmax(loading.to_numpy(), initial=0.0))
    clim = (0.0, max(1.5 * limit_pct, top))
    bus_ids = results["bus"].to_numpy().astype(str)
    bus_xy = pos.reindex(bus_ids)
    kdims = ["x0", "y0", "x1", "y1"]
    vdims = ["branch", "kind", "from_bus", "to_bus", "max_loading_pct", "hours_over_limit_h"]
    frames = {}
    for k, scenario in enumerate(scenarios):
        table = seg.reset_index().assign(max_loading_pct=loading.to_numpy()[k], hours_over_limit_h=hours.to_numpy()[k])
        lines = hv.Segments(table, kdims, vdims).opts(
            color="max_loading_pct",
            cmap="RdYlGn_r",
            clim=clim,
            colorbar=True,
            line_width=3,
            tools=["hover"],
            hover_tooltips=[(v, f"@{{{v}}}") for v in vdims],
        )
        buses = pd.DataFrame(
            {
                "x": bus_xy["x"].to_numpy(),
                "y": bus_xy["y"].to_numpy(),
                "bus": bus_ids,
                "min_vm_pu": results["min_vm_pu"].sel(scenario=scenario).to_numpy(),
                "max_vm_pu": results["max_vm_pu"].sel(scenario=scenario).to_numpy(),
            }
        )
        points = hv.Points(buses, ["x", "y"], ["bus", "min_vm_pu", "max_vm_pu"]).opts(
            color="grey",
            size=4,
            tools=["hover"],
            hover_tooltips=[("bus", "@{bus}"), ("min_vm_pu", "@{min_vm_pu}"), ("max_vm_pu", "@{max_vm_pu}")],
        )
        frames[scenario] = (lines * points).opts(
            title=f"Max loading per branch (%) in {scenario} (positions: {source})",
            width=_WIDTH,
            height=600,
            xaxis=None,
            yaxis=None,
        )
    return hv.HoloMap(frames, kdims=["scenario"], sort=False)
