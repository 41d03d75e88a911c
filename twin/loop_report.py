"""Standalone HTML report of a closed-loop run (:func:`twin.loop.run_loop`): HoloViews plots rendered with Bokeh.

One self-contained file (Bokeh's JavaScript inlined, no network access needed to open it) with: the loading of each
protected asset over the issue day (forecast range of the members, the plan's member before and after the plan,
the actual day before and after), the plan's commands, the curtailment per device over time and in energy, the
dispatch status per command, the asset table, seconds per stage and the run's notes.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import holoviews as hv
import pandas as pd

if TYPE_CHECKING:
    from twin.loop import LoopResult

__all__ = ["write_report"]

_CASE_STYLE = {
    "forecast_before": ("forecast (plan member), no plan", "#1f77b4", "dashed"),
    "forecast_after": ("forecast (plan member), with plan", "#1f77b4", "solid"),
    "actual_before": ("actual, no plan", "#d62728", "dashed"),
    "actual_after": ("actual, with plan", "#d62728", "solid"),
}


def _loading_plot(result: LoopResult, asset: str) -> hv.Overlay:
    """Loading of one asset over the issue day: members' range, the four cases, 100 % and the plan's limit."""
    members = result.forecast_loading_pct.sel(branch=asset)
    times = members["time"].to_index()
    member_dim = members.dims[0]
    band = hv.Area(
        (times, members.min(member_dim).to_numpy(), members.max(member_dim).to_numpy()),
        kdims=["time"],
        vdims=["loading_pct", "loading_hi_pct"],
        label="forecast range (P10–P90 members)",
    ).opts(alpha=0.25, color="#1f77b4", line_alpha=0)
    curves = [
        hv.Curve(
            (result.loading_pct["time"].to_index(), result.loading_pct.sel(case=case, branch=asset).to_numpy()),
            "time",
            "loading_pct",
            label=label,
        ).opts(color=color, line_dash=dash, line_width=2)
        for case, (label, color, dash) in _CASE_STYLE.items()
    ]
    limits = [
        hv.HLine(100.0).opts(color="black", line_width=1),
        hv.HLine(result.limit_pct).opts(color="grey", line_dash="dotted", line_width=1),
    ]
    return hv.Overlay([band, *curves, *limits]).opts(
        title=f"Loading of {asset} on {result.issued.date()} (%, limit 100 %, plan limit {result.limit_pct:g} %)",
        width=1000,
        height=400,
        legend_position="top_left",
        ylabel="loading (%)",
        xlabel="time (UTC, interval start)",
    )


def _curtailment_plots(result: LoopResult) -> list[Any]:
    """Curtailment per device over time (kW, steps) and in energy (kWh); empty when nothing is curtailed."""
    cur = result.plan.curtailment_mw
    element = next(d for d in cur.dims if d != "time")
    kw = cur.to_pandas() * 1000.0
    used = kw.columns[(kw > 0).any().to_numpy()]
    if not len(used):
        return []
    curves = hv.NdOverlay(
        {
            str(e): hv.Curve((kw.index, kw[e].to_numpy()), "time", "curtailment_kw").opts(interpolation="steps-post")
            for e in used
        },
        kdims=[element],
    ).opts(title="Curtailment per device (kW)", width=1000, height=300, legend_position="right")
    step_h = (kw.index[1] - kw.index[0]) / pd.Timedelta("1h") if len(kw.index) > 1 else 0.25
    energy = pd.DataFrame({"device": used.astype(str), "curtailed_kwh": kw[used].sum().to_numpy() * step_h})
    bars = hv.Bars(energy, "device", "curtailed_kwh").opts(
        title="Curtailed energy per device (kWh)", width=1000, height=250, xrotation=45
    )
    return [curves, bars]


def _table(frame: pd.DataFrame, title: str, height: int = 250) -> hv.Table:
    """A HoloViews table with times and numbers as readable text."""
    shown = frame.reset_index() if frame.index.name else frame.copy()
    for col in shown.columns:
        values = shown[col]
        if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
            shown[col] = values.astype(str)
        elif pd.api.types.is_float_dtype(values):
            shown[col] = values.round(3)
    shown.columns = [str(c) for c in shown.columns]
    return hv.Table(shown).opts(title=title, width=1000, height=height)


def _text(result: LoopResult) -> str:
    counts = result.execution.counts
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) or "<li>none</li>"
    return (
        f"<h1>gridtwin closed loop: {html.escape(str(result.issued.date()))}</h1>"
        f"<p>Forecast issued {html.escape(str(result.issued))} (UTC) from {result.history_days} days of meter data "
        f"and telemetry; {len(result.ranking)} assets at risk. Plan on the {html.escape(result.member)} member: "
        f"{len(result.plan.commands)} commands, status {html.escape(result.plan.status)}. Dispatch via "
        f"{html.escape(result.broker)}: {html.escape(result.execution.state)} "
        f"({counts['applied']} applied, {counts['rejected']} rejected, {counts['failed']} failed).</p>"
        f"<h3>Notes</h3><ul>{notes}</ul>"
    )


def _sections(result: LoopResult) -> list[tuple[str, Any]]:
    """(heading, HoloViews object) in report order."""
    parts: list[tuple[str, Any]] = [("Loading", _loading_plot(result, str(a))) for a in result.assets.index]
    parts += [("Assets", _table(result.assets, "Protected assets: maximum loading (%) and hours above 100 %", 150))]
    commands = result.plan.commands.drop(columns=["action"], errors="ignore")
    parts += [("Plan", _table(commands, f"Plan: {len(commands)} commands (kW curtailed over [start, end))"))]
    parts += [("Curtailment", p) for p in _curtailment_plots(result)]
    status = result.execution.to_frame()[["command_id", "element", "gateway", "kw", "status", "attempts", "latency_s"]]
    parts += [("Dispatch", _table(status, f"Dispatch status via {result.broker}"))]
    stages = {k: v for k, v in result.seconds.items() if k != "total"}
    seconds = pd.DataFrame({"stage": list(stages), "seconds": list(stages.values())})
    parts += [
        (
            "Timings",
            hv.Bars(seconds, "stage", "seconds").opts(
                title=f"Seconds per stage ({sum(stages.values()):.1f} s in all, this report excluded)",
                width=1000,
                height=300,
                xrotation=30,
            ),
        )
    ]
    return parts


def write_report(result: LoopResult, path: str | Path) -> Path:
    """Write the loop's report as one standalone, offline HTML file and return its path.

    Parameters
    ----------
    result : LoopResult
        What :func:`twin.loop.run_loop` returned (``report`` may still be None).
    path : str or Path
        The HTML file to write (its folder must exist); replaced when present.

    Returns
    -------
    Path
    """
    from twin.report import report_path, write_offline_page

    path = report_path(path)
    hv.extension("bokeh", logo=False)
    sections = [(heading, hv.render(obj, backend="bokeh")) for heading, obj in _sections(result)]
    return write_offline_page(path, _text(result), sections, f"gridtwin loop {result.issued.date()}")
