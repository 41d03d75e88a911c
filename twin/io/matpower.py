"""Import MATPOWER case files (``.m`` text or ``.mat``) into a :class:`twin.Grid`.

Parsing and the MATPOWER → pandapower element mapping are pandapower's converter
(``pandapower.converter.from_mpc``, which reads ``.m`` files through ``matpowercaseframes``);
gridtwin then imports that net, so ids follow the pandapower convention (bus ids are the
pandapower bus indices, i.e. MATPOWER bus numbers minus one after pandapower's renumbering,
with the original number kept in the bus ``name`` column).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from twin.grid import Grid
from twin.io.pandapower import from_pandapower

__all__ = ["from_matpower"]


def from_matpower(path: str | Path, f_hz: float = 50.0) -> Grid:
    """Read a MATPOWER case file.

    Parameters
    ----------
    path : str or Path
        A ``.m`` case file (``function mpc = caseX``) or a ``.mat`` file holding ``mpc``.
    f_hz : float
        Nominal frequency, Hz (MATPOWER files do not carry it).

    Returns
    -------
    Grid

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be parsed as a MATPOWER case; the message names the file.
    """
    from pandapower.converter.matpower.from_mpc import from_mpc

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MATPOWER case file {path} does not exist")
    if path.suffix not in (".m", ".mat"):
        raise ValueError(f"{path}: expected a MATPOWER .m or .mat file, got {path.suffix!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = from_mpc(str(path), f_hz=f_hz)
    except Exception as err:
        raise ValueError(f"{path}: could not read as a MATPOWER case ({type(err).__name__}: {err})") from err
    grid = from_pandapower(net, name=path.stem)
    grid.meta.update({"source": "matpower", "path": str(path)})
    return grid
