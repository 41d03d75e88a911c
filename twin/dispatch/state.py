"""Execution state of dispatched plans: the per-command report and its crash-safe JSON file.

An :class:`ExecutionReport` holds what happened to each command of one dispatch run (status, attempts, latency) and
the plan's state. :class:`ExecutionState` keeps the runs of many plans in one JSON file; every save rewrites the file
through a temporary file, ``fsync`` and an atomic rename, so a crash leaves either the old or the new file, never half
of one.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.timeseries.journal import write_file_atomic

__all__ = [
    "COMMAND_STATUSES",
    "PLAN_STATES",
    "REPORT_COLUMNS",
    "ExecutionReport",
    "ExecutionState",
    "plan_state",
]

COMMAND_STATUSES = ("applied", "rejected", "failed")
PLAN_STATES = ("executed", "partially executed", "failed")
REPORT_COLUMNS = (
    "command_id", "element", "element_kind", "gateway", "kw", "start", "end",
    "status", "reason", "attempts", "latency_s",
)  # fmt: skip
_FORMAT = "gridtwin-dispatch-state"
_VERSION = 1


def plan_state(statuses: pd.Series) -> str:
    """The plan state: ``executed`` (all applied, or no commands), ``failed`` (none), else ``partially executed``."""
    applied = (statuses == "applied").to_numpy()
    if applied.all():
        return "executed"
    return "partially executed" if applied.any() else "failed"


@dataclass(frozen=True)
class ExecutionReport:
    """What happened to one plan's commands in one dispatch run.

    Attributes
    ----------
    plan_id : str
        The plan's id.
    state : str
        ``executed`` (all applied), ``partially executed`` (some failed or were rejected) or ``failed`` (none applied).
    commands : pandas.DataFrame
        One row per command, columns :data:`REPORT_COLUMNS`: ``command_id``, ``element``, ``element_kind``,
        ``gateway`` (the device whose topic it went to), ``kw`` (kW), ``start``, ``end`` (UTC-naive), ``status``
        (``applied``/``rejected``/``failed``), ``reason`` (the gateway's reason, or why it failed), ``attempts``
        (publications, 1 + retries used), ``latency_s`` (s from the first publication to the ack; NaN without one).
    broker : str
        The broker URL without password, or ``in-process``.
    started, finished : pandas.Timestamp
        UTC-naive wall-clock times of the run.
    """

    plan_id: str
    state: str
    commands: pd.DataFrame
    broker: str
    started: pd.Timestamp
    finished: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now("UTC").tz_localize(None))

    def __post_init__(self) -> None:
        """Check the state and the command table's columns."""
        if self.state not in PLAN_STATES:
            raise ValueError(f"plan {self.plan_id!r}: state {self.state!r} is not one of {list(PLAN_STATES)}")
        missing = [c for c in REPORT_COLUMNS if c not in self.commands.columns]
        if missing:
            raise ValueError(f"plan {self.plan_id!r}: report lacks columns {missing}")

    @property
    def counts(self) -> dict[str, int]:
        """Commands per status (every status of :data:`COMMAND_STATUSES`, zeros included)."""
        counts = self.commands["status"].value_counts()
        return {s: int(counts.get(s, 0)) for s in COMMAND_STATUSES}

    def to_frame(self) -> pd.DataFrame:
        """The command table with ``plan_id`` and ``plan_state`` in front, for printing or concatenating runs."""
        frame = self.commands.loc[:, list(REPORT_COLUMNS)].copy()
        frame.insert(0, "plan_state", self.state)
        frame.insert(0, "plan_id", self.plan_id)
        return frame

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO strings, NaN latencies as None)."""
        table = self.commands.loc[:, list(REPORT_COLUMNS)].copy()
        table["start"] = [t.isoformat() for t in table["start"]]
        table["end"] = [t.isoformat() for t in table["end"]]
        records = table.to_dict("records")
        for record in records:  # NaN is not JSON
            record["latency_s"] = None if np.isnan(record["latency_s"]) else float(record["latency_s"])
        return {
            "plan_id": self.plan_id,
            "state": self.state,
            "broker": self.broker,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "commands": records,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionReport:
        """Inverse of :meth:`to_dict`."""
        table = pd.DataFrame.from_records(data["commands"], columns=list(REPORT_COLUMNS))
        table = table.astype({"kw": np.float64, "attempts": np.int64, "latency_s": np.float64})
        table["start"] = pd.to_datetime(table["start"]).astype("datetime64[ns]")
        table["end"] = pd.to_datetime(table["end"]).astype("datetime64[ns]")
        table["reason"] = table["reason"].fillna("").astype(str)
        return cls(
            plan_id=data["plan_id"],
            state=data["state"],
            commands=table,
            broker=data["broker"],
            started=pd.Timestamp(data["started"]),
            finished=pd.Timestamp(data["finished"]),
        )


class ExecutionState:
    """Dispatch runs of many plans in one JSON file, saved atomically; looked up by plan id.

    The file is ``{"format": "gridtwin-dispatch-state", "version": 1, "runs": [report, ...]}``, runs in the order
    they were saved. :meth:`save` appends a run: it re-reads the file, adds the run and replaces the file through a
    temporary file in the same folder (``fsync``, ``os.replace``, ``fsync`` of the folder). Several
    ``ExecutionState`` objects of one process may share a path; writers in several processes at once are not
    coordinated (the last replace wins).

    Parameters
    ----------
    path : str or Path
        The JSON file; created (with its folder) on the first save.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        """``ExecutionState('<path>')``."""
        return f"ExecutionState({str(self.path)!r})"

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"{self.path}: not a dispatch state file ({exc}); move it away or pick another path"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("runs"), list):
            raise ValueError(f"{self.path}: not a dispatch state file (no format {_FORMAT!r}); pick another path")
        if data.get("version") != _VERSION:
            raise ValueError(
                f"{self.path}: dispatch state version {data.get('version')} (this gridtwin reads {_VERSION})"
            )
        return data["runs"]

    def _write(self, runs: list[dict[str, Any]]) -> None:
        body = json.dumps({"format": _FORMAT, "version": _VERSION, "runs": runs}, indent=1, allow_nan=False)
        write_file_atomic(self.path, body)

    def save(self, report: ExecutionReport) -> None:
        """Append ``report`` as the latest run of its plan (atomically)."""
        with self._lock:
            runs = self._read()
            runs.append(report.to_dict())
            self._write(runs)

    def plan_ids(self) -> list[str]:
        """Ids of the plans with at least one saved run, in order of their first run."""
        return list(dict.fromkeys(run["plan_id"] for run in self._read()))

    def __contains__(self, plan_id: object) -> bool:
        """Whether ``plan_id`` has a saved run."""
        return plan_id in self.plan_ids()

    def history(self, plan_id: str) -> list[ExecutionReport]:
        """Every saved run of ``plan_id``, oldest first (empty when none)."""
        return [ExecutionReport.from_dict(run) for run in self._read() if run["plan_id"] == plan_id]

    def load(self, plan_id: str) -> ExecutionReport:
        """The latest saved run of ``plan_id``.

        Raises
        ------
        KeyError
            When the file holds no run of ``plan_id``; the message lists the plans it does hold.
        """
        runs = self.history(plan_id)
        if not runs:
            known = self.plan_ids()
            raise KeyError(f"{self.path}: no dispatch run of plan {plan_id!r}; plans saved: {known[:10]}")
        return runs[-1]
