"""State variables: SvVoltage and SvPowerFlow kept as the file's own solution (not inputs to the Grid)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from cim.mapping.nodes import mrid

if TYPE_CHECKING:
    from cim.read import CimModel

__all__ = ["map_sv_flows", "map_sv_voltages"]


def map_sv_voltages(model: CimModel, bus_vn_kv: pd.Series) -> pd.DataFrame:
    """Return SvVoltage as a table by TopologicalNode id.

    Columns ``v_kv`` (line-to-line magnitude, kV), ``angle_deg`` (degrees) and ``vm_pu`` (over the
    bus's nominal voltage, NaN for nodes that are not buses of the Grid). Empty when the model has
    no SV profile.
    """
    rows = [
        (mrid(s.TopologicalNode), float(s.v), float(s.angle))
        for s in model.of_class("SvVoltage")
        if s.TopologicalNode is not None
    ]
    df = pd.DataFrame(rows, columns=["id", "v_kv", "angle_deg"]).set_index("id")
    df["vm_pu"] = df["v_kv"] / bus_vn_kv.reindex(df.index)
    return df


def map_sv_flows(model: CimModel) -> pd.DataFrame:
    """Return SvPowerFlow by Terminal id: ``p_mw``, ``q_mvar`` (load sign convention: out of the node)."""
    rows = [
        (mrid(f.Terminal), mrid(f.Terminal.ConductingEquipment), float(f.p), float(f.q))
        for f in model.of_class("SvPowerFlow")
        if f.Terminal is not None
    ]
    return pd.DataFrame(rows, columns=["terminal", "equipment", "p_mw", "q_mvar"]).set_index("terminal")
