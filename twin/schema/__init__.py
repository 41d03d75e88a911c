"""Component table schemas: one module per component type."""

from twin.schema.base import Column, TableSchema
from twin.schema.bus import BUS
from twin.schema.ext_grid import EXT_GRID
from twin.schema.gen import GEN
from twin.schema.line import LINE
from twin.schema.load import LOAD
from twin.schema.sgen import SGEN
from twin.schema.shunt import SHUNT
from twin.schema.storage import STORAGE
from twin.schema.switch import SWITCH
from twin.schema.trafo import TRAFO
from twin.schema.trafo3w import TRAFO3W

SCHEMAS: dict[str, TableSchema] = {
    "bus": BUS,
    "line": LINE,
    "trafo": TRAFO,
    "trafo3w": TRAFO3W,
    "switch": SWITCH,
    "load": LOAD,
    "sgen": SGEN,
    "gen": GEN,
    "ext_grid": EXT_GRID,
    "shunt": SHUNT,
    "storage": STORAGE,
}

COMPONENTS: tuple[str, ...] = tuple(SCHEMAS)

__all__ = [
    "BUS",
    "COMPONENTS",
    "EXT_GRID",
    "GEN",
    "LINE",
    "LOAD",
    "SCHEMAS",
    "SGEN",
    "SHUNT",
    "STORAGE",
    "SWITCH",
    "TRAFO",
    "TRAFO3W",
    "Column",
    "TableSchema",
]
