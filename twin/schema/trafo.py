"""Schema of the ``trafo`` table: Two-winding transformers (pandapower parameterisation)."""

from twin.schema.base import Column, TableSchema

__all__ = ["TRAFO"]

TRAFO = TableSchema(
    name="trafo",
    doc="Two-winding transformers (pandapower parameterisation).",
    bus_columns=("hv_bus", "lv_bus"),
    columns=(
        Column("name", "str", doc="display name"),
        Column("hv_bus", "str", required=True, doc="id of the high-voltage bus"),
        Column("lv_bus", "str", required=True, doc="id of the low-voltage bus"),
        Column("sn_mva", "float", required=True, doc="rated apparent power, MVA"),
        Column("vn_hv_kv", "float", required=True, doc="rated HV voltage, kV"),
        Column("vn_lv_kv", "float", required=True, doc="rated LV voltage, kV"),
        Column("vk_percent", "float", required=True, doc="short-circuit voltage, % of rated (sign of x)"),
        Column("vkr_percent", "float", required=True, doc="real part of short-circuit voltage, %"),
        Column("pfe_kw", "float", default=0.0, doc="iron losses, kW"),
        Column("i0_percent", "float", default=0.0, doc="open-loop current, %"),
        Column("shift_degree", "float", default=0.0, doc="vector-group phase shift, degrees"),
        Column("tap_side", "str", doc="'hv', 'lv' or '' (no tap changer)"),
        Column("tap_neutral", "float", default=0.0, doc="neutral tap position"),
        Column("tap_min", "float", doc="lowest tap position"),
        Column("tap_max", "float", doc="highest tap position"),
        Column("tap_step_percent", "float", doc="voltage change per tap step, %"),
        Column("tap_step_degree", "float", doc="angle change per tap step, degrees"),
        Column("tap_pos", "float", doc="current tap position"),
        Column("tap_changer_type", "str", doc="'Ratio', 'Symmetrical', 'Ideal' or '' (none)"),
        Column(
            "leakage_resistance_ratio_hv",
            "float",
            default=0.5,
            doc="share of series r on the HV side of the T model",
        ),
        Column(
            "leakage_reactance_ratio_hv",
            "float",
            default=0.5,
            doc="share of series x on the HV side of the T model",
        ),
        Column("parallel", "int", default=1, doc="number of identical parallel units"),
        Column("df", "float", default=1.0, doc="derating factor"),
        Column("in_service", "bool", default=True, doc="whether the transformer is in service"),
    ),
)
