"""Schema of the ``ext_grid`` table: External grid connections (slack buses)."""

from twin.schema.base import Column, TableSchema

__all__ = ["EXT_GRID"]

EXT_GRID = TableSchema(
    name="ext_grid",
    doc="External grid connections (slack buses).",
    bus_columns=("bus",),
    columns=(
        Column("name", "str", doc="display name"),
        Column("bus", "str", required=True, doc="id of the bus"),
        Column("vm_pu", "float", default=1.0, doc="voltage magnitude set-point, pu"),
        Column("va_degree", "float", default=0.0, doc="voltage angle set-point, degrees"),
        Column("in_service", "bool", default=True, doc="whether the connection is in service"),
    ),
)
