"""The dashboard's plots: HoloViews (bokeh backend) → Bokeh ``json_item`` documents the page embeds with BokehJS.

- :func:`network_item`: the physical network, buses at their coordinates (longitude/latitude shown as local metres)
  or at a networkx layout when some bus has none; branches coloured by loading (%), the latest power-flow result or
  the highest expected loading of the latest overload prediction; hover with ids and values; transformers as
  clickable squares: a click selects one and calls ``window.gridtwinSelectTrafo(id)`` in the page.
- :func:`transformer_item`: a transformer's metering (``sensors`` group) with its virtual sensor (the sum of its
  meters, :func:`twin.timeseries.sensors.virtual_sensors`) over the last days, the load forecast below it (P10–P90
  band and expected value), and its loading (%) with the predicted expected loading and the limit.

The forecast band is the sum of the per-load quantile forecasts of the loads the transformer supplies (comonotone
loads: an upper bound of the spread of the sum); it is in the same unit as the virtual sensor (kW from the meters'
interval energy). Rendering holds a module lock: HoloViews' option store is not thread-safe.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import holoviews as hv

    from twin.api.site import Site
    from twin.grid import Grid

__all__ = ["LOADING_CLIM_PCT", "network_item", "transformer_item"]

LOADING_CLIM_PCT = (0.0, 120.0)
TRAFO_SOURCE_NAME = "gridtwin-trafos"
_CMAP = ["#2b83ba", "#abdda4", "#ffffbf", "#fdae61", "#d7191c"]
_M_PER_DEG_LAT = 110_540.0
_M_PER_DEG_LON = 111_320.0
_RENDER_LOCK = threading.Lock()
_SELECT_JS = """
const i = cb_obj.indices.length ? cb_obj.indices[0] : null;
if (i !== null && window.gridtwinSelectTrafo) { window.gridtwinSelectTrafo(source.data["trafo_id"][i]); }
"""


def bus_positions(grid: Grid) -> tuple[pd.DataFrame, str]:
    """Plot positions of the buses and the axis unit.

    Returns
    -------
    (DataFrame, str)
        Columns ``x``, ``y`` indexed by bus id; the unit is ``"m"`` when every bus has longitude/latitude
        (projected to metres east/north of the south-west corner), ``""`` for other coordinates, ``"layout"`` when
        some bus has none (then every bus is placed by a networkx Kamada–Kawai layout of the physical graph).
    """
    bus = grid.tables["bus"]
    xy = bus[["x", "y"]].astype(float)
    if len(xy) and xy.notna().all(axis=None):
        lon, lat = xy["x"].to_numpy(), xy["y"].to_numpy()
        if np.all(np.abs(lon) <= 180) and np.all(np.abs(lat) <= 90):
            east = (lon - lon.min()) * _M_PER_DEG_LON * np.cos(np.deg2rad(lat.mean()))
            north = (lat - lat.min()) * _M_PER_DEG_LAT
            return pd.DataFrame({"x": east, "y": north}, index=bus.index), "m"
        return xy, ""
    graph = nx.Graph()
    graph.add_nodes_from(bus.index)
    for kind, a, b in (("line", "from_bus", "to_bus"), ("trafo", "hv_bus", "lv_bus")):
        graph.add_edges_from(grid.tables[kind][[a, b]].itertuples(index=False, name=None))
    switch = grid.tables["switch"]
    if len(switch):
        bb = switch[(switch["et"] == "b") & switch["closed"].astype(bool)]
        graph.add_edges_from(bb[["bus", "element"]].astype(str).itertuples(index=False, name=None))
    layout = nx.kamada_kawai_layout(graph) if len(graph) <= 500 else nx.spring_layout(graph, seed=0)
    pos = np.array([layout[b] for b in bus.index]).reshape(-1, 2)
    return pd.DataFrame({"x": pos[:, 0], "y": pos[:, 1]}, index=bus.index), "layout"


def branch_loading(site: Site, source: str) -> tuple[pd.DataFrame, str]:
    """Loading (%) per branch id and a label of where it comes from.

    Parameters
    ----------
    site : Site
    source : {"latest", "predicted"}
        ``latest``: ``results/loading_pct`` at the last time step with values; ``predicted``: the highest
        ``expected_loading_pct`` of the latest overload prediction, with ``risk`` (highest probability of exceeding
        the limit).

    Returns
    -------
    (DataFrame, str)
        Columns ``loading_pct`` and ``risk`` (NaN where unknown) indexed by branch id; the label (with the time).
    """
    groups = site.groups()
    if source == "latest":
        if "results" not in groups:
            return pd.DataFrame(columns=["loading_pct", "risk"], dtype=float), "no power-flow results in the store"
        da = site.dataset("results")["loading_pct"].transpose("time", "branch")
        values = np.asarray(da.isel(time=slice(-96 * 7, None)).values, dtype=float)
        rows = np.flatnonzero(np.isfinite(values).any(axis=1))
        if not len(rows):
            return pd.DataFrame(columns=["loading_pct", "risk"], dtype=float), "no power-flow results in the last week"
        when = pd.Timestamp(da["time"].values[-values.shape[0] + rows[-1]])
        frame = pd.DataFrame({"loading_pct": values[rows[-1]], "risk": np.nan}, index=da["branch"].values.astype(str))
        return frame, f"loading at {when:%Y-%m-%d %H:%M} UTC (latest power flow)"
    if source == "predicted":
        if "overload" not in groups:
            return pd.DataFrame(columns=["loading_pct", "risk"], dtype=float), "no overload prediction in the store"
        ds = site.dataset("overload")
        expected = np.asarray(ds["expected_loading_pct"].transpose("time", "branch").values, dtype=float)
        risk = np.asarray(ds["p_exceed"].transpose("time", "branch").values, dtype=float)
        frame = pd.DataFrame(
            {"loading_pct": _nanmax(expected), "risk": _nanmax(risk)}, index=ds["branch"].values.astype(str)
        )
        return frame, f"highest expected loading of the prediction issued {ds.attrs.get('issued', '?')} UTC"
    raise ValueError(f"unknown loading source {source!r}; use 'latest' or 'predicted'")


def _nanmax(values: np.ndarray) -> np.ndarray:
    out = np.full(values.shape[1], np.nan)
    has = np.isfinite(values).any(axis=0)
    out[has] = np.nanmax(values[:, has], axis=0)
    return out


def _branch_frame(grid: Grid, pos: pd.DataFrame, loading: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for kind, a, b in (("line", "from_bus", "to_bus"), ("trafo", "hv_bus", "lv_bus")):
        table = grid.tables[kind]
        if len(table):
            parts.append(
                pd.DataFrame(
                    {
                        "branch_id": table.index.astype(str),
                        "kind": kind,
                        "name": table["name"].astype(str).to_numpy(),
                        "from_bus": table[a].astype(str).to_numpy(),
                        "to_bus": table[b].astype(str).to_numpy(),
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    start, end = pos.reindex(frame["from_bus"]).to_numpy(), pos.reindex(frame["to_bus"]).to_numpy()
    frame[["x0", "y0"]], frame[["x1", "y1"]] = start, end
    frame = frame.join(loading, on="branch_id")
    frame["loading_pct"] = frame["loading_pct"].astype(float)
    frame["risk"] = frame["risk"].astype(float)
    return frame


def _holoviews() -> Any:
    """HoloViews with its bokeh backend loaded (options need a loaded backend)."""
    import holoviews as hv
    import holoviews.plotting.bokeh

    return hv


def network_element(site: Site, source: str = "latest") -> hv.Overlay:
    """The HoloViews overlay of :func:`network_item` (see the module docstring)."""
    from holoviews import dim

    hv = _holoviews()

    grid = site.require_grid()
    pos, unit = bus_positions(grid)
    loading, label = branch_loading(site, source)
    branches = _branch_frame(grid, pos, loading)
    vdims = ["branch_id", "kind", "name", "from_bus", "to_bus", "loading_pct", "risk"]
    risk = [("risk", "@risk{0.00}")] if source == "predicted" else []
    lines = hv.Segments(branches, kdims=["x0", "y0", "x1", "y1"], vdims=vdims).opts(
        color=dim("loading_pct"),
        cmap=_CMAP,
        clim=LOADING_CLIM_PCT,
        colorbar=True,
        line_width=5,
        clabel="loading (%)",
        clipping_colors={"NaN": "#b0b0b0"},
        tools=["hover"],
        hover_tooltips=[
            ("branch", "@branch_id"), ("kind", "@kind"), ("name", "@name"), ("buses", "@from_bus → @to_bus"),
            ("loading (%)", "@loading_pct{0.0}"), *risk,
        ],
    )  # fmt: skip
    bus = grid.tables["bus"]
    buses = pd.DataFrame(
        {
            "x": pos["x"],
            "y": pos["y"],
            "bus_id": bus.index.astype(str),
            "bus_name": bus["name"].astype(str),
            "vn_kv": bus["vn_kv"].astype(float),
        }
    )
    points = hv.Points(buses, kdims=["x", "y"], vdims=["bus_id", "bus_name", "vn_kv"]).opts(
        size=7,
        color="white",
        line_color="#333333",
        tools=["hover"],
        hover_tooltips=[("bus", "@bus_id"), ("name", "@bus_name"), ("kV", "@vn_kv")],
    )
    trafos = branches[branches["kind"] == "trafo"].rename(columns={"branch_id": "trafo_id"})
    trafos = trafos.assign(x=(trafos["x0"] + trafos["x1"]) / 2, y=(trafos["y0"] + trafos["y1"]) / 2)
    marks = hv.Points(trafos, kdims=["x", "y"], vdims=["trafo_id", "name", "loading_pct", "risk"]).opts(
        marker="square",
        size=18,
        color=dim("loading_pct"),
        cmap=_CMAP,
        clim=LOADING_CLIM_PCT,
        line_color="black",
        line_width=2,
        clipping_colors={"NaN": "#b0b0b0"},
        tools=["hover", "tap"],
        hover_tooltips=[
            ("transformer", "@trafo_id"),
            ("name", "@name"),
            ("loading (%)", "@loading_pct{0.0}"),
            *risk,
            ("", "click to select"),
        ],
        nonselection_alpha=0.6,
        selection_line_color="#7b3294",
        selection_line_width=4,
    )
    xlabel, ylabel = {"m": ("east (m)", "north (m)"), "": ("x", "y")}.get(unit, ("", ""))
    title = f"{grid.name or 'grid'}: {label}"
    return (lines * points * marks).opts(
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
        responsive=True,
        height=460,
        show_grid=False,
        active_tools=["tap", "wheel_zoom"],
        xaxis=None if unit == "layout" else "bottom",
        yaxis=None if unit == "layout" else "left",
    )


def _wire_trafo_tap(figure: Any) -> None:
    """Tap only hits the transformer markers; a selection calls ``window.gridtwinSelectTrafo(id)``."""
    from bokeh.models import CustomJS, GlyphRenderer, TapTool

    renderers = [r for r in figure.select(type=GlyphRenderer) if "trafo_id" in getattr(r.data_source, "data", {})]
    for r in renderers:
        r.name = TRAFO_SOURCE_NAME
        r.data_source.selected.js_on_change("indices", CustomJS(args={"source": r.data_source}, code=_SELECT_JS))
    for tool in figure.select(type=TapTool):
        tool.renderers = renderers


def network_item(site: Site, source: str = "latest") -> dict[str, Any]:
    """Bokeh ``json_item`` of the network plot (see the module docstring); ``source``: ``latest`` or ``predicted``."""
    from bokeh.embed import json_item

    hv = _holoviews()
    with _RENDER_LOCK:
        figure = hv.render(network_element(site, source), backend="bokeh")
        _wire_trafo_tap(figure)
        return json_item(figure)


def _trafo_ids(grid: Grid) -> list[str]:
    return [str(t) for t in grid.tables["trafo"].index]


def _history(site: Site, trafo_id: str, days: float) -> pd.DataFrame:
    """Metering and virtual sensor (kW) of the last ``days`` before the store's end; NaN where not available."""
    from twin.timeseries.sensors import virtual_sensors
    from twin.timeseries.store import StoreError

    frame = pd.DataFrame(columns=["metering_kw", "virtual_kw"], dtype=float)
    if "sensors" not in site.groups():
        return frame
    try:
        series = virtual_sensors(site.store).series
    except StoreError:
        series = None
    if series is not None and trafo_id in series["trafo"].values.astype(str):
        s = series.sel(trafo=trafo_id)
        frame = pd.DataFrame(
            {"metering_kw": s["measured_p_kw"].values, "virtual_kw": s["virtual_p_kw"].values},
            index=pd.DatetimeIndex(s["time"].values),
        )
    else:
        sensors = site.dataset("sensors")
        if "p_kw" not in sensors or trafo_id not in sensors["sensor"].values.astype(str):
            return frame
        da = sensors["p_kw"].sel(sensor=trafo_id)
        frame = pd.DataFrame(
            {"metering_kw": da.values, "virtual_kw": np.nan}, index=pd.DatetimeIndex(da["time"].values)
        )
    return frame[frame.index > frame.index[-1] - pd.Timedelta(days=days)].astype(float)


def _forecast_band(site: Site, trafo_id: str) -> pd.DataFrame | None:
    """P10 and P90 (kW) of the load forecast summed over the loads the transformer supplies, and its expected value;
    None without a forecast.

    The centre line is the sum of each load's expected value (mean ≈ 0.3·P10 + 0.4·P50 + 0.3·P90, the quantile weights
    of :func:`twin.overload.quantile_weights`), not the sum of the P50s: means add up, medians do not — half of a
    household's 15-minute values are 0, so its P50 is ≈ 0 and the sum of 28 P50s sat far below the metering (0 kW
    against 10–40 kW on the demo). The band (Σ P10 … Σ P90) assumes the loads move together, so it is wider than the
    total's own P10–P90."""
    import xarray as xr

    from twin.overload import quantile_weights

    if "forecasts" not in site.groups():
        return None
    ds = site.dataset("forecasts")
    if "load_p_mw" not in ds:
        return None
    loads = [str(x) for x in site.graph.loads_below(trafo_id)]
    have = set(ds["load"].values.astype(str))
    loads = [x for x in loads if x in have]
    if not loads:
        return None
    total = ds["load_p_mw"].sel(load=loads).sum("load") * 1000.0
    quantiles = total["quantile"].values.astype(float)
    out = {}
    for name, q in (("p10_kw", 0.1), ("p50_kw", 0.5), ("p90_kw", 0.9)):
        i = int(np.argmin(np.abs(quantiles - q)))
        if abs(quantiles[i] - q) > 0.05:
            return None
        out[name] = total.isel(quantile=i).values
    weights = xr.DataArray(quantile_weights(quantiles), dims="quantile")
    out["expected_kw"] = (total * weights).sum("quantile").values
    return pd.DataFrame(out, index=pd.DatetimeIndex(total["time"].values))


def _loading_series(site: Site, trafo_id: str, start: pd.Timestamp | None) -> tuple[pd.Series, pd.Series, float]:
    """Past loading (power flow) since ``start``, the predicted expected loading (%) and the limit (%)."""
    groups = site.groups()
    past = pd.Series(dtype=float)
    if "results" in groups:
        res = site.dataset("results")
        if "loading_pct" in res and trafo_id in res["branch"].values.astype(str):
            da = res["loading_pct"].sel(branch=trafo_id)
            past = pd.Series(np.asarray(da.values, dtype=float), index=pd.DatetimeIndex(da["time"].values))
            past = past[past.index >= start] if start is not None else past.iloc[-96 * 2 :]
    predicted, limit = pd.Series(dtype=float), 100.0
    if "overload" in groups:
        ds = site.dataset("overload")
        limit = float(ds.attrs.get("limit_pct", 100.0))
        if trafo_id in ds["branch"].values.astype(str):
            da = ds["expected_loading_pct"].sel(branch=trafo_id)
            predicted = pd.Series(np.asarray(da.values, dtype=float), index=pd.DatetimeIndex(da["time"].values))
    return past, predicted, limit


def transformer_element(site: Site, trafo_id: str, days: float = 2.0) -> hv.Layout:
    """The HoloViews layout of :func:`transformer_item`: power (kW) on top, loading (%) below."""
    hv = _holoviews()

    grid = site.require_grid()
    if trafo_id not in grid.tables["trafo"].index:
        raise LookupError(f"no transformer {trafo_id!r} in grid {grid.name!r}; it has {_trafo_ids(grid)[:20]}")
    history = _history(site, trafo_id, days)
    band = _forecast_band(site, trafo_id)
    past, predicted, limit = _loading_series(site, trafo_id, history.index[0] if len(history) else None)
    if not len(history) and band is None and not len(past) and not len(predicted):
        raise LookupError(
            f"transformer {trafo_id!r} has no metering, forecast, power-flow result or prediction in the store; "
            "ingest its metering (sensors group) or run 'gridtwin forecast' / 'gridtwin predict'"
        )
    t_dim, p_dim = hv.Dimension("time", label="time (UTC)"), hv.Dimension("p_kw", label="active power", unit="kW")
    power = []
    if band is not None:
        power += [
            hv.Area(
                (band.index, band["p10_kw"], band["p90_kw"]),
                t_dim,
                [p_dim, "p90_kw"],
                label="load forecast P10–P90 (Σ per load)",
            ).opts(color="#9ecae1", alpha=0.5, line_alpha=0),
            hv.Curve(
                (band.index, band["expected_kw"]), t_dim, p_dim, label="load forecast, expected (Σ per load)"
            ).opts(color="#08519c", line_dash="dashed"),
        ]
    if len(history):
        power += [
            hv.Curve((history.index, history["metering_kw"]), t_dim, p_dim, label="metering").opts(color="black"),
            hv.Curve((history.index, history["virtual_kw"]), t_dim, p_dim, label="virtual sensor (Σ meters)").opts(
                color="#e6550d"
            ),
        ]
    l_dim = hv.Dimension("loading_pct", label="loading", unit="%")
    loading = []
    if len(past):
        loading.append(hv.Curve((past.index, past.values), t_dim, l_dim, label="power flow").opts(color="black"))
    if len(predicted):
        loading.append(hv.Curve((predicted.index, predicted.values), t_dim, l_dim, label="expected (prediction)")
                       .opts(color="#7b3294", line_dash="dashed"))  # fmt: skip
    loading.append(hv.HLine(limit, label=f"limit {limit:g} %").opts(color="#d7191c", line_dash="dotted"))
    common = {"responsive": True, "show_grid": True, "legend_position": "top_left", "tools": ["hover"]}
    name = grid.tables["trafo"].at[trafo_id, "name"]
    top = hv.Overlay(power or [hv.Curve([], t_dim, p_dim)]).opts(
        title=f"{trafo_id} ({name}): metering, virtual sensor, forecast",
        height=300,
        xlabel="time (UTC)",
        ylabel="active power (kW)",
        **common,
    )
    bottom = hv.Overlay(loading).opts(
        title=f"{trafo_id}: loading", height=220, xlabel="time (UTC)", ylabel="loading (%)", **common
    )
    return (top + bottom).cols(1).opts(shared_axes=True)


def transformer_item(site: Site, trafo_id: str, days: float = 2.0) -> dict[str, Any]:
    """Bokeh ``json_item`` of a transformer's time series (see the module docstring).

    Parameters
    ----------
    site : Site
    trafo_id : str
        A transformer id of the grid (404 otherwise, listing them).
    days : float
        Days of history before the store's last slot (the forecast follows it).
    """
    from bokeh.embed import json_item

    if not 0 < days <= 60:
        raise ValueError(f"days={days}: give 0 < days <= 60")
    hv = _holoviews()
    with _RENDER_LOCK:
        return json_item(hv.render(transformer_element(site, trafo_id, days), backend="bokeh"))
