"""CGMES import speed: gridtwin's ``cim.load`` side by side with pandapower's CIM converter and PowSyBl.

Each tool reads the same zip into its own network model; times are medians of repeated imports after
one warm-up import. The cases are two ENTSO-E conformity sets (``../shared/cgmes/entsoe``) and, when
pypowsybl is installed, PEGASE 9241 as written by PowSyBl (:func:`benchmarks.cim_export.build_powsybl_cgmes`,
built once and cached outside the repository): the largest CGMES model the suite has.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.cim_export import build_powsybl_cgmes, cached_cgmes_path
from benchmarks.timing import timed

__all__ = ["ENTSOE_CASES", "POWSYBL_CASES", "CimCase", "cim_cases", "entsoe_folder", "time_imports"]

#: ENTSO-E conformity sets of the suite: (name, zip file in :func:`entsoe_folder`).
ENTSOE_CASES = (("RealGrid", "entsoe_realgrid.zip"), ("SmallGrid", "entsoe_smallgrid_bc.zip"))
#: Models that PowSyBl writes from pandapower cases: (name, ``pandapower.networks`` case).
POWSYBL_CASES = (("PEGASE 9241 (PowSyBl export)", "case9241pegase"),)


class CimCase(NamedTuple):
    """One case of the suite: its name, its zip and, when it cannot run, why (``""`` otherwise)."""

    name: str
    path: Path
    skipped: str


def entsoe_folder() -> Path:
    """``../shared/cgmes/entsoe`` next to the repository."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "cgmes" / "entsoe"


def cim_cases() -> list[CimCase]:
    """Every case of the suite, building (once, then cached) the PowSyBl exports when pypowsybl is installed.

    A PowSyBl case is skipped (``"skipped: pypowsybl not installed"``) without pypowsybl, and reported
    as ``"failed: …"`` when its build fails; the ENTSO-E cases are never skipped here (a missing zip
    is the caller's ``not found``).
    """
    cases = [CimCase(name, entsoe_folder() / file, "") for name, file in ENTSOE_CASES]
    has_powsybl = importlib.util.find_spec("pypowsybl") is not None
    for name, case in POWSYBL_CASES:
        path = cached_cgmes_path(case)
        if not has_powsybl:
            cases.append(CimCase(name, path, "skipped: pypowsybl not installed"))
            continue
        if not path.exists():
            print(f"[bench] writing {case} as CGMES with PowSyBl (once; cached in {path.parent})", file=sys.stderr)
        try:
            cases.append(CimCase(name, build_powsybl_cgmes(case), ""))
        except Exception as err:  # a failed build is a result of the benchmark, reported in its row
            cases.append(CimCase(name, path, f"failed: building {case}: {type(err).__name__}: {str(err)[:200]}"))
    return cases


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
