"""Schema of the ``trafo3w`` table: Three-winding transformers (pandapower parameterisation, star equivalent)."""

from twin.schema.base import Column, TableSchema

__all__ = ["TRAFO3W"]

TRAFO3W = TableSchema(
    name="trafo3w",
    doc="Three-winding transformers (pandapower parameterisation, star equivalent).",
    bus_columns=("hv_bus", "mv_bus", "lv_bus"),
    columns=(
        Column("name", "str", doc="display name"),
        Column("hv_bus", "str", required=True, doc="id of the HV bus"),
        Column("mv_bus", "str", required=True, doc="id of the MV bus"),
        Column("lv_bus", "str", required=True, doc="id of the LV bus"),
        Column("vn_hv_kv", "float", required=True, doc="rated HV voltage, kV"),
        Column("vn_mv_kv", "float", required=True, doc="rated MV voltage, kV"),
        Column("vn_lv_kv", "float", required=True, doc="rated LV voltage, kV"),
        Column("sn_hv_mva", "float", required=True, doc="rated power of the HV winding, MVA"),
        Column("sn_mv_mva", "float", required=True, doc="rated power of the MV winding, MVA"),
        Column("sn_lv_mva", "float", required=True, doc="rated power of the LV winding, MVA"),
        Column("vk_hv_percent", "float", required=True, doc="short-circuit voltage HV-MV, %"),
        Column("vk_mv_percent", "float", required=True, doc="short-circuit voltage MV-LV, %"),
        Column("vk_lv_percent", "float", required=True, doc="short-circuit voltage HV-LV, %"),
        Column("vkr_hv_percent", "float", required=True, doc="real part HV-MV, %"),
        Column("vkr_mv_percent", "float", required=True, doc="real part MV-LV, %"),
        Column("vkr_lv_percent", "float", required=True, doc="real part HV-LV, %"),
        Column("pfe_kw", "float", default=0.0, doc="iron losses, kW"),
        Column("i0_percent", "float", default=0.0, doc="open-loop current, %"),
        Column("shift_mv_degree", "float", default=0.0, doc="phase shift HV-MV, degrees"),
        Column("shift_lv_degree", "float", default=0.0, doc="phase shift HV-LV, degrees"),
        Column("tap_side", "str", doc="'hv', 'mv', 'lv' or ''"),
        Column("tap_neutral", "float", default=0.0, doc="neutral tap position"),
        Column("tap_min", "float", doc="lowest tap position"),
        Column("tap_max", "float", doc="highest tap position"),
        Column("tap_step_percent", "float", doc="voltage change per tap step, %"),
        Column("tap_step_degree", "float", doc="angle change per tap step, degrees"),
        Column("tap_pos", "float", doc="current tap position"),
        Column("tap_at_star_point", "bool", default=False, doc="tap changer sits at the star point"),
        Column("tap_changer_type", "str", doc="'Ratio', 'Symmetrical', 'Ideal' or ''"),
        Column("loss_side", "str", default="hv", doc="winding whose branch carries the magnetising admittance"),
        Column("in_service", "bool", default=True, doc="whether the transformer is in service"),
    ),
)
