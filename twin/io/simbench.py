"""Import SimBench grids and their yearly profiles.

The grids come from the ``simbench`` package (data shipped inside the package, nothing is
downloaded). Profiles are returned as an :class:`xarray.Dataset` whose element dims carry the
same ids as the Grid (``load/3``, ``sgen/7``, ``storage/0``).
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from twin.io.pandapower import from_pandapower

if TYPE_CHECKING:
    from twin.grid import Grid

__all__ = ["from_simbench", "is_simbench_code", "read_simbench_profiles"]

SIMBENCH_START = pd.Timestamp("2016-01-01 00:00")
SIMBENCH_STEP = pd.Timedelta("15min")


def is_simbench_code(name: str) -> bool:
    """Return whether ``name`` looks like a SimBench code: ``"1-MV-urban--0-sw"``, ``"1-MVLV-rural-all-0-sw"``,
    ``"1-MVLV-urban-5.303-1-no_sw"`` (version-voltage levels-type-LV grid or 'all'-scenario-switches).
    """
    return re.fullmatch(r"[12]-[A-Z]+-[A-Za-z0-9]+-[A-Za-z0-9.]*-[0-2]-(sw|no_sw)", name) is not None


def _simbench_net(code: str):
    import simbench as sb

    if not is_simbench_code(code):
        raise ValueError(f"{code!r} is not a SimBench code (expected e.g. '1-MV-urban--0-sw')")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sb.get_simbench_net(code)
    except Exception as err:
        raise ValueError(f"SimBench could not build {code!r}: {err}") from err


def from_simbench(code: str) -> Grid:
    """Build the Grid of a SimBench code (e.g. ``"1-MV-urban--0-sw"``).

    SimBench's transformers have ``tap_pos`` set but no tap changer type; like pandapower 3.5,
    gridtwin applies no tap to them.
    """
    grid = from_pandapower(_simbench_net(code), name=code)
    grid.meta.update({"source": "simbench", "code": code})
    return grid


def read_simbench_profiles(code: str, steps: int | slice | None = None) -> xr.Dataset:
    """Return the absolute yearly profiles of a SimBench grid.

    Parameters
    ----------
    code : str
        SimBench code.
    steps : int or slice, optional
        The first ``steps`` 15-minute steps (int), or a slice of steps; all 35,136 by default.

    Returns
    -------
    xarray.Dataset
        ``load_p_mw``, ``load_q_mvar`` on ``(time, load)``, ``sgen_p_mw`` on ``(time, sgen)``,
        ``storage_p_mw`` on ``(time, storage)`` when the grid has storage; MW / Mvar; ``time``
        starts 2016-01-01 00:00 at 15-minute resolution.
    """
    import simbench as sb

    net = _simbench_net(code)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = sb.get_absolute_values(net, profiles_instead_of_study_cases=True)
    sel = slice(0, steps) if isinstance(steps, int) else (steps or slice(None))
    data_vars = {}
    for (table, col), name in {
        ("load", "p_mw"): "load_p_mw",
        ("load", "q_mvar"): "load_q_mvar",
        ("sgen", "p_mw"): "sgen_p_mw",
        ("storage", "p_mw"): "storage_p_mw",
    }.items():
        df = prof.get((table, col))
        if df is None or df.shape[1] == 0:
            continue
        arr = np.ascontiguousarray(df.to_numpy(dtype=np.float64)[sel])
        ids = [f"{table}/{i}" for i in df.columns]
        unit = "MW" if col == "p_mw" else "Mvar"
        data_vars[name] = xr.DataArray(arr, dims=("time", table), coords={table: ids}, attrs={"units": unit})
    n = next(iter(data_vars.values())).sizes["time"]
    start = SIMBENCH_START + SIMBENCH_STEP * (sel.start or 0)
    ds = xr.Dataset(data_vars, coords={"time": pd.date_range(start, periods=n, freq=SIMBENCH_STEP)})
    ds.attrs.update({"source": "simbench", "code": code})
    return ds
