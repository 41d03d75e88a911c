"""Schema of the ``storage`` table: Storage units (consumer convention: positive p_mw charges)."""

from twin.schema.base import Column, TableSchema

__all__ = ["STORAGE"]

STORAGE = TableSchema(
    name="storage",
    doc="Storage units (consumer convention: positive p_mw charges).",
    bus_columns=("bus",),
    columns=(
        Column("name", "str", doc="display name"),
        Column("bus", "str", required=True, doc="id of the bus"),
        Column("p_mw", "float", required=True, doc="active power, MW (positive = charging)"),
        Column("q_mvar", "float", default=0.0, doc="reactive power, Mvar"),
        Column("scaling", "float", default=1.0, doc="multiplier on p_mw and q_mvar"),
        Column("max_e_mwh", "float", doc="energy capacity, MWh"),
        Column("controllable", "bool", default=False, doc="may be rescheduled by control plans"),
        Column("in_service", "bool", default=True, doc="whether the unit is connected"),
    ),
)
