"""JSON-ready summaries of power-flow results (extremes with where they sit, most loaded branches), and the
standalone offline HTML page the reports are written as (:func:`write_offline_page`).

Summaries are used by the CLI (tables, ``--json``) and by scripts; values are plain floats/strings, NaN as None.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

    from twin.grid import Grid

__all__ = [
    "locate_extreme",
    "report_path",
    "summarize_grid",
    "summarize_pf",
    "summarize_pf_ts",
    "to_float",
    "to_label",
    "top_loaded_branches",
    "write_offline_page",
]

# Bokeh adds the ``__javascript__`` files of every imported model class to a page, even inline; HoloViews imports
# Panel, whose ReactiveESM model names a server-relative file (es-module-shims) that an offline page cannot load and
# that no model of our reports uses. Such tags are removed; Bokeh's own code is inlined.
_FILE_SCRIPT = re.compile(r'<script[^>]*\bsrc="[^"]*"[^>]*>\s*</script>\s*')


def report_path(path: str | Path) -> Path:
    """``path`` as a Path, or FileNotFoundError (saying what to do) when its folder does not exist."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"report {path}: folder {path.parent} does not exist; create it or pick another path")
    return path


def write_offline_page(path: str | Path, intro_html: str, sections: list[tuple[str, Any]], title: str) -> Path:
    """Write one standalone HTML page that needs no network: an introduction, then a heading and a Bokeh model per
    section (BokehJS inlined). Returns the path (replaced when present)."""
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import Div
    from bokeh.resources import INLINE

    path = report_path(path)
    models: list[Any] = [Div(text=intro_html, width=1000)]
    for heading, model in sections:
        models += [Div(text=f"<h2>{html.escape(heading)}</h2>"), model]
    page = file_html(column(*models), resources=INLINE, title=title)
    path.write_text(_FILE_SCRIPT.sub("", page), encoding="utf-8")
    return path


def summarize_grid(grid: Grid) -> dict[str, Any]:
    """Return the grid name and its number of rows per component type."""
    return {"grid": grid.name, "size": {str(c): int(n) for c, n in grid.summary().items()}}


def summarize_pf(grid: Grid, ds: xr.Dataset, top: int) -> dict[str, Any]:
    """Return the JSON-ready summary of one power flow."""
    vm_min, at_min = locate_extreme(ds["vm_pu"], np.nanargmin)
    vm_max, at_max = locate_extreme(ds["vm_pu"], np.nanargmax)
    return {
        **summarize_grid(grid),
        "converged": bool(ds["converged"]),
        "iterations": int(ds["iterations"]),
        "compile_time_s": to_float(ds.attrs.get("compile_time_s")),
        "solve_time_s": to_float(ds.attrs.get("solve_time_s")),
        "vm_min_pu": vm_min,
        "vm_min_bus": at_min.get("bus"),
        "vm_max_pu": vm_max,
        "vm_max_bus": at_max.get("bus"),
        "de_energised_buses": int(np.isnan(ds["vm_pu"].values).sum()),
        "p_loss_mw": to_float(ds["p_loss_mw"]),
        "q_loss_mvar": to_float(ds["q_loss_mvar"]),
        "top_loaded": top_loaded_branches(ds, top),
    }


def summarize_pf_ts(grid: Grid, ds: xr.Dataset, top: int, compile_s: float, solve_s: float) -> dict[str, Any]:
    """Return the JSON-ready summary of a time series of power flows."""
    steps = int(ds.sizes["time"])
    converged = ds["converged"].values.astype(bool)
    times = ds["time"].values
    vm_min, at_min = locate_extreme(ds["vm_pu"], np.nanargmin)
    vm_max, at_max = locate_extreme(ds["vm_pu"], np.nanargmax)
    return {
        **summarize_grid(grid),
        "steps": steps,
        "start": to_label(times[0]),
        "end": to_label(times[-1]),
        "compile_time_s": compile_s,
        "solve_time_s": solve_s,
        "steps_per_s": steps / solve_s if solve_s > 0 else None,
        "not_converged": int((~converged).sum()),
        "not_converged_times": [to_label(t) for t in times[~converged][:10]],
        "iterations_max": int(ds["iterations"].max()),
        "vm_min_pu": vm_min,
        "vm_min_bus": at_min.get("bus"),
        "vm_min_time": at_min.get("time"),
        "vm_max_pu": vm_max,
        "vm_max_bus": at_max.get("bus"),
        "vm_max_time": at_max.get("time"),
        "p_loss_mw_mean": to_float(ds["p_loss_mw"].mean()),
        "top_loaded": top_loaded_branches(ds, top),
    }


def locate_extreme(da: xr.DataArray, arg: Callable[[np.ndarray], Any]) -> tuple[float | None, dict[str, str]]:
    """Return the extreme value of ``da`` (ignoring NaN) and the coordinate labels where it sits."""
    values = da.values
    if values.size == 0 or np.isnan(values).all():
        return None, {}
    pos = np.unravel_index(int(arg(values)), values.shape)
    where = {str(dim): to_label(da[dim].values[p]) for dim, p in zip(da.dims, pos, strict=True)}
    return float(values[pos]), where


def top_loaded_branches(ds: xr.Dataset, top: int) -> list[dict[str, Any]]:
    """Return the ``top`` branches by loading (their peak over time for a series), finite values only."""
    has_time = "time" in ds["loading_pct"].dims
    dims = ("time", "branch") if has_time else ("branch",)
    loading = np.atleast_2d(ds["loading_pct"].transpose(*dims).values)
    score = np.where(np.isfinite(loading), loading, -np.inf)
    t_pos = score.argmax(axis=0)
    cols = np.arange(loading.shape[1])
    peak = score[t_pos, cols]
    order = [int(b) for b in np.argsort(-peak, kind="stable")[:top] if np.isfinite(peak[b])]

    def read(name: str, b: int) -> float | None:
        return to_float(np.atleast_2d(ds[name].transpose(*dims).values)[t_pos[b], b])

    rows = []
    for b in order:
        row = {
            "branch": str(ds["branch"].values[b]),
            "kind": str(ds["branch_kind"].values[b]) if "branch_kind" in ds.coords else "",
            "loading_pct": float(peak[b]),
            "i_ka": read("i_ka", b),
            "p_from_mw": read("p_from_mw", b),
        }
        if has_time:
            row["time"] = to_label(ds["time"].values[t_pos[b]])
        rows.append(row)
    return rows


def to_float(value: Any) -> float | None:
    """Return ``value`` as a float, ``None`` when missing or not finite (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def to_label(value: Any) -> str:
    """Return a coordinate label as text (ISO 8601 for times)."""
    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value, unit="s"))
    return str(value)
