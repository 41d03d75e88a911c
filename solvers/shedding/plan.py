"""ControlPlan: the result of :func:`solvers.shedding.plan_shedding` (commands, curtailment, diagnostics).

Commands are runs of equal curtailment of one device (continuous mode: action ``"limit"``, ``kw`` constant over
``[start, end)``) or runs of disconnection (discrete mode: action ``"off"``, ``kw`` = mean curtailed power over
the run, since a disconnected device's power follows its forecast).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

__all__ = ["COMMAND_COLUMNS", "ControlPlan", "split_commands"]

COMMAND_COLUMNS = ("element", "element_kind", "controller", "gateway", "action", "start", "end", "kw")
_TABLES = ("commands", "totals", "binding", "residual")


def split_commands(
    curtailment_mw: NDArray[np.float64],
    time: pd.DatetimeIndex,
    devices: pd.DataFrame,
    *,
    discrete: bool = False,
    resolution_kw: float = 1e-3,
) -> pd.DataFrame:
    """Split (time, device) curtailment into commands: runs of equal value (or of "off" in discrete mode).

    Parameters
    ----------
    curtailment_mw : ndarray (time, device)
        Curtailment per step, MW.
    time : DatetimeIndex
        Step starts (regular); a command's ``end`` is the start of the step after its last one.
    devices : DataFrame
        One row per device column, indexed by element id, with ``element_kind``, ``controller``, ``gateway``.
    discrete : bool
        Runs of non-zero curtailment (action "off") instead of runs of equal value (action "limit").
    resolution_kw : float
        Values are compared after rounding to this resolution, kW.

    Returns
    -------
    DataFrame
        Columns :data:`COMMAND_COLUMNS`, sorted by start then element.
    """
    n_t, n_d = curtailment_mw.shape
    kw = curtailment_mw.T * 1000.0
    key = (kw > resolution_kw / 2).astype(float) if discrete else np.round(kw / resolution_kw) * resolution_kw
    padded = np.zeros((n_d, n_t + 2))
    padded[:, 1:-1] = key
    change = padded[:, 1:] != padded[:, :-1]  # (device, T + 1): value at t differs from t - 1
    dev, pos = np.nonzero(change)
    starts = np.flatnonzero(pos < n_t)
    starts = starts[key[dev[starts], pos[starts]] > 0]
    d, t0, t1 = dev[starts], pos[starts], pos[starts + 1]
    csum = np.concatenate([np.zeros((n_d, 1)), np.cumsum(kw, axis=1)], axis=1)
    mean_kw = (csum[d, t1] - csum[d, t0]) / (t1 - t0)
    step = time[1] - time[0] if len(time) > 1 else pd.Timedelta("15min")
    ends = np.append(time, time[-1] + step) if len(time) else time
    out = pd.DataFrame(
        {
            "element": devices.index.to_numpy()[d],
            "element_kind": devices["element_kind"].to_numpy()[d],
            "controller": devices["controller"].to_numpy()[d],
            "gateway": devices["gateway"].to_numpy()[d],
            "action": "off" if discrete else "limit",
            "start": time[t0],
            "end": pd.DatetimeIndex(ends)[t1],
            "kw": mean_kw,
        },
        columns=list(COMMAND_COLUMNS),
    )
    return out.sort_values(["start", "element"], kind="stable").reset_index(drop=True)


@dataclass
class ControlPlan:
    """A load-shedding / curtailment plan and how it was found.

    Attributes
    ----------
    commands : DataFrame
        One row per command: ``element``, ``element_kind``, ``controller``, ``gateway``, ``action``,
        ``start``, ``end`` (Timestamps, end exclusive), ``kw`` (curtailment, kW).
    curtailment_mw : DataArray (time, element)
        Curtailment of every controllable device, MW (0 where nothing is curtailed).
    totals : DataFrame
        Per protected transformer: ``shed_kwh`` (loads), ``curtailed_kwh`` (generators), ``storage_kwh``,
        ``devices`` (devices with curtailment behind it).
    objective : float
        Cost-weighted shed energy (cost × MWh) plus penalties of any residual overload.
    status : str
        HiGHS model status of the last solve (``"Optimal"`` …).
    mip_gap : float
        Relative MIP gap (0 for LPs).
    binding : DataFrame
        ``asset``, ``time``, ``kind`` (loading, vm_max, vm_min), ``shadow_price`` (objective per unit of the limit,
        i.e. per loading-% point or per pu) of the binding linearised limits.
    iterations : list of dict
        Per AC re-check: ``iteration``, ``max_loading_pct``, ``assets_over`` (list of ids), ``rows``.
    residual : DataFrame
        ``asset``, ``time``, ``overload_pct`` (loading above the limit after the plan, % points),
        ``overload_mw`` (the same as apparent power, MVA ≈ MW); empty when every limit holds.
    reason : str
        Why a residual remains ("" when none).
    meta : dict
        Linearisation, timings (s), problem sizes, limit_pct.
    payback_mw : DataArray (time, element) or None
        With ``rebound > 0``: extra consumption of heating loads paying back shed energy, MW (no command: the
        device's own controller recovers it once released).
    """

    commands: pd.DataFrame
    curtailment_mw: xr.DataArray
    totals: pd.DataFrame
    objective: float
    status: str
    mip_gap: float = 0.0
    binding: pd.DataFrame = field(default_factory=pd.DataFrame)
    iterations: list[dict[str, Any]] = field(default_factory=list)
    residual: pd.DataFrame = field(default_factory=pd.DataFrame)
    reason: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    payback_mw: xr.DataArray | None = None

    @property
    def is_feasible(self) -> bool:
        """Whether every protected limit holds in the AC re-check."""
        return self.residual.empty

    def summary(self) -> str:
        """Return a short text report: status, energy, commands, iterations and residual overloads."""
        lines = [
            f"status {self.status}, objective {self.objective:.6g}, MIP gap {self.mip_gap:.3g}",
            f"{len(self.commands)} commands on {self.commands['element'].nunique() if len(self.commands) else 0} "
            f"devices, {float(self.curtailment_mw.sum()) * self._dt_h() * 1000:.1f} kWh curtailed",
        ]
        if len(self.totals):
            lines += ["", "per transformer:", self.totals.to_string(float_format=lambda v: f"{v:.1f}")]
        for it in self.iterations:
            lines.append(
                f"iteration {it['iteration']}: max loading {it['max_loading_pct']:.2f} %, "
                f"{len(it['assets_over'])} assets over the limit"
            )
        if not self.residual.empty:
            worst = self.residual.sort_values("overload_pct", ascending=False).head(5)
            lines += ["", f"residual overload ({self.reason}):", worst.to_string(index=False)]
        return "\n".join(lines)

    def _dt_h(self) -> float:
        t = self.curtailment_mw["time"].to_index()
        return (t[1] - t[0]) / pd.Timedelta("1h") if len(t) > 1 else 0.25

    # -- storage ------------------------------------------------------------------------------
    def to_dataset(self) -> xr.Dataset:
        """Return the plan as an xarray Dataset (``curtailment_mw`` on time × element; tables in attrs as JSON)."""
        ds = self.curtailment_mw.to_dataset(name="curtailment_mw")
        ds["curtailment_mw"].attrs["units"] = "MW"
        if self.payback_mw is not None:
            ds["payback_mw"] = self.payback_mw.assign_attrs(units="MW")
        ds.attrs.update(
            {
                "objective": self.objective,
                "status": self.status,
                "mip_gap": self.mip_gap,
                "reason": self.reason,
                "iterations": json.dumps(self.iterations),
                "meta": json.dumps(self.meta, default=str),
                **{name: getattr(self, name).to_json(orient="table", date_unit="ns") for name in _TABLES},
            }
        )
        return ds

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> ControlPlan:
        """Inverse of :meth:`to_dataset`."""
        from io import StringIO

        tables = {name: pd.read_json(StringIO(ds.attrs[name]), orient="table") for name in _TABLES}
        da = ds["curtailment_mw"].copy()
        da.attrs = {}
        payback = ds["payback_mw"].copy() if "payback_mw" in ds else None
        if payback is not None:
            payback.attrs = {}
        return cls(
            payback_mw=payback,
            curtailment_mw=da,
            objective=float(ds.attrs["objective"]),
            status=str(ds.attrs["status"]),
            mip_gap=float(ds.attrs["mip_gap"]),
            reason=str(ds.attrs["reason"]),
            iterations=json.loads(ds.attrs["iterations"]),
            meta=json.loads(ds.attrs["meta"]),
            **tables,
        )

    def to_json(self, path: str | Path) -> None:
        """Write the plan to a JSON file (read it back with :meth:`from_json`)."""
        ds = self.to_dataset()
        doc = {
            "attrs": ds.attrs,
            "time": [str(t) for t in self.curtailment_mw["time"].to_index()],
            "element": self.curtailment_mw["element"].to_numpy().astype(str).tolist(),
            "element_kind": self.curtailment_mw["element_kind"].to_numpy().astype(str).tolist(),
            "curtailment_mw": self.curtailment_mw.transpose("time", "element").to_numpy().tolist(),
        }
        if self.payback_mw is not None:
            doc["payback_mw"] = self.payback_mw.transpose("time", "element").to_numpy().tolist()
        Path(path).write_text(json.dumps(doc))

    @classmethod
    def from_json(cls, path: str | Path) -> ControlPlan:
        """Read a plan written by :meth:`to_json`."""
        doc = json.loads(Path(path).read_text())
        da = xr.DataArray(
            np.asarray(doc["curtailment_mw"], dtype=float).reshape(len(doc["time"]), len(doc["element"])),
            dims=("time", "element"),
            coords={
                "time": pd.DatetimeIndex(doc["time"]),
                "element": np.asarray(doc["element"], dtype=object),
                "element_kind": ("element", np.asarray(doc["element_kind"], dtype=object)),
            },
        )
        ds = da.to_dataset(name="curtailment_mw")
        if "payback_mw" in doc:
            ds["payback_mw"] = da.copy(data=np.asarray(doc["payback_mw"], dtype=float).reshape(da.shape))
        ds.attrs = doc["attrs"]
        return cls.from_dataset(ds)
