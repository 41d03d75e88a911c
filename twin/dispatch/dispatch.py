"""Dispatch a control plan's commands to gateways over MQTT (or in process) and collect their acknowledgements.

:func:`dispatch_plan` publishes every command of a plan on ``gridtwin/gateway/<gateway>/command``, waits for the
acks on ``gridtwin/gateway/+/ack`` (matched by ``command_id`` and ``plan_id``), republishes the unanswered ones up to
``retries`` times and returns an :class:`~twin.dispatch.state.ExecutionReport`. :func:`dispatch_in_process` gives the
same report by handing the commands straight to a :class:`~twin.dispatch.gateways.GatewayFleet` (no broker).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from twin.dispatch.broker import connect_client, parse_broker_url, subscribe
from twin.dispatch.messages import (
    ack_topic,
    command_payloads,
    command_topic,
    decode_message,
    encode_message,
    prepare_commands,
)
from twin.dispatch.state import REPORT_COLUMNS, ExecutionReport, ExecutionState, plan_state

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from twin.dispatch.gateways import GatewayFleet

__all__ = ["dispatch_in_process", "dispatch_plan"]


def _now() -> pd.Timestamp:
    return pd.Timestamp.now("UTC").tz_localize(None)


class _Acks:
    """Thread-safe ledger of one run: attempts, first publication time and answer per command (by position)."""

    def __init__(
        self, payloads: list[dict[str, Any]], plan_id: str, on_answer: Callable[[], None] | None = None
    ) -> None:
        self.plan_id = plan_id
        self.pos = {p["command_id"]: i for i, p in enumerate(payloads)}
        n = len(payloads)
        self.attempts = np.zeros(n, dtype=np.int64)
        self.first_sent = np.full(n, np.nan)
        self.latency_s = np.full(n, np.nan)
        self.status = np.full(n, "", dtype=object)
        self.reason = np.full(n, "", dtype=object)
        self.on_answer = on_answer
        self._cond = threading.Condition()

    def carry(self, state: ExecutionState | None) -> None:
        """Mark as applied (0 attempts) the commands that the latest saved run of this plan reports applied."""
        if state is None or self.plan_id not in state:
            return
        before = state.load(self.plan_id)
        done = before.commands.loc[before.commands["status"] == "applied", "command_id"]
        pos = np.array([self.pos[c] for c in done if c in self.pos], dtype=np.int64)
        self.status[pos] = "applied"
        self.reason[pos] = f"applied in an earlier run (finished {before.finished.isoformat()})"

    def sent(self, i: int) -> None:
        with self._cond:
            self.attempts[i] += 1
            if np.isnan(self.first_sent[i]):
                self.first_sent[i] = time.monotonic()

    def answer(self, ack: dict[str, Any]) -> None:
        """Record an ack (the first answer of a command wins; others and strangers are ignored)."""
        i = self.pos.get(str(ack.get("command_id", "")))
        status = ack.get("status")
        if i is None or ack.get("plan_id") != self.plan_id or status not in ("applied", "rejected"):
            return
        with self._cond:
            if self.status[i]:
                return
            self.status[i], self.reason[i] = status, str(ack.get("reason", ""))
            self.latency_s[i] = time.monotonic() - self.first_sent[i]
            self._cond.notify_all()
        if self.on_answer is not None:
            self.on_answer()

    def unanswered(self) -> np.ndarray:
        with self._cond:
            return np.flatnonzero(self.status == "")

    def wait(self, positions: np.ndarray, deadline: float) -> None:
        """Block until every command at ``positions`` is answered or ``deadline`` (monotonic seconds) passes."""
        with self._cond:
            while (self.status[positions] == "").any():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def report(self, table: pd.DataFrame, broker: str, started: pd.Timestamp, timeout_s: float) -> ExecutionReport:
        """The run's report; commands never answered are ``failed``."""
        with self._cond:
            status, reason = self.status.copy(), self.reason.copy()
            attempts, latency = self.attempts.copy(), self.latency_s.copy()
        silent = status == ""
        status[silent] = "failed"
        each = f" ({timeout_s:g} s each)" if timeout_s > 0 else ""
        targets = table["target"].to_numpy()[silent]
        reason[silent] = [
            f"no ack from {g} after {a} attempts{each}" for g, a in zip(targets, attempts[silent], strict=True)
        ]
        commands = table.rename(columns={"gateway": "via", "target": "gateway"}).assign(
            status=status, reason=reason, attempts=attempts, latency_s=latency
        )
        commands = commands.loc[:, list(REPORT_COLUMNS)]
        return ExecutionReport(self.plan_id, plan_state(commands["status"]), commands, broker, started, _now())


def _progress_bar(total: int, enabled: bool) -> tuple[Callable[[], None] | None, Callable[[], None]]:
    """(advance, close) callables of a rich progress bar on stderr; no-ops when disabled."""
    if not enabled:
        return None, lambda: None
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=False)
    task = bar.add_task("commands acknowledged", total=total)
    bar.start()
    return (lambda: bar.advance(task)), bar.stop


def _subscribe_acks(client: mqtt.Client, ledger: _Acks, qos: int) -> None:
    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        ack = decode_message(message.payload)
        if ack is not None:
            ledger.answer(ack)

    subscribe(client, ack_topic("+"), on_message, qos=qos)


def _open_state(state: ExecutionState | str | os.PathLike[str] | None) -> ExecutionState | None:
    return state if state is None or isinstance(state, ExecutionState) else ExecutionState(state)


def _persist(report: ExecutionReport, state: ExecutionState | None) -> ExecutionReport:
    if state is not None:
        state.save(report)
    return report


def dispatch_plan(
    commands: pd.DataFrame,
    broker: str = "mqtt://127.0.0.1:1883",
    *,
    plan_id: str,
    qos: int = 1,
    ack_timeout_s: float = 2.0,
    retries: int = 2,
    state: ExecutionState | str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> ExecutionReport:
    """Publish a plan's commands to their gateways over MQTT, collect acks, retry, and report.

    Each command goes to ``gridtwin/gateway/<gateway>/command`` (the controller's id when ``gateway`` is empty) as
    JSON: ``command_id``, ``plan_id``, ``gateway``, ``controller``, ``element``, ``element_kind``, ``kw`` (kW),
    ``start``, ``end`` (ISO 8601, UTC). Gateways answer on ``gridtwin/gateway/<gateway>/ack`` with ``command_id``,
    ``plan_id``, ``status`` (``applied``/``rejected``) and ``reason``. A command unanswered ``ack_timeout_s`` after
    its publication is published again, at most ``retries`` times; then it is ``failed``. A rejection is final.

    Parameters
    ----------
    commands : pandas.DataFrame
        The plan's command table (``ControlPlan.commands``, see :func:`twin.dispatch.messages.prepare_commands`);
        ``command_id`` is generated from the plan id and the row when missing.
    broker : str
        ``mqtt://[user:pass@]host[:port]``.
    plan_id : str
        The plan's id (in every payload; acks of other plans are ignored).
    qos : int
        MQTT QoS of commands and of the ack subscription (0, 1 or 2).
    ack_timeout_s : float
        Seconds to wait for an ack after each publication.
    retries : int
        Republications of an unanswered command (so at most ``retries + 1`` attempts).
    state : ExecutionState or path, optional
        Where to append the report (JSON, atomic). When it holds an earlier run of ``plan_id``, the commands that run
        applied are not sent again (status ``applied``, 0 attempts): re-dispatching a partially executed plan sends
        only what is missing.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    ExecutionReport
        Per-command status, attempts and latency; plan state ``executed``, ``partially executed`` or ``failed``.

    Raises
    ------
    ValueError
        Bad command table, broker URL, QoS, timeout or retries.
    twin.dispatch.BrokerUnavailableError
        When the broker cannot be reached; the message says how to start one.
    """
    if qos not in (0, 1, 2) or retries < 0 or not ack_timeout_s > 0:
        raise ValueError(f"qos={qos} (0/1/2), retries={retries} (≥ 0), ack_timeout_s={ack_timeout_s} (> 0)")
    address = parse_broker_url(broker)
    table = prepare_commands(commands, plan_id)
    payloads = command_payloads(table, plan_id)
    started = _now()
    ledger = _Acks(payloads, plan_id)
    ledger.carry(store := _open_state(state))
    ledger.on_answer, close = _progress_bar(ledger.unanswered().size, progress)
    client = connect_client(address, client_id=f"gridtwin-dispatch-{uuid.uuid4().hex[:12]}")
    try:
        _subscribe_acks(client, ledger, qos)
        for _attempt in range(retries + 1):
            todo = ledger.unanswered()
            if todo.size == 0:
                break
            for i in todo:
                payload = payloads[i]
                ledger.sent(i)
                client.publish(command_topic(payload["gateway"]), encode_message(payload), qos=qos)
            ledger.wait(todo, time.monotonic() + ack_timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
        close()
    return _persist(ledger.report(table, address.url, started, ack_timeout_s), store)


def dispatch_in_process(
    commands: pd.DataFrame,
    fleet: GatewayFleet,
    *,
    plan_id: str,
    retries: int = 2,
    state: ExecutionState | str | os.PathLike[str] | None = None,
) -> ExecutionReport:
    """Hand a plan's commands straight to ``fleet`` (no broker) and report as :func:`dispatch_plan` does.

    The fallback when no MQTT broker runs: each command goes to ``fleet.handle(gateway, payload)``; a gateway that
    does not answer (silent or not in the fleet) is asked ``retries`` more times, then the command is ``failed``.

    Parameters
    ----------
    commands : pandas.DataFrame
        The plan's command table, as for :func:`dispatch_plan`.
    fleet : GatewayFleet
        The simulated gateways (its ``broker`` is not used).
    plan_id : str
        The plan's id.
    retries : int
        Extra attempts for unanswered commands.
    state : ExecutionState or path, optional
        Where to append the report; commands applied by an earlier run of ``plan_id`` are not sent again.

    Returns
    -------
    ExecutionReport
        With ``broker`` = ``in-process``.
    """
    if retries < 0:
        raise ValueError(f"retries={retries}: give 0 or more")
    table = prepare_commands(commands, plan_id)
    payloads = command_payloads(table, plan_id)
    started = _now()
    ledger = _Acks(payloads, plan_id)
    ledger.carry(store := _open_state(state))
    for _attempt in range(retries + 1):
        for i in ledger.unanswered():
            ledger.sent(i)
            ack = fleet.handle(payloads[i]["gateway"], payloads[i])
            if ack is not None:
                ledger.answer(ack)
    return _persist(ledger.report(table, "in-process", started, 0.0), store)
