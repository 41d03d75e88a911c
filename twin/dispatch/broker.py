"""MQTT plumbing: broker URLs, connected paho clients with clear errors, and a private Mosquitto for tests and demos.

:func:`parse_broker_url` turns ``mqtt://[user:pass@]host[:port]`` into a :class:`BrokerAddress`;
:func:`connect_client` returns a paho client whose network loop runs in a background thread and which the broker has
accepted (CONNACK), or raises :class:`BrokerUnavailableError` naming the broker and how to start one.
:class:`MosquittoBroker` runs the real ``mosquitto`` (Debian package ``mosquitto``) with its config in a temporary
directory, listening on a free loopback port only, like :class:`twin.timeseries.influx.InfluxServer` does for
``influxd``.
"""

from __future__ import annotations

import getpass
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from twin.servers import LocalServer

__all__ = [
    "DEFAULT_PORT",
    "BrokerAddress",
    "BrokerUnavailableError",
    "MosquittoBroker",
    "connect_client",
    "parse_broker_url",
    "subscribe",
]

DEFAULT_PORT = 1883
_log = logging.getLogger(__name__)

_CONFIG = """\
listener {port} 127.0.0.1
{access}
persistence false
set_tcp_nodelay true
max_inflight_messages 100
max_queued_messages 100000
log_dest stdout
log_type error
log_type warning
log_type notice
user {user}
"""


class BrokerUnavailableError(ConnectionError):
    """The MQTT broker cannot be reached or refused the connection; the message says how to start one."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where an MQTT broker listens, parsed from ``mqtt://[user:pass@]host[:port]``.

    Attributes
    ----------
    host : str
        Host name or IP address.
    port : int
        TCP port (1883 when the URL gives none).
    username, password : str or None
        Credentials from the URL, or None.
    """

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """The URL without the password (safe for logs and error messages)."""
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://host:port`` or ``mqtt://user:pass@host:port`` (port optional, default 1883).

    Raises
    ------
    ValueError
        When the scheme is not ``mqtt``, the host is missing, the port is not an integer in 1..65535, or the URL has
        a path, query or fragment; the message shows the expected form.
    """
    hint = "expected mqtt://host:port or mqtt://user:pass@host:port, e.g. mqtt://127.0.0.1:1883"
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"broker {url!r}: {hint}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "mqtt":
        raise ValueError(f"broker {url!r}: scheme {parts.scheme!r} is not supported (only plain TCP 'mqtt'); {hint}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"broker {url!r}: unexpected path, query or fragment; {hint}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"broker {url!r}: bad port ({exc}); {hint}") from exc
    if not parts.hostname:
        raise ValueError(f"broker {url!r}: no host; {hint}")
    if port == 0:
        raise ValueError(f"broker {url!r}: port 0 is not a listening port; {hint}")
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return BrokerAddress(parts.hostname, port or DEFAULT_PORT, user, password)


def _start_hint(address: BrokerAddress) -> str:
    return (
        f"start one with 'mosquitto -p {address.port}' (Debian/Ubuntu: apt-get install mosquitto), "
        "or pass the URL of a running broker"
    )


def _set_nodelay(client: mqtt.Client) -> None:
    """Turn Nagle off on the client's socket: with it, each small ack waits ~40 ms for the peer's delayed ACK."""
    sock = client.socket()
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect_client(broker: str | BrokerAddress, *, client_id: str = "", timeout_s: float = 5.0) -> mqtt.Client:
    """A paho client connected to ``broker`` (CONNACK received), its network loop running in a thread.

    Parameters
    ----------
    broker : str or BrokerAddress
        ``mqtt://[user:pass@]host[:port]``.
    client_id : str
        MQTT client id; a unique ``gridtwin-<uuid>`` when empty.
    timeout_s : float
        Seconds to wait for the TCP connection and then for the broker's CONNACK.

    Returns
    -------
    paho.mqtt.client.Client
        Call ``loop_stop()`` and ``disconnect()`` when done.

    Raises
    ------
    BrokerUnavailableError
        When the broker cannot be reached or refuses the connection (bad credentials, ...).
    """
    address = broker if isinstance(broker, BrokerAddress) else parse_broker_url(broker)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"gridtwin-{uuid.uuid4().hex[:12]}", clean_session=True
    )
    client.connect_timeout = timeout_s
    client.max_inflight_messages = 100  # QoS 1 messages awaiting PUBACK; paho's 20 throttles a plan's burst
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        outcome.append("" if not reason.is_failure else str(reason))
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(address.host, address.port, keepalive=30)
    except (OSError, mqtt.WebsocketConnectionError) as exc:
        msg = f"cannot connect to the MQTT broker at {address.url}: {exc}; {_start_hint(address)}"
        raise BrokerUnavailableError(msg) from exc
    _set_nodelay(client)
    client.loop_start()
    if not answered.wait(timeout_s) or outcome[0]:
        client.loop_stop()
        client.disconnect()
        why = outcome[0] if outcome else f"no CONNACK within {timeout_s} s"
        msg = f"the MQTT broker at {address.url} did not accept the connection ({why}); check the URL and credentials"
        raise BrokerUnavailableError(msg)
    client.on_connect = None
    return client


def subscribe(
    client: mqtt.Client,
    topic: str,
    on_message: Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None],
    *,
    qos: int = 1,
    timeout_s: float = 10.0,
) -> None:
    """Subscribe ``client`` to ``topic`` and wait for the broker's SUBACK; subscribe again after every reconnect.

    Sessions are clean, so a broker restart forgets subscriptions: the client's ``on_connect`` renews it (paho
    reconnects by itself, after 1 s, doubling up to 30 s).

    Raises
    ------
    TimeoutError
        When the broker does not confirm within ``timeout_s`` seconds.
    """
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()

    def guarded(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            on_message(c, userdata, message)
        except Exception:  # an exception would end paho's network thread: log it and go on with the next message
            _log.exception("handling a message on %s failed; the message is dropped", message.topic)

    client.on_message = guarded
    client.reconnect_delay_set(1, 30)
    client.subscribe(topic, qos=qos)
    if not subscribed.wait(timeout_s):
        raise TimeoutError(f"the MQTT broker did not confirm the subscription to {topic} within {timeout_s} s")

    def on_connect(c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        if not reason.is_failure:
            _set_nodelay(c)
            c.subscribe(topic, qos=qos)

    client.on_connect = on_connect


def _free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoBroker(LocalServer):
    """A private ``mosquitto`` on a free loopback port, its config in a temporary directory.

    Use as a context manager; ``url`` is ``mqtt://127.0.0.1:<port>``. Anonymous clients are allowed (the listener is
    bound to 127.0.0.1 only), nothing is persisted, and the log goes to ``log_path`` in the temporary directory.

    Parameters
    ----------
    binary : str
        Name or path of the ``mosquitto`` executable; ``/usr/sbin`` is searched too (Debian installs it there).
    startup_timeout_s : float
        Seconds to wait for the listener to accept connections.
    port : int, optional
        Listen on this loopback port (e.g. 1883 for a demo, or to restart a broker where clients expect it); a free
        one when None.
    users : mapping of str to str, optional
        User name → password; when given, anonymous clients are refused (the password file is written with
        ``mosquitto_passwd``).
    """

    def __init__(
        self,
        binary: str = "mosquitto",
        startup_timeout_s: float = 10.0,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.users = dict(users or {})
        self.startup_timeout_s = startup_timeout_s
        self.fixed_port = port
        self.url = ""
        self.port = 0
        self.log_path: Path | None = None
        super().__init__()

    def start(self) -> None:
        """Start ``mosquitto`` and wait until its listener accepts TCP connections (retrying on a port taken)."""
        exe = shutil.which(self.binary) or shutil.which(self.binary, path="/usr/sbin:/usr/local/sbin")
        if exe is None:
            msg = f"{self.binary!r} not found: install the Mosquitto broker (Debian/Ubuntu: apt-get install mosquitto)"
            raise FileNotFoundError(msg)
        self._tmp = tempfile.TemporaryDirectory(prefix="gridtwin-mosquitto-")
        root = Path(self._tmp.name)
        log = ""
        for attempt in range(3):
            self.port = self.fixed_port or _free_port()
            config = root / "mosquitto.conf"
            config.write_text(_CONFIG.format(port=self.port, user=getpass.getuser(), access=self._access(exe, root)))
            self.log_path = root / f"mosquitto-{attempt}.log"
            self._log = self.log_path.open("wb")
            cmd = [exe, "-c", str(config)]
            self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.url = f"mqtt://127.0.0.1:{self.port}"
            if self._wait_ready():
                return
            log = self.log_path.read_text(errors="replace")
            self._halt()
            if "in use" not in log or self.fixed_port:
                break
        self.stop()
        raise RuntimeError(f"mosquitto did not listen within {self.startup_timeout_s} s; its log:\n{log[-2000:]}")

    def _access(self, exe: str, root: Path) -> str:
        """The config lines on who may connect; writes the password file when there are users."""
        if not self.users:
            return "allow_anonymous true"
        passwd = shutil.which("mosquitto_passwd", path=f"{Path(exe).parent}:/usr/bin:/usr/local/bin")
        if passwd is None:
            raise FileNotFoundError("mosquitto_passwd not found (it comes with mosquitto: apt-get install mosquitto)")
        path = root / "passwords"
        path.touch(mode=0o600)
        for user, password in self.users.items():
            subprocess.run([passwd, "-b", str(path), user, password], check=True, capture_output=True)
        return f"allow_anonymous false\npassword_file {path}"

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if not self.is_running:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return True
            except OSError:
                time.sleep(0.02)
        return False
