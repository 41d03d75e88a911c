"""Schema of the ``switch`` table: Switches: bus-bus ('b') or bus-branch ('l', 't', 't3')."""

from twin.schema.base import Column, TableSchema

__all__ = ["SWITCH"]

SWITCH = TableSchema(
    name="switch",
    doc="Switches: bus-bus ('b') or bus-branch ('l', 't', 't3').",
    bus_columns=("bus",),
    columns=(
        Column("name", "str", doc="display name"),
        Column("bus", "str", required=True, doc="id of the bus the switch sits at"),
        Column("element", "str", required=True, doc="id of the other bus ('b') or of the branch element"),
        Column("et", "str", required=True, doc="element type: 'b' bus, 'l' line, 't' trafo, 't3' trafo3w"),
        Column("closed", "bool", default=True, doc="switch state"),
        Column("type", "str", doc="CB, LS, DS, LBS ..."),
        Column("z_ohm", "float", default=0.0, doc="impedance of a closed bus-bus switch, ohm (0 = ideal, merged)"),
    ),
)
