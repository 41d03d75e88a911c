"""Checks of a Grid's values that the schemas cannot express: every problem names table, id and column.

:func:`find_problems` lists them; :func:`check_grid` raises one ``ValueError`` with the first ten.
The compiler calls :func:`check_grid`, so a power flow never starts from values that would give
infinities or a silently wrong model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from twin.schema import SCHEMAS

if TYPE_CHECKING:
    from twin.grid import Grid

__all__ = ["check_grid", "find_problems"]


def _rows(df: pd.DataFrame, mask: np.ndarray, table: str, column: str, what: str) -> list[str]:
    ids = df.index[mask].tolist()
    if not ids:
        return []
    more = f" (and {len(ids) - 5} more)" if len(ids) > 5 else ""
    return [f"{table} {ids[:5]}{more}: {column} {what}"]


def find_problems(grid: Grid) -> list[str]:
    """Return human-readable problems of in-service elements (empty when the grid is fine)."""
    problems: list[str] = []
    bus = grid.bus
    problems += _rows(bus, ~(bus["vn_kv"].to_numpy(float) > 0), "bus", "vn_kv", "must be > 0 kV")
    for table, schema in SCHEMAS.items():
        df = grid[table]
        if not len(df):
            continue
        on = df["in_service"].to_numpy(bool) if "in_service" in df else df["closed"].to_numpy(bool)
        for col in schema.columns:
            if col.required and col.dtype == "float":
                vals = df[col.name].to_numpy(float)
                problems += _rows(df, on & np.isnan(vals), table, col.name, "is missing (NaN)")
    line = grid.line
    if len(line):
        on = line["in_service"].to_numpy(bool)
        z = np.hypot(line["r_ohm_per_km"].to_numpy(float), line["x_ohm_per_km"].to_numpy(float))
        problems += _rows(
            line,
            on & (z == 0),
            "line",
            "r_ohm_per_km/x_ohm_per_km",
            "are both 0: a zero-impedance line; model it as a closed bus-bus switch",
        )
        problems += _rows(line, on & ~(line["length_km"].to_numpy(float) > 0), "line", "length_km", "must be > 0")
        problems += _rows(line, on & (line["max_i_ka"].to_numpy(float) <= 0), "line", "max_i_ka", "must be > 0 kA")
    for table, vk, vkr, sn in (
        ("trafo", ["vk_percent"], ["vkr_percent"], ["sn_mva"]),
        (
            "trafo3w",
            ["vk_hv_percent", "vk_mv_percent", "vk_lv_percent"],
            ["vkr_hv_percent", "vkr_mv_percent", "vkr_lv_percent"],
            ["sn_hv_mva", "sn_mv_mva", "sn_lv_mva"],
        ),
    ):
        df = grid[table]
        if not len(df):
            continue
        on = df["in_service"].to_numpy(bool)
        for vk_c, vkr_c, sn_c in zip(vk, vkr, sn, strict=True):
            v, r, s = (df[c].to_numpy(float) for c in (vk_c, vkr_c, sn_c))
            problems += _rows(df, on & ~(s > 0), table, sn_c, "must be > 0 MVA")
            # negative: a capacitive short-circuit reactance (star legs of three-winding units), as pandapower
            problems += _rows(df, on & ~(np.isfinite(v) & (v != 0)), table, vk_c, "must be non-zero and finite %")
            problems += _rows(df, on & (np.abs(r) > np.abs(v)), table, vkr_c, f"exceeds {vk_c} (|vkr| <= |vk|)")
    return problems


def check_grid(grid: Grid) -> None:
    """Raise ``ValueError`` listing the grid's problems (see :func:`find_problems`)."""
    problems = find_problems(grid)
    if problems:
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ValueError(f"grid {grid.name!r} has invalid values:\n  " + "\n  ".join(problems[:10]) + more)
