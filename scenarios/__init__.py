"""gridtwin scenarios package."""

from scenarios.electrify import electrify, heat_pump_p_kw, synthesize_temperature

__all__ = ["electrify", "heat_pump_p_kw", "synthesize_temperature"]
