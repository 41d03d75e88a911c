"""InfluxDB 1.x: a throwaway local server, a concurrent line-protocol writer and a time-paged reader.

The server side of the ingest benchmark and of the round-trip tests: :class:`InfluxServer` runs the real ``influxd``
(Debian package ``influxdb``, 1.x) with every file in a temporary directory and every listener on loopback,
:func:`write_points` writes readings (``docs/design/timeseries.md``, "Readings") over HTTP ``/write`` with several
connections, and :func:`read_influx` reads them back through ``/query`` page by page, as :class:`ReadBatch` objects.
Only the standard library talks HTTP (``http.client``).
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from twin.servers import LocalServer
from twin.timeseries.ingest import RAW_CHARS, ReadBatch

MIN_TIME_NS = -9_223_372_036_854_775_806  # InfluxQL's smallest and largest valid times
MAX_TIME_NS = 9_223_372_036_854_775_806

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
  logging-enabled = false
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  pprof-enabled = false
  max-body-size = 0
[ifql]
  enabled = false
  bind-address = "127.0.0.1:{ifql_port}"
[logging]
  level = "warn"
"""


def _free_ports(n: int) -> list[int]:
    """``n`` distinct loopback TCP ports that were free a moment ago."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class InfluxServer(LocalServer):
    """A private ``influxd`` (1.x) on a free loopback port, its data in a temporary directory.

    Use as a context manager; ``url`` is ``http://127.0.0.1:<port>``. The HTTP API, the backup RPC and the (disabled)
    IFQL service are bound to 127.0.0.1 only; reporting, monitoring, subscribers and continuous queries are off.

    Parameters
    ----------
    binary : str
        Name or path of the ``influxd`` executable.
    startup_timeout_s : float
        Seconds to wait for ``/ping`` to answer.
    """

    def __init__(self, binary: str = "influxd", startup_timeout_s: float = 30.0) -> None:
        self.binary = binary
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self.config_path: Path | None = None
        super().__init__()

    def start(self) -> None:
        """Start ``influxd`` and wait until ``/ping`` answers (retrying on a port taken in between)."""
        exe = shutil.which(self.binary)
        if exe is None:
            msg = f"{self.binary!r} not found: install InfluxDB 1.x (Debian/Ubuntu: apt-get install influxdb)"
            raise FileNotFoundError(msg)
        self._tmp = tempfile.TemporaryDirectory(prefix="gridtwin-influx-")
        root = Path(self._tmp.name)
        for attempt in range(3):
            http_port, rpc_port, ifql_port = _free_ports(3)
            config = self.config_path = root / "influxdb.conf"
            config.write_text(_CONFIG.format(root=root, rpc_port=rpc_port, http_port=http_port, ifql_port=ifql_port))
            self._log = (root / f"influxd-{attempt}.log").open("wb")
            cmd = [exe, "run", "-config", str(config)]
            self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.url = f"http://127.0.0.1:{http_port}"
            if self._wait_ready():
                return
            log = (root / f"influxd-{attempt}.log").read_text(errors="replace")
            self._halt()
            if "address already in use" not in log:
                break
        self.stop()
        raise RuntimeError(f"influxd did not answer /ping within {self.startup_timeout_s} s; its log:\n{log[-2000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                status, _ = _request(self.url, "GET", "/ping", timeout_s=1.0)
            except OSError:
                status = 0
            if status == 204:
                return True
            time.sleep(0.05)
        return False


# ------------------------------------------------------------------------------------------------------------ HTTP


def _connection(url: str, timeout_s: float) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"url={url!r}; expected http://host:port")
    return http.client.HTTPConnection(parts.hostname, parts.port or 8086, timeout=timeout_s)


def _request(url: str, method: str, path: str, body: bytes | None = None, timeout_s: float = 60.0) -> tuple[int, bytes]:
    conn = _connection(url, timeout_s)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _query(url: str, db: str, q: str, *, method: str = "GET") -> list[dict]:
    """Run one InfluxQL statement; returns its (non-chunked) series or raises with the server's error."""
    path = "/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
    status, body = _request(url, method, path)
    payload = json.loads(body or b"{}")
    error = payload.get("error") or next((r["error"] for r in payload.get("results", []) if "error" in r), None)
    if status >= 300 or error:
        raise RuntimeError(f"{url} db {db!r}: query {q!r} failed (HTTP {status}): {error or body[:200]!r}")
    return [s for r in payload.get("results", []) for s in r.get("series", [])]


def create_database(url: str, db: str) -> None:
    """Create ``db`` on the server at ``url`` if it does not exist."""
    _query(url, db, f"CREATE DATABASE {_ident(db)}", method="POST")


# ------------------------------------------------------------------------------------------------------------ write


def _escape(arr: pa.Array, chars: str) -> pa.Array:
    """Backslash-escape ``chars`` for line protocol."""
    for ch in chars:
        arr = pc.replace_substring(arr, ch, "\\" + ch)
    return arr


def _escape_name(name: str, chars: str) -> str:
    for ch in chars:
        name = name.replace(ch, "\\" + ch)
    return name


def to_line_protocol(readings: pd.DataFrame, measurement: str = "meter", device_tag: str = "device") -> pa.Array:
    """Readings as line protocol, one line per reading: ``measurement,device=<id> <parameter>=<value> <time ns>``.

    Raises
    ------
    ValueError
        When a value is not finite or a device id / parameter is empty (InfluxDB cannot store those).
    """
    missing = {"device", "parameter", "time", "value"} - set(readings.columns)
    if missing:
        raise ValueError(f"readings lack columns {sorted(missing)}; expected device, parameter, time, value")
    values = readings["value"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{bad.sum()} values are NaN or infinite (first at row {np.flatnonzero(bad)[0]}); drop them")
    device = pa.array(readings["device"].astype(str), pa.string())
    parameter = pa.array(readings["parameter"].astype(str), pa.string())
    for name, arr in (("device", device), ("parameter", parameter)):
        if pc.any(pc.equal(pc.binary_length(arr), 0)).as_py():
            raise ValueError(f"readings have an empty {name}; InfluxDB needs non-empty tag values and field keys")
    ns = readings["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    prefix = f"{_escape_name(measurement, ', ')},{_escape_name(device_tag, ',= ')}="
    return pc.binary_join_element_wise(
        prefix, _escape(device, ",= "), " ", _escape(parameter, ",= "), "=",
        pc.cast(pa.array(values), pa.string()), " ", pc.cast(pa.array(ns), pa.string()), "",
    )  # fmt: skip


def write_points(
    url: str,
    db: str,
    readings: pd.DataFrame,
    *,
    measurement: str = "meter",
    device_tag: str = "device",
    writers: int = 4,
    batch: int = 5000,
) -> int:
    """Write readings to InfluxDB 1.x over HTTP ``/write`` (precision ns) with ``writers`` concurrent connections.

    Parameters
    ----------
    url : str
        Server, ``http://host:port``.
    db : str
        Database; created when missing.
    readings : pandas.DataFrame
        ``device``, ``parameter``, ``time`` (UTC), ``value``: each reading becomes the field ``<parameter>`` of the
        point ``measurement,<device_tag>=<device>`` at ``time``. InfluxDB keeps the last value written for the same
        device, parameter and time.
    measurement, device_tag : str
        Measurement name and the tag holding the device id.
    writers : int
        Concurrent HTTP connections (threads).
    batch : int
        Lines per request.

    Returns
    -------
    int
        Points written (one per reading).
    """
    create_database(url, db)
    lines = to_line_protocol(readings, measurement, device_tag)
    n = len(lines)
    offsets = pa.array(np.r_[np.arange(0, n, batch), n].astype(np.int32))
    bodies = pc.binary_join(pa.ListArray.from_arrays(offsets, lines), "\n") if n else pa.array([], pa.string())
    path = "/write?" + urllib.parse.urlencode({"db": db, "precision": "ns"})
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []

    def send(i: int) -> None:
        if not hasattr(local, "conn"):
            local.conn = _connection(url, 120.0)
            opened.append(local.conn)
        local.conn.request("POST", path, body=bodies[i].as_py().encode())
        response = local.conn.getresponse()
        text = response.read()
        if response.status != 204:
            first = i * batch
            msg = f"{url} db {db!r}: writing lines {first}..{min(first + batch, n) - 1} failed (HTTP {response.status})"
            raise RuntimeError(f"{msg}: {text[:300]!r}")

    try:
        with ThreadPoolExecutor(max_workers=max(writers, 1)) as pool:
            list(pool.map(send, range(len(bodies))))
    finally:
        for conn in opened:
            conn.close()
    return n


# ------------------------------------------------------------------------------------------------------------- read


def _to_ns(t: object, default: int) -> int:
    if t is None:
        return default
    stamp = pd.Timestamp(t)
    return int((stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).as_unit("ns").value)


def _query_chunks(url: str, db: str, q: str, chunk_size: int) -> Iterator[dict]:
    """Series pieces of a chunked query, as the server streams them."""
    params = {"db": db, "q": q, "epoch": "ns", "chunked": "true", "chunk_size": str(chunk_size)}
    conn = _connection(url, 300.0)
    try:
        conn.request("GET", "/query?" + urllib.parse.urlencode(params))
        response = conn.getresponse()
        if response.status >= 300:
            raise RuntimeError(
                f"{url} db {db!r}: query {q!r} failed (HTTP {response.status}): {response.read()[:300]!r}"
            )
        for raw in response:
            if not raw.strip():
                continue
            payload = json.loads(raw)
            for result in payload.get("results", [payload]):
                if "error" in result:
                    raise RuntimeError(f"{url} db {db!r}: query {q!r} failed: {result['error']}")
                yield from result.get("series", [])
    finally:
        conn.close()


def _rows_to_batch(
    source: str, columns: list[str], rows: list[list], tags: set[str], measurement: str,
    device_tag: str, parameter_from: str,
) -> ReadBatch:  # fmt: skip
    """One page of ``SELECT *`` rows → readings (one per non-null numeric field) and rejected fields."""
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    fields = [c for c in columns if c != "time" and c not in tags]
    picked = [np.flatnonzero(frame[f].notna().to_numpy()) for f in fields]
    row = np.concatenate([np.zeros(0, np.int64), *picked])
    field = np.repeat(np.asarray(fields, dtype=object), [len(p) for p in picked])
    value = np.concatenate(
        [np.zeros(0, object), *(frame[f].to_numpy()[p] for f, p in zip(fields, picked, strict=True))]
    )
    order = np.argsort(row, kind="stable")
    row, field, value = row[order], field[order], value[order]

    def column(name: str) -> np.ndarray:
        return frame[name].to_numpy()[row] if name in frame else np.full(len(row), None, dtype=object)

    device = column(device_tag)
    parameter = {"field": field, "measurement": np.full(len(row), measurement, dtype=object)}.get(parameter_from)
    parameter = column(parameter_from) if parameter is None else parameter
    numeric = np.fromiter((type(v) in (int, float) for v in value), dtype=bool, count=len(value))
    several = (np.bincount(row, minlength=len(frame))[row] > 1) & (parameter_from != "field")
    reasons = np.select(
        [pd.isna(device), pd.isna(parameter), ~numeric, several],
        [f"no tag {device_tag!r} (the device id)", f"no {parameter_from!r} for the parameter",
         "field value is not a number", f"the point has several fields; parameter_from={parameter_from!r} takes one"],
        default="",
    )  # fmt: skip
    good = reasons == ""
    time_ns = frame["time"].to_numpy()[row[good]].astype(np.int64)
    readings = pd.DataFrame({
        "device": pd.array(device[good].astype(str), dtype="string[pyarrow]"),
        "parameter": pd.array(parameter[good].astype(str), dtype="string[pyarrow]"),
        "time": time_ns.view("datetime64[ns]"),
        "value": value[good].astype(np.float64),
    })  # fmt: skip
    raw = [json.dumps(dict(zip(columns, rows[i], strict=True)))[:RAW_CHARS] for i in row[~good]]
    rejected = pd.DataFrame({
        "source": pd.Series([source] * len(raw), dtype=object),
        "line": np.full(len(raw), -1, dtype=np.int64),
        "reason": pd.Series(reasons[~good], dtype=object),
        "raw": pd.Series(raw, dtype=object),
    })  # fmt: skip
    return ReadBatch(readings, rejected, len(row), source)


def read_influx(
    url: str,
    db: str,
    *,
    measurement: str,
    device_tag: str = "device",
    parameter_from: str = "field",
    start: object = None,
    end: object = None,
    chunk_size: int = 100_000,
) -> Iterator[ReadBatch]:
    """Read a measurement from InfluxDB 1.x as readings, one page of at most ``chunk_size`` points at a time.

    Pages follow time: a page is the first ``chunk_size`` points from a start time on; its last time is left to the
    next page (which starts there), because InfluxDB does not order points of equal time the same way in every
    query. A time with more points than a page is streamed on its own, chunk by chunk. Memory stays bounded
    however long the range is.

    Parameters
    ----------
    url, db, measurement : str
        Server (``http://host:port``), database and measurement.
    device_tag : str
        Tag holding the device id.
    parameter_from : str
        ``"field"`` (field key is the parameter), ``"measurement"`` or a tag name (then one field per point).
    start, end : timestamp-like, optional
        Half-open UTC range ``[start, end)``; naive values are UTC. Everything when None.
    chunk_size : int
        Points per page (and per streamed chunk).

    Yields
    ------
    ReadBatch
        Readings in time order; non-numeric fields are rejected (``line`` is -1).
    """
    source = f"{url}/{db}/{measurement}"
    lo, hi = _to_ns(start, MIN_TIME_NS), _to_ns(end, MAX_TIME_NS + 1)
    tags = {v[0] for s in _query(url, db, f"SHOW TAG KEYS FROM {_ident(measurement)}") for v in s["values"]}
    select = f"SELECT * FROM {_ident(measurement)} WHERE"

    def batch(columns: list[str], rows: list[list]) -> ReadBatch:
        return _rows_to_batch(source, columns, rows, tags, measurement, device_tag, parameter_from)

    while True:
        columns, rows = _fetch(url, db, f"{select} time >= {lo} AND time < {hi} LIMIT {chunk_size}", chunk_size)
        if len(rows) < chunk_size:
            if rows:
                yield batch(columns, rows)
            return
        last = rows[-1][0]
        if rows[0][0] == last:  # one time fills a page: stream all its points, chunk by chunk
            for series in _query_chunks(url, db, f"{select} time = {last}", chunk_size):
                yield batch(series["columns"], series.get("values", []))
            lo = last + 1
        else:  # the last time may go on in the next page: keep only the times before it
            cut = next(i for i in range(len(rows) - 1, -1, -1) if rows[i][0] != last) + 1
            yield batch(columns, rows[:cut])
            lo = last


def _fetch(url: str, db: str, q: str, chunk_size: int) -> tuple[list[str], list[list]]:
    """Columns and all rows of a query (the server streams them in chunks)."""
    columns: list[str] = []
    rows: list[list] = []
    for series in _query_chunks(url, db, q, chunk_size):
        columns = series["columns"]
        rows += series.get("values", [])
    return columns, rows
