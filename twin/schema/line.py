"""Schema of the ``line`` table: AC lines and cables (pi model)."""

from twin.schema.base import Column, TableSchema

__all__ = ["LINE"]

LINE = TableSchema(
    name="line",
    doc="AC lines and cables (pi model).",
    bus_columns=("from_bus", "to_bus"),
    columns=(
        Column("name", "str", doc="display name"),
        Column("from_bus", "str", required=True, doc="id of the from bus"),
        Column("to_bus", "str", required=True, doc="id of the to bus"),
        Column("length_km", "float", required=True, doc="length, km"),
        Column("r_ohm_per_km", "float", required=True, doc="series resistance, ohm/km"),
        Column("x_ohm_per_km", "float", required=True, doc="series reactance, ohm/km"),
        Column("c_nf_per_km", "float", default=0.0, doc="shunt capacitance, nF/km"),
        Column("g_us_per_km", "float", default=0.0, doc="shunt conductance, uS/km"),
        Column("max_i_ka", "float", required=True, doc="thermal current rating, kA"),
        Column("df", "float", default=1.0, doc="derating factor (rating = max_i_ka * df * parallel)"),
        Column("parallel", "int", default=1, doc="number of identical parallel systems"),
        Column("in_service", "bool", default=True, doc="whether the line is in service"),
    ),
)
