"""A simulated gateway fleet that receives commands over MQTT (or in process), applies them to the twin and acks.

:class:`GatewayFleet` is one MQTT client subscribed to ``gridtwin/gateway/+/command`` that answers for a set of
gateway ids: each command is checked, handed to ``on_apply`` (the integrator's function that lowers the element's
profile), recorded in :attr:`GatewayFleet.applied` and acknowledged on ``gridtwin/gateway/<id>/ack``. A command id
is applied once however often it is delivered (QoS 1 may redeliver); a repeat gets the first answer again.
:func:`apply_to_profiles` lowers the profiles by a table of applied commands, so a plan can be checked by an AC power
flow after dispatch. :func:`simulate_gateways` runs a fleet in the foreground (``gridtwin gateways simulate``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from twin.dispatch.broker import connect_client, subscribe
from twin.dispatch.messages import (
    ack_payload,
    ack_topic,
    check_command,
    command_topic,
    decode_message,
    encode_message,
    gateway_of_topic,
)

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
    import xarray as xr

__all__ = ["APPLIED_COLUMNS", "GatewayFleet", "apply_to_profiles", "simulate_gateways"]

APPLIED_COLUMNS = ("command_id", "plan_id", "gateway", "element", "element_kind", "kw", "start", "end")
PROFILE_VARS = {"load": "load_p_mw", "sgen": "sgen_p_mw", "storage": "storage_p_mw"}
_log = logging.getLogger(__name__)

Rejecter = Callable[[dict[str, Any]], str | None]


class GatewayFleet:
    """Simulated gateways that apply commands to the twin and acknowledge them.

    Parameters
    ----------
    gateways : iterable of str
        The gateway (or controller) ids the fleet answers for; commands to other ids are ignored.
    broker : str or None
        ``mqtt://[user:pass@]host[:port]``; None for a fleet used in process only (:meth:`handle`,
        :func:`twin.dispatch.dispatch_in_process`).
    silent : iterable of str
        Gateways that receive commands but never apply or answer them (a dead modem).
    reject : iterable of str or callable
        Gateway ids that reject every command, or a function of the command dict returning a rejection reason
        (None or "" to accept).
    on_apply : callable, optional
        Called once per applied command with the command dict (``command_id``, ``plan_id``, ``gateway``,
        ``controller``, ``element``, ``element_kind``, ``kw``, ``start``, ``end`` as ISO strings); an exception it
        raises turns into a rejection carrying its message.
    qos : int
        QoS of the subscription and of the acks.
    """

    def __init__(
        self,
        gateways: Iterable[str],
        *,
        broker: str | None = None,
        silent: Iterable[str] = (),
        reject: Iterable[str] | Rejecter = (),
        on_apply: Callable[[dict[str, Any]], None] | None = None,
        qos: int = 1,
    ) -> None:
        for name, ids in (("gateways", gateways), ("silent", silent), ("reject", reject)):
            if isinstance(ids, str):
                raise TypeError(f"{name}={ids!r}: pass a list of ids, e.g. [{ids!r}]")
        self.gateways = frozenset(gateways)
        self.silent = frozenset(silent)
        self.broker = broker
        self.on_apply = on_apply
        self.qos = qos
        self._reject_ids = frozenset() if callable(reject) else frozenset(reject)
        self._rejecter = reject if callable(reject) else None
        for name, ids in (("silent", self.silent), ("reject", self._reject_ids)):
            unknown = sorted(ids - self.gateways)
            if unknown:
                raise ValueError(f"{name} gateways {unknown[:5]} are not in the fleet; add them to gateways")
        self.deliveries: Counter[str] = Counter()  # command_id → times received (silent gateways included)
        self._answers: dict[str, dict[str, Any]] = {}
        self._applied: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None

    # ---------------------------------------------------------------------------------------------- applying

    def _decide(self, gateway: str, command: dict[str, Any]) -> tuple[str, str]:
        reason = check_command(command)
        if not reason and gateway in self._reject_ids:
            reason = f"gateway {gateway} rejects commands (simulation)"
        if reason:
            return "rejected", reason
        try:  # user code: an exception must become a rejection, not kill the MQTT network thread
            reason = (self._rejecter(command) or "") if self._rejecter is not None else ""
            if not reason and self.on_apply is not None:
                self.on_apply(command)
        except Exception as exc:
            reason = f"applying failed: {type(exc).__name__}: {exc}"
        return ("rejected", reason) if reason else ("applied", "")

    def handle(self, gateway: str, command: dict[str, Any]) -> dict[str, Any] | None:
        """Apply one delivered command and return the ack, or None when ``gateway`` is silent or not in the fleet.

        A command id seen before is not applied again; its first ack is returned again.
        """
        if gateway not in self.gateways:
            _log.debug("command for gateway %s, which is not in this fleet: ignored", gateway)
            return None
        command_id = str(command.get("command_id", ""))
        with self._lock:
            self.deliveries[command_id] += 1
            if gateway in self.silent:
                return None
            if command_id and command_id in self._answers:
                return self._answers[command_id]
            status, reason = self._decide(gateway, command) if command_id else ("rejected", "command lacks command_id")
            ack = ack_payload(command, gateway, status, reason)
            if command_id:
                self._answers[command_id] = ack
            if status == "applied":
                self._applied.append({**command, "gateway": gateway})
        return ack

    @property
    def applied(self) -> pd.DataFrame:
        """Applied commands, one row each, sorted by start, element, command id: :data:`APPLIED_COLUMNS`."""
        with self._lock:
            table = pd.DataFrame.from_records(self._applied, columns=list(APPLIED_COLUMNS))
        table = table.astype({"kw": np.float64})
        for col in ("start", "end"):  # naive ISO times are UTC; an offset is converted
            table[col] = pd.to_datetime(table[col], utc=True).dt.tz_localize(None).astype("datetime64[ns]")
        return table.sort_values(["start", "element", "command_id"], ignore_index=True)

    # ---------------------------------------------------------------------------------------------- MQTT

    def _on_message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        gateway = gateway_of_topic(message.topic)
        command = decode_message(message.payload)
        if command is None:
            _log.warning("%s: payload is not a JSON object; ignored", message.topic)
            return
        ack = self.handle(gateway, command)
        if ack is not None:
            client.publish(ack_topic(gateway), encode_message(ack), qos=self.qos)

    def start(self) -> None:
        """Connect to the broker and subscribe (returns once the broker confirmed the subscription)."""
        if self.broker is None or self._client is not None:
            return
        client = connect_client(self.broker, client_id=f"gridtwin-fleet-{uuid.uuid4().hex[:12]}")
        try:
            subscribe(client, command_topic("+"), self._on_message, qos=self.qos)
        except TimeoutError:
            client.disconnect()
            client.loop_stop()
            raise
        self._client = client

    def stop(self) -> None:
        """Disconnect (idempotent)."""
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def __enter__(self) -> GatewayFleet:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _window_deltas(rows: pd.DataFrame, times: pd.DatetimeIndex, ids: pd.Index, dim: str) -> np.ndarray:
    """(time, element) curtailments in MW: each row's kw/1000 over the steps in [start, end), summed."""
    pos = ids.get_indexer(rows["element"])
    if (pos < 0).any():
        unknown = rows["element"].to_numpy()[pos < 0]
        raise ValueError(f"applied commands name {dim}s not in the profiles: {sorted(set(unknown))[:5]}")
    t0 = times.searchsorted(rows["start"].to_numpy(), side="left")
    t1 = times.searchsorted(rows["end"].to_numpy(), side="left")
    empty = t1 <= t0
    if empty.any():
        row = rows.iloc[int(np.flatnonzero(empty)[0])]
        msg = (
            f"command {row.get('command_id', '')} ({row['element']}, {row['start']} → {row['end']}) covers no step of "
            f"the profiles ({times[0]} … {times[-1]}); pass profiles that cover the plan's windows"
        )
        raise ValueError(msg)
    diff = np.zeros((len(times) + 1, len(ids)))
    mw = rows["kw"].to_numpy(dtype=np.float64) / 1000.0
    np.add.at(diff, (t0, pos), mw)
    np.add.at(diff, (t1, pos), -mw)
    return np.cumsum(diff, axis=0)[:-1]


def apply_to_profiles(applied: pd.DataFrame, profiles: xr.Dataset) -> xr.Dataset:
    """Lower the profiles by applied curtailments: ``kw / 1000`` MW over ``[start, end)``, never below 0.

    Loads lower ``load_p_mw`` and scale ``load_q_mvar`` with it (constant power factor); sgens lower
    ``sgen_p_mw``; storage moves ``storage_p_mw`` towards zero (less charging, or less discharging: the shedding
    model's meaning of a storage command). Commands on one element add up. A load or sgen value that is already
    ≤ 0 stays as it is.

    Parameters
    ----------
    applied : pandas.DataFrame
        ``command_id``, ``element``, ``element_kind``, ``kw`` (kW), ``start``, ``end`` (UTC-naive), e.g.
        :attr:`GatewayFleet.applied`.
    profiles : xarray.Dataset
        ``load_p_mw``/``load_q_mvar`` on ``(time, load)``, ``sgen_p_mw`` on ``(time, sgen)``, ``storage_p_mw`` on
        ``(time, storage)`` (MW, Mvar), as from ``twin.read_simbench_profiles``; ``time`` increasing.

    Returns
    -------
    xarray.Dataset
        A copy with the lowered values; other variables unchanged.

    Raises
    ------
    ValueError
        When a command names an element or kind the profiles lack, or its window covers no time step.
    """
    missing = [c for c in ("element", "element_kind", "kw", "start", "end") if c not in applied.columns]
    if missing:
        raise ValueError(f"applied commands lack columns {missing}; pass GatewayFleet.applied or the plan's commands")
    out = profiles.copy()
    times = pd.DatetimeIndex(profiles["time"].to_numpy())
    if not times.is_monotonic_increasing:
        raise ValueError("profiles: time is not increasing; sort them with profiles.sortby('time')")
    for kind, rows in applied.groupby("element_kind", sort=True):
        var = PROFILE_VARS.get(str(kind))
        if var is None or var not in profiles:
            raise ValueError(
                f"applied commands on {kind!r} elements, but the profiles have no {var or kind!r} variable"
            )
        da = profiles[var].transpose("time", str(kind))
        delta = _window_deltas(rows, times, da.indexes[str(kind)], str(kind))
        p = da.to_numpy()
        if kind == "storage":  # operation reduced towards zero: less charging (p > 0) or less discharging (p < 0)
            lowered = np.sign(p) * np.maximum(np.abs(p) - delta, 0.0)
        else:
            lowered = p - np.minimum(delta, np.maximum(p, 0.0))
        out[var] = da.copy(data=lowered).transpose(*profiles[var].dims)
        if kind == "load" and "load_q_mvar" in profiles:
            q = profiles["load_q_mvar"].transpose("time", "load")
            ratio = np.divide(lowered, p, out=np.ones_like(p), where=p > 0)
            out["load_q_mvar"] = q.copy(data=q.to_numpy() * ratio).transpose(*profiles["load_q_mvar"].dims)
    return out


def simulate_gateways(
    broker: str, gateways: list[str], *, silent: Iterable[str] = (), duration_s: float | None = None
) -> None:
    """Run a simulated fleet in the foreground, printing each applied command, until Ctrl-C or ``duration_s``.

    Parameters
    ----------
    broker : str
        ``mqtt://[user:pass@]host[:port]``.
    gateways : list of str
        Gateway ids to answer for.
    silent : iterable of str
        Gateways that never answer.
    duration_s : float, optional
        Seconds to run; forever (until Ctrl-C) when None.

    Raises
    ------
    twin.dispatch.BrokerUnavailableError
        When the broker cannot be reached.
    """
    from rich.console import Console

    console = Console(stderr=False, highlight=False)

    def show(command: dict[str, Any]) -> None:
        console.print(
            f"[green]applied[/] {command['command_id']} plan {command['plan_id']}: {command['element']} "
            f"-{float(command['kw']):.1f} kW {command['start']} → {command['end']} via {command.get('gateway', '')}"
        )

    fleet = GatewayFleet(gateways, broker=broker, silent=silent, on_apply=show)
    with fleet:
        console.print(
            f"{len(fleet.gateways)} gateways listening on {broker} ({len(fleet.silent)} silent); Ctrl-C stops"
        )
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
        except KeyboardInterrupt:
            console.print("stopped")
    console.print(f"{len(fleet.applied)} commands applied")
