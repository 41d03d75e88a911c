"""Schema of the ``shunt`` table: Shunt elements (consumer convention at rated voltage)."""

from twin.schema.base import Column, TableSchema

__all__ = ["SHUNT"]

SHUNT = TableSchema(
    name="shunt",
    doc="Shunt elements (consumer convention at rated voltage).",
    bus_columns=("bus",),
    columns=(
        Column("name", "str", doc="display name"),
        Column("bus", "str", required=True, doc="id of the bus"),
        Column("p_mw", "float", default=0.0, doc="active power consumed at vn_kv, MW per step"),
        Column("q_mvar", "float", required=True, doc="reactive power consumed at vn_kv, Mvar per step"),
        Column("vn_kv", "float", doc="rated voltage, kV (bus vn_kv when missing)"),
        Column("step", "int", default=1, doc="number of switched-in steps"),
        Column("in_service", "bool", default=True, doc="whether the shunt is connected"),
    ),
)
