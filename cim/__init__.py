"""CGMES in: cimpy import (CGMES 2.4.15) → :class:`twin.Grid` with CIM mRIDs as ids.

``load(paths)`` reads and maps in one call; :func:`read_cgmes` and :func:`to_grid` are the two
steps. See ``docs/design/cim.md``.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

from cim.export_sv import export_sv, terminal_flows
from cim.mapping import CimImportWarning, CimMappingError, to_grid
from cim.mapping.branches import Magnetising
from cim.mapping.nodes import BusSource
from cim.read import CgmesReadError, CimModel, read_cgmes

if TYPE_CHECKING:
    from twin.grid import Grid

__all__ = [
    "CgmesReadError",
    "CimImportWarning",
    "CimMappingError",
    "CimModel",
    "export_sv",
    "load",
    "read_cgmes",
    "terminal_flows",
    "to_grid",
]


def load(
    paths: str | Path | list[str | Path] | tuple[str | Path, ...],
    *,
    name: str | None = None,
    f_hz: float = 50.0,
    sn_mva: float = 100.0,
    buses: BusSource = "auto",
    magnetising: Magnetising = "end1",
) -> Grid:
    """Read CGMES 2.4.15 files (list, folder or zip) and return a Grid with CIM mRIDs as ids.

    Parameters
    ----------
    paths : path or list of paths
        The profiles of one model (EQ, TP, SSH, SV, boundary sets).
    name : str, optional
        Grid name; the first file's stem by default.
    f_hz : float
        Nominal frequency, Hz.
    sn_mva : float
        System base power, MVA.
    buses : {"auto", "topological", "connectivity"}
        Buses from TopologicalNodes (``auto``: when the files have a TP profile) or from
        ConnectivityNodes with switches as bus-bus switch rows (node-breaker detail).
    magnetising : {"end1", "middle"}
        Where two-winding transformers' magnetising admittance sits: at the terminal of end 1
        (CGMES; PowSyBl) or in the middle of pandapower's T model (NEPLAN); see ``docs/design/cim.md``.

    Returns
    -------
    Grid
        ``grid.meta["sv"]`` holds the file's own SvVoltage solution, ``grid.meta["cim_report"]``
        the import report (counts per class, imported, skipped and why).

    Raises
    ------
    CgmesReadError
        A file cannot be read or parsed, or mixes CGMES 2.4.15 and 3.0 files (names the file and mRID).
    CimMappingError
        The content cannot be mapped (names the mRID): a Terminal pointing to a missing node, an
        element without BaseVoltage, a zero-impedance branch.
    """
    # The import allocates ~10^5 long-lived objects; the cyclic garbage collector would scan them again and
    # again (70 % of RealGrid's mapping time), and none of them form cycles worth collecting mid-import.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        model = read_cgmes(paths)
        if name is None:
            eq = [f for f in model.files if "Equipment" in model.profiles.get(f, "")]
            name = Path((eq or model.files)[0].split("!")[-1]).stem
        return to_grid(model, name=name, f_hz=f_hz, sn_mva=sn_mva, buses=buses, magnetising=magnetising)
    finally:
        if gc_was_enabled:
            gc.enable()
