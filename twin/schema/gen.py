"""Schema of the ``gen`` table: Voltage-controlling generators (PV buses)."""

from twin.schema.base import Column, TableSchema

__all__ = ["GEN"]

GEN = TableSchema(
    name="gen",
    doc="Voltage-controlling generators (PV buses).",
    bus_columns=("bus",),
    columns=(
        Column("name", "str", doc="display name"),
        Column("bus", "str", required=True, doc="id of the bus"),
        Column("p_mw", "float", required=True, doc="active power set-point, MW"),
        Column("vm_pu", "float", default=1.0, doc="voltage set-point, pu"),
        Column("scaling", "float", default=1.0, doc="multiplier on p_mw"),
        Column("slack", "bool", default=False, doc="acts as reference (slack) bus"),
        Column("min_q_mvar", "float", doc="reactive lower limit, Mvar"),
        Column("max_q_mvar", "float", doc="reactive upper limit, Mvar"),
        Column("controllable", "bool", default=False, doc="may be redispatched"),
        Column("in_service", "bool", default=True, doc="whether the unit is connected"),
    ),
)
