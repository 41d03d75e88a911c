"""Schema of the ``load`` table: Loads (consumer convention: positive p_mw consumes)."""

from twin.schema.base import Column, TableSchema

__all__ = ["LOAD"]

LOAD = TableSchema(
    name="load",
    doc="Loads (consumer convention: positive p_mw consumes).",
    bus_columns=("bus",),
    columns=(
        Column("name", "str", doc="display name"),
        Column("bus", "str", required=True, doc="id of the bus"),
        Column("p_mw", "float", required=True, doc="active power, MW"),
        Column("q_mvar", "float", default=0.0, doc="reactive power, Mvar"),
        Column("scaling", "float", default=1.0, doc="multiplier on p_mw and q_mvar"),
        Column("const_z_p_percent", "float", default=0.0, doc="constant-impedance share of p, %"),
        Column("const_i_p_percent", "float", default=0.0, doc="constant-current share of p, %"),
        Column("const_z_q_percent", "float", default=0.0, doc="constant-impedance share of q, %"),
        Column("const_i_q_percent", "float", default=0.0, doc="constant-current share of q, %"),
        Column("controllable", "bool", default=False, doc="may be curtailed by control plans"),
        Column("in_service", "bool", default=True, doc="whether the load is connected"),
    ),
)
