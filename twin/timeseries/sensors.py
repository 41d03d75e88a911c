"""Virtual sensors: the meters below a transformer, summed, against the transformer's own metering.

For every transformer with metering in the store's ``sensors`` group and meters mapped to it (the meters' ``trafo``
coordinate), :func:`virtual_sensors` builds on ``(time, trafo)``:

- ``virtual_p_kw``: the sum of its meters' interval energy as mean power (kW),
- ``losses_kw``: estimated technical losses between the transformer and the meters (from power-flow results, see
  :func:`losses_below`; zero when not given),
- ``measured_p_kw``: the transformer's own metering,
- ``residual_kw = measured - virtual - losses`` and ``rel_error = residual / measured``,
- ``n_reporting`` / ``n_meters`` and ``complete`` (every meter reported in that slot),

and a per-transformer summary with the median relative error over complete slots, the share of slots with a
positive residual, the meters that never reported, and flags ``incomplete_meters`` and ``ntl_suspected`` (the
metering is above meters + losses by more than ``ntl_threshold`` in most complete slots: an unmetered load, a
bypassed or broken meter, or a meter mapped to the wrong transformer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import xarray as xr

from twin.timeseries.derive import sum_by
from twin.timeseries.store import Store, StoreError


@dataclass
class VirtualSensors:
    """Result of :func:`virtual_sensors`: the series and one summary row per transformer."""

    series: xr.Dataset
    summary: pd.DataFrame


def losses_below(results: xr.Dataset, branch_trafo: pd.Series) -> xr.DataArray:
    """Active losses (kW) of the branches downstream of each transformer, from power-flow results.

    ``results`` has ``pl_mw`` on ``(time, branch)``; ``branch_trafo`` maps branch id → transformer id (the area the
    branch lies in; e.g. from ``twin.graph``'s ``buses_below``). The transformer itself is not included: its
    metering is on its low-voltage side.
    """
    branch_trafo = branch_trafo[branch_trafo.index.isin(results["branch"].to_numpy().astype(str))]
    pl = results["pl_mw"].sel(branch=branch_trafo.index.to_numpy())
    area = xr.DataArray(
        branch_trafo.to_numpy().astype(str), dims="branch", coords={"branch": pl["branch"]}, name="trafo"
    )
    losses = pl.groupby(area).sum() * 1000.0
    losses = losses.sel(trafo=losses["trafo"] != "")  # branches that no transformer supplies
    losses.attrs["units"] = "kW"
    return losses.rename("losses_kw")


def virtual_sensors(
    store: Store,
    *,
    variable: str = "energy_kwh",
    sensor_variable: str = "p_kw",
    sensor_of: dict[str, str] | None = None,
    losses_kw: xr.DataArray | None = None,
    ntl_threshold: float = 0.03,
    stuck_after: str = "6h",
) -> VirtualSensors:
    """Compare each metered transformer with the sum of its meters (see the module docstring).

    ``sensor_of`` maps transformer id → sensor id when they differ (default: the sensor id is the trafo id).
    A meter whose interval energy is exactly zero for ``stuck_after`` in a row is listed as stuck (a frozen
    register: a household draws something every quarter hour); its transformer's residual is then not an NTL sign.
    """
    if "sensors" not in store.groups():
        raise StoreError(f"{store.path} has no 'sensors' group: ingest the transformer metering first")
    sums = sum_by(store, variable, "trafo")
    sensors = store.dataset("sensors")
    if sensor_variable not in sensors:
        raise StoreError(f"the sensors group has no {sensor_variable!r}; it has {sorted(sensors.data_vars)}")
    sensor_of = sensor_of or {}
    trafos = [t for t in sums["trafo"].to_numpy().astype(str) if sensor_of.get(t, t) in set(sensors["sensor"].values)]
    if not trafos:
        raise StoreError(
            "no transformer has both meters (meters' 'trafo' labels) and metering (sensor ids); "
            "pass sensor_of={trafo_id: sensor_id} if the ids differ"
        )
    measured = sensors[sensor_variable].sel(sensor=[sensor_of.get(t, t) for t in trafos]).load()
    measured = measured.rename(sensor="trafo").assign_coords(trafo=trafos)
    sums = sums.sel(trafo=trafos)
    virtual, measured = xr.align(sums["p_kw"], measured, join="inner")
    losses = xr.zeros_like(virtual) if losses_kw is None else losses_kw.reindex_like(virtual).fillna(0.0)
    residual = measured - virtual - losses
    complete = (sums["n_reporting"] == sums["n_meters"]).reindex_like(virtual)
    series = xr.Dataset(
        {
            "virtual_p_kw": virtual,
            "losses_kw": losses,
            "measured_p_kw": measured,
            "residual_kw": residual,
            "rel_error": residual / measured.where(np.abs(measured) > 1e-9),
            "n_reporting": sums["n_reporting"].reindex_like(virtual),
            "n_meters": sums["n_meters"],
            "complete": complete,
        }
    )
    return VirtualSensors(series, _summary(store, series, variable, ntl_threshold, stuck_after))


def _summary(store: Store, series: xr.Dataset, variable: str, ntl_threshold: float, stuck_after: str) -> pd.DataFrame:
    ok = series["complete"] & series["rel_error"].notnull()
    rel = series["rel_error"].where(ok)
    g = store._root["measurements"]
    labels = g["trafo"][:].astype(object)
    ids = g["meter"][:].astype(object)
    reported, zero_run = _meter_health(store, variable)
    stuck_slots = int(pd.Timedelta(stuck_after) / store.freq)
    rows = []
    for trafo in series["trafo"].to_numpy().astype(str):
        r = rel.sel(trafo=trafo).dropna("time").to_numpy()
        silent = ids[(labels == trafo) & ~reported]
        stuck = ids[(labels == trafo) & reported & (zero_run >= stuck_slots)]
        median = float(np.median(r)) if len(r) else np.nan
        positive = float((r > 0).mean()) if len(r) else np.nan
        rows.append(
            {
                "trafo": trafo,
                "n_meters": int(series["n_meters"].sel(trafo=trafo)),
                "complete_slots": len(r),
                "median_rel_error": median,
                "positive_share": positive,
                "silent_meters": list(silent),
                "stuck_meters": list(stuck),
                "incomplete_meters": bool(len(silent)) or len(r) < int(series.sizes["time"]) * 0.5,
                "ntl_suspected": bool(len(r)) and median > ntl_threshold and positive > 0.8 and not len(stuck),
            }
        )
    return pd.DataFrame(rows).set_index("trafo")


def _meter_health(store: Store, variable: str) -> tuple[np.ndarray, np.ndarray]:
    """Per meter: whether it reported at all, and its longest run of zero-energy slots (a stuck register)."""
    arr = store._root["measurements"][variable]
    reported = np.zeros(arr.shape[1], dtype=bool)
    zero_run = np.zeros(arr.shape[1], dtype=np.int64)
    step = arr.chunks[1]
    for lo in range(0, arr.shape[1], step):
        block = arr[:, lo : lo + step]
        reported[lo : lo + step] = ~np.isnan(block).all(axis=0)
        zero_run[lo : lo + step] = _longest_zero_run(np.ascontiguousarray(block.T))
    return reported, zero_run


@numba.njit(cache=True)
def _longest_zero_run(rows: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    out = np.zeros(rows.shape[0], dtype=np.int64)
    for i in range(rows.shape[0]):
        run = 0
        for v in rows[i]:
            run = run + 1 if v == 0.0 else 0
            out[i] = max(out[i], run)
    return out
