"""CGMES import speed: gridtwin's ``cim.load`` side by side with pandapower's CIM converter and PowSyBl.

Each tool reads the same zip (ENTSO-E conformity sets in ``../shared/cgmes/entsoe``) into its own
network model; times are medians of repeated imports after one warm-up import.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.timing import timed

__all__ = ["CIM_CASES", "entsoe_folder", "time_imports"]

#: Conformity sets of the suite: (name, zip file).
CIM_CASES = (("RealGrid", "entsoe_realgrid.zip"), ("SmallGrid", "entsoe_smallgrid_bc.zip"))


def entsoe_folder() -> Path:
    """``../shared/cgmes/entsoe`` next to the repository."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "cgmes" / "entsoe"


def _quiet(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.CRITICAL)
            try:
                return fn()
            finally:
                logging.disable(logging.NOTSET)

    return run


def time_imports(path: Path, repeats: int) -> list[dict[str, Any]]:
    """Import ``path`` with every available tool; one dict per tool (time_s, times_s, n_bus, status)."""
    from pandapower.converter.cim.cim2pp.from_cim import from_cim

    import cim

    tools: list[tuple[str, str, Callable[[], int]]] = [
        ("gridtwin", "cim.load (lxml reader, cimpy classes)", lambda: cim.load(path).n_bus),
        ("pandapower", "converter.cim.cim2pp.from_cim", lambda: len(from_cim(file_list=[str(path)]).bus)),
    ]
    if importlib.util.find_spec("pypowsybl") is not None:
        import pypowsybl as pps

        tools.append(
            ("pypowsybl", "network.load (CGMES importer)", lambda: len(pps.network.load(str(path)).get_buses()))
        )
    rows = []
    for tool, setting, fn in tools:
        row: dict[str, Any] = {"tool": tool, "setting": setting, "status": "ok"}
        try:
            row["time_s"], row["times_s"], row["n_bus"] = timed(_quiet(fn), repeats)
        except Exception as err:  # a tool's failure is a result of the benchmark
            row["status"] = f"failed: {type(err).__name__}: {str(err)[:200]}"
        rows.append(row)
    if importlib.util.find_spec("pypowsybl") is None:
        rows.append({"tool": "pypowsybl", "setting": "network.load", "status": "not installed"})
    return rows
