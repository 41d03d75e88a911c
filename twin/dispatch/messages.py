"""What goes over the wire: the command table's checks, command ids, MQTT topics and JSON payloads.

A command table (``ControlPlan.commands``) has one row per command: ``element``, ``element_kind``, ``controller``,
``gateway``, ``start``, ``end`` (UTC-naive timestamps) and ``kw`` (curtailment, kW); ``command_id`` is optional.
:func:`prepare_commands` checks it, adds the ``target`` device (the gateway, or the controller when the gateway is
empty) and a stable ``command_id``; :func:`command_payloads` turns it into the JSON-ready dicts that are published on
``gridtwin/gateway/<target>/command``. Gateways answer on ``gridtwin/gateway/<target>/ack`` (:func:`ack_payload`).
"""

from __future__ import annotations

import hashlib
import json
import math
import urllib.parse
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ACK_STATUSES",
    "COMMAND_COLUMNS",
    "ELEMENT_KINDS",
    "TOPIC_PREFIX",
    "ack_payload",
    "ack_topic",
    "check_command",
    "command_payloads",
    "command_topic",
    "decode_message",
    "encode_message",
    "gateway_of_topic",
    "prepare_commands",
]

TOPIC_PREFIX = "gridtwin/gateway"
COMMAND_COLUMNS = ("element", "element_kind", "controller", "gateway", "start", "end", "kw")
ELEMENT_KINDS = ("load", "sgen", "storage")
ACK_STATUSES = ("applied", "rejected")
_SHOWN = 5  # bad rows named in one error message


def topic_segment(device: str) -> str:
    """A device id as one MQTT topic level: ``%``, ``/``, ``+`` and ``#`` percent-encoded (``gw/trafo/0`` →
    ``gw%2Ftrafo%2F0``), so ids from any grid or comm layer stay one level and never act as wildcards."""
    if device == "+":  # the single-level wildcard itself, for subscriptions
        return device
    return device.replace("%", "%25").replace("/", "%2F").replace("+", "%2B").replace("#", "%23")


def command_topic(gateway: str) -> str:
    """The topic a gateway (or controller) receives commands on: ``gridtwin/gateway/<gateway>/command``."""
    return f"{TOPIC_PREFIX}/{topic_segment(gateway)}/command"


def ack_topic(gateway: str) -> str:
    """The topic a gateway (or controller) acknowledges on: ``gridtwin/gateway/<gateway>/ack``."""
    return f"{TOPIC_PREFIX}/{topic_segment(gateway)}/ack"


def gateway_of_topic(topic: str) -> str:
    """The gateway id in ``gridtwin/gateway/<gateway>/<kind>`` ("" when the topic has another shape), decoded."""
    parts = topic.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != TOPIC_PREFIX:
        return ""
    return urllib.parse.unquote(parts[2])


def _fail(rows: np.ndarray, elements: pd.Series, what: str, fix: str) -> None:
    """Raise a ValueError naming the first bad rows (position and element id) when ``rows`` is not empty."""
    bad = np.flatnonzero(rows)
    if bad.size:
        named = ", ".join(f"row {i} (element {elements.iloc[i]!r})" for i in bad[:_SHOWN])
        more = f" and {bad.size - _SHOWN} more" if bad.size > _SHOWN else ""
        raise ValueError(f"commands: {named}{more}: {what}; {fix}")


def _timestamps(commands: pd.DataFrame, column: str) -> pd.Series:
    values = commands[column]
    try:
        ts = pd.to_datetime(values)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"commands: column {column!r} is not a timestamp column ({exc}); use UTC pandas Timestamps"
        ) from exc
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    _fail(ts.isna().to_numpy(), commands["element"], f"{column} is missing", "give every command a start and an end")
    return ts.astype("datetime64[ns]")


def _command_ids(table: pd.DataFrame, plan_id: str) -> list[str]:
    """``sha256(plan_id, element, kind, controller, gateway, start, end, kw)``, 16 hex digits, per row."""
    rows = zip(
        table["element"], table["element_kind"], table["controller"], table["gateway"],
        table["start"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f"), table["end"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        table["kw"], strict=True,
    )  # fmt: skip
    return [
        hashlib.sha256("\x1f".join([plan_id, *map(str, row[:-1]), repr(float(row[-1]))]).encode()).hexdigest()[:16]
        for row in rows
    ]


def prepare_commands(commands: pd.DataFrame, plan_id: str) -> pd.DataFrame:
    """Check a command table and add ``target`` and (when missing) ``command_id``.

    Parameters
    ----------
    commands : pandas.DataFrame
        ``element``, ``element_kind`` (``load``/``sgen``/``storage``), ``controller``, ``gateway`` ("" → the
        controller's own topic), ``start``, ``end`` (UTC-naive timestamps; tz-aware ones are converted to UTC),
        ``kw`` (curtailment, kW, finite, ≥ 0); optional ``command_id``.
    plan_id : str
        The plan's id; part of each generated command id.

    Returns
    -------
    pandas.DataFrame
        A copy on a fresh RangeIndex with ``command_id`` first, the columns above and ``target`` (the device whose
        topic the command goes to).

    Raises
    ------
    ValueError
        Missing columns, or rows with an empty element or target, an unknown kind, ``end <= start``, a negative or
        non-finite ``kw`` or a duplicate ``command_id``; the message names the rows and elements.
    """
    if not plan_id or not isinstance(plan_id, str):
        raise ValueError(f"plan_id={plan_id!r}: give the plan a non-empty string id")
    missing = [c for c in COMMAND_COLUMNS if c not in commands.columns]
    if missing:
        raise ValueError(f"commands lack columns {missing}; expected {list(COMMAND_COLUMNS)} (ControlPlan.commands)")
    table = commands.reset_index(drop=True).copy()
    for col in ("element", "element_kind", "controller", "gateway"):
        table[col] = table[col].fillna("").astype(str)
    elements = table["element"]
    _fail((elements == "").to_numpy(), elements, "empty element id", "name the grid element (e.g. 'load/12')")
    kind_ok = table["element_kind"].isin(ELEMENT_KINDS).to_numpy()
    _fail(~kind_ok, elements, "element_kind is not one of " + "/".join(ELEMENT_KINDS), "fix the kind")
    table["start"], table["end"] = _timestamps(table, "start"), _timestamps(table, "end")
    _fail(
        (table["end"] <= table["start"]).to_numpy(),
        elements,
        "end is not after start",
        "give a window with end > start",
    )
    kw = pd.to_numeric(table["kw"], errors="coerce").to_numpy(dtype=np.float64)
    _fail(
        ~np.isfinite(kw) | (kw < 0), elements, "kw is negative, NaN or not a number", "give the curtailment in kW ≥ 0"
    )
    table["kw"] = kw
    table["target"] = table["gateway"].where(table["gateway"] != "", table["controller"])
    _fail((table["target"] == "").to_numpy(), elements, "no gateway and no controller", "name the device to command")
    if "command_id" in table.columns:
        table["command_id"] = table["command_id"].fillna("").astype(str)
        _fail((table["command_id"] == "").to_numpy(), elements, "empty command_id", "drop the column to generate ids")
    else:
        table.insert(0, "command_id", pd.Series(_command_ids(table, plan_id), index=table.index, dtype=object))
    _fail(table["command_id"].duplicated(keep=False).to_numpy(), elements, "duplicate command_id", "remove repeats")
    return table[["command_id", *COMMAND_COLUMNS, "target"]]


def command_payloads(prepared: pd.DataFrame, plan_id: str) -> list[dict[str, Any]]:
    """One JSON-ready dict per row of :func:`prepare_commands`'s table (times as ISO 8601 strings, UTC)."""
    out = prepared.rename(columns={"target": "gateway", "gateway": "via"}).drop(columns="via")
    out["start"] = [t.isoformat() for t in out["start"]]
    out["end"] = [t.isoformat() for t in out["end"]]
    out.insert(1, "plan_id", plan_id)
    return out.to_dict("records")


def check_command(command: dict[str, Any]) -> str:
    """Why a received command cannot be applied ("" when it can): missing keys, bad kind, times or kW."""
    missing = [
        k for k in ("command_id", "plan_id", "element", "element_kind", "kw", "start", "end") if k not in command
    ]
    if missing:
        return f"command lacks {missing}"
    if command["element_kind"] not in ELEMENT_KINDS:
        return f"element_kind {command['element_kind']!r} is not one of {list(ELEMENT_KINDS)}"
    try:
        kw = float(command["kw"])
        start, end = pd.Timestamp(command["start"]), pd.Timestamp(command["end"])
    except (TypeError, ValueError) as exc:
        return f"bad kw, start or end ({exc})"
    if not math.isfinite(kw) or kw < 0:
        return f"kw={kw} is not a finite curtailment ≥ 0"
    if pd.isna(start) or pd.isna(end) or end <= start:
        return f"window {command['start']} → {command['end']} is empty"
    return ""


def ack_payload(command: dict[str, Any], gateway: str, status: str, reason: str = "") -> dict[str, Any]:
    """A gateway's answer to ``command``: ``command_id``, ``plan_id``, ``gateway``, ``status``, ``reason``."""
    if status not in ACK_STATUSES:
        raise ValueError(f"ack status {status!r} is not one of {list(ACK_STATUSES)}")
    return {
        "command_id": str(command.get("command_id", "")),
        "plan_id": str(command.get("plan_id", "")),
        "gateway": gateway,
        "status": status,
        "reason": reason,
    }


def encode_message(payload: dict[str, Any]) -> bytes:
    """UTF-8 JSON bytes of ``payload`` (NaN refused: it is not JSON)."""
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()


def decode_message(data: bytes) -> dict[str, Any] | None:
    """The JSON object in ``data``, or None when it is not UTF-8 JSON holding an object."""
    try:
        payload = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None
