"""gridtwin's digital twin: the Grid, its importers, and (in later modules) graphs and time series."""

from twin.grid import Grid
from twin.io import from_matpower, from_pandapower, from_simbench, load, read_simbench_profiles, to_pandapower

__all__ = [
    "Grid",
    "from_matpower",
    "from_pandapower",
    "from_simbench",
    "load",
    "read_simbench_profiles",
    "to_pandapower",
]
