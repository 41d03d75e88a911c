"""gridtwin's digital twin: the Grid, its importers, and (in later modules) graphs and time series."""

from twin.alarms import AlarmBook, read_rules
from twin.comm import CommLayer, data_usage, generate_comm, read_comm, sims_over_plan, write_comm
from twin.graph import MultiLayerGraph
from twin.grid import Grid
from twin.io import from_matpower, from_pandapower, from_simbench, load, read_simbench_profiles, to_pandapower

__all__ = [
    "AlarmBook",
    "CommLayer",
    "Grid",
    "MultiLayerGraph",
    "data_usage",
    "from_matpower",
    "from_pandapower",
    "from_simbench",
    "generate_comm",
    "load",
    "read_comm",
    "read_rules",
    "read_simbench_profiles",
    "sims_over_plan",
    "to_pandapower",
    "write_comm",
]
