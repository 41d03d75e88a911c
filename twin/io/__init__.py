"""Importers: one module per source, each ``from_<source>(...) -> Grid``; :func:`load` picks one."""

from twin.io.gridfile import read_grid, write_grid
from twin.io.load import load
from twin.io.matpower import from_matpower
from twin.io.pandapower import from_pandapower, to_pandapower
from twin.io.simbench import from_simbench, read_simbench_profiles

__all__ = [
    "from_matpower",
    "from_pandapower",
    "from_simbench",
    "load",
    "read_grid",
    "read_simbench_profiles",
    "to_pandapower",
    "write_grid",
]
