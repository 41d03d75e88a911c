"""Schema of the ``bus`` table: Buses (nodes) of the physical grid."""

from twin.schema.base import Column, TableSchema

__all__ = ["BUS"]

BUS = TableSchema(
    name="bus",
    doc="Buses (nodes) of the physical grid.",
    bus_columns=(),
    columns=(
        Column("name", "str", doc="display name"),
        Column("vn_kv", "float", required=True, doc="nominal line-to-line voltage, kV"),
        Column("in_service", "bool", default=True, doc="whether the bus is energisable"),
        Column("zone", "str", doc="area / zone label"),
        Column("x", "float", doc="geographic x (longitude) or plot coordinate"),
        Column("y", "float", doc="geographic y (latitude) or plot coordinate"),
    ),
)
