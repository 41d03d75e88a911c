"""Schema of the ``sgen`` table: Static generators (PQ injections, generator convention: positive p_mw feeds in)."""

from twin.schema.base import Column, TableSchema

__all__ = ["SGEN"]

SGEN = TableSchema(
    name="sgen",
    doc="Static generators (PQ injections, generator convention: positive p_mw feeds in).",
    bus_columns=("bus",),
    columns=(
        Column("name", "str", doc="display name"),
        Column("bus", "str", required=True, doc="id of the bus"),
        Column("p_mw", "float", required=True, doc="active power fed in, MW"),
        Column("q_mvar", "float", default=0.0, doc="reactive power fed in, Mvar"),
        Column("scaling", "float", default=1.0, doc="multiplier on p_mw and q_mvar"),
        Column("type", "str", doc="technology (PV, WP, ...)"),
        Column("controllable", "bool", default=False, doc="may be curtailed by control plans"),
        Column("in_service", "bool", default=True, doc="whether the unit is connected"),
    ),
)
