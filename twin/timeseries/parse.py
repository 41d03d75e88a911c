"""What the meter-data readers share: blocks of whole lines, value and time parsing, and batch assembly.

:mod:`twin.timeseries.ingest` (CSV, Parquet) and :mod:`twin.timeseries.lineprotocol` (InfluxDB line protocol) build
on this module. A reader cuts a text file into :class:`LineBlock` objects (:func:`iter_blocks`: whole lines, each
with its exact 1-based file line), parses columns into a :class:`Columns` (ids as pyarrow text, times as int64 UTC
nanoseconds by :func:`parse_times`, values as float64 by :func:`parse_values`), records why rows are rejected in a
:class:`Problems` and splits them into a :class:`ReadBatch` with :func:`make_batch`. Checks are vectorised (pyarrow
compute and numpy), one pass per reason, never one Python call per row.
"""

from __future__ import annotations

import codecs
import io
import re
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "RAW_CHARS",
    "Ambiguous",
    "Columns",
    "LineBlock",
    "Problems",
    "ReadBatch",
    "TimeSpec",
    "add_all",
    "check_tz",
    "find_id_issues",
    "is_text",
    "iter_blocks",
    "make_batch",
    "parse_numbers",
    "parse_times",
    "parse_values",
    "to_mask",
]

Ambiguous = Literal["reject", "earliest", "latest"]

RAW_CHARS = 200  # ``rejected.raw`` keeps at most this many characters of the offending text
_MIN_BLOCK_BYTES = 1 << 16
_MAX_BLOCK_BYTES = 1 << 28
_ISO_OFFSET = r"\d(?:Z|[+-]\d\d(?::?\d\d)?)$"  # an ISO 8601 time that carries its UTC offset


@dataclass
class ReadBatch:
    """One batch of a reader's output.

    Attributes
    ----------
    readings : pandas.DataFrame
        ``device``, ``parameter`` (``string[pyarrow]``), ``time`` (``datetime64[ns]``, tz-naive UTC) and ``value``
        (float64, the source's unit), in file order.
    rejected : pandas.DataFrame
        ``source``, ``line`` (1-based line in the file; the 1-based row for Parquet; -1 when unknown), ``reason``
        (what is wrong and how to fix it) and ``raw`` (the offending text, at most 200 characters).
    rows_read : int
        Input readings this batch covers: ``len(readings) + len(rejected)``.
    source : str
        File path (or ``"<lines>"`` / a URL) the batch came from.
    """

    readings: pd.DataFrame
    rejected: pd.DataFrame
    rows_read: int
    source: str


@dataclass(frozen=True)
class TimeSpec:
    """How to turn a time column into UTC nanoseconds."""

    column: str
    time_format: str | None
    tz: str
    ambiguous: Ambiguous


class Problems:
    """Why rows are rejected: a mask and one reason per row; the first reason recorded for a row wins."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.reason = np.empty(n, dtype=object)

    def add(self, mask: np.ndarray, reason: str | np.ndarray, at: slice = slice(None)) -> None:
        """Record ``reason`` (one text, or one per row of ``mask``) for the rows of ``mask`` not yet rejected."""
        new = mask & ~self.bad[at]
        if not new.any():
            return
        self.reason[at][new] = reason if isinstance(reason, str) else reason[new]
        self.bad[at] |= new


class LineBlock:
    """Whole lines of a text file (UTF-8 bytes), the file line number of the first one (1-based) and the line count."""

    def __init__(self, data: bytes, first_line: int, n_lines: int | None = None) -> None:
        self.data = data
        self.first_line = first_line
        if n_lines is None:
            n_lines = _count_newlines(np.frombuffer(data, np.uint8)) + int(bool(data) and not data.endswith(b"\n"))
        self.n_lines = n_lines
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None

    def line_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (without ``\\r\\n``) byte offsets of every line."""
        if self._bounds is None:
            buf = np.frombuffer(self.data, dtype=np.uint8)
            newline = np.flatnonzero(buf == 10)
            starts = np.concatenate([[0], newline + 1])[: self.n_lines]
            ends = np.concatenate([newline, [len(buf)]])[: self.n_lines]
            ends = ends - ((ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13))
            self._bounds = (starts, ends)
        return self._bounds

    def row_lines(self, n_rows: int) -> np.ndarray | None:
        """File line of each of ``n_rows`` rows that skip blank lines; None when rows and lines do not match."""
        if n_rows == self.n_lines:
            return self.first_line + np.arange(n_rows, dtype=np.int64)
        starts, ends = self.line_bounds()
        lines = self.first_line + np.flatnonzero(ends > starts).astype(np.int64)
        return lines if len(lines) == n_rows else None

    def raw(self, lines: np.ndarray | list[int]) -> list[str]:
        """Text of the given file lines, cut to :data:`RAW_CHARS`."""
        return [t[:RAW_CHARS] for t in self.texts(lines, 4 * RAW_CHARS, "replace")]

    def texts(self, lines: np.ndarray | list[int], max_bytes: int | None = None, errors: str = "strict") -> list[str]:
        """Text of the given file lines (at most ``max_bytes`` bytes of each)."""
        if len(lines) == 0:
            return []
        starts, ends = self.line_bounds()
        pos = np.asarray(lines) - self.first_line
        cut = ends[pos] if max_bytes is None else np.minimum(ends[pos], starts[pos] + max_bytes)
        return [self.data[s:e].decode("utf-8", errors) for s, e in zip(starts[pos], cut, strict=True)]

    def text(self, source: str) -> str:
        """The block decoded; undecodable bytes raise an error naming the file line."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = self.first_line + self.data[: err.start].count(b"\n")
            msg = f"{source}:{line}: bytes are not valid UTF-8 ({err.reason}); pass encoding= with the file's encoding"
            raise ValueError(msg) from err


# ----------------------------------------------------------------------------------------------------------- blocks

_SCAN_BYTES = 1 << 20  # newlines are counted in slices of this size (cache-friendly, no large temporaries)


def _count_newlines(buf: np.ndarray) -> int:
    return sum(int(np.count_nonzero(buf[o : o + _SCAN_BYTES] == 10)) for o in range(0, len(buf), _SCAN_BYTES))


def _nth_newline(buf: np.ndarray, n: int) -> int:
    """Byte offset of the ``n``-th (1-based) newline of ``buf``, which has at least ``n``."""
    for o in range(0, len(buf), _SCAN_BYTES):
        here = np.flatnonzero(buf[o : o + _SCAN_BYTES] == 10)
        if len(here) >= n:
            return o + int(here[n - 1])
        n -= len(here)
    raise AssertionError("fewer newlines than counted")


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def iter_blocks(f: BinaryIO, first_line: int, max_lines: int, encoding: str, source: str) -> Iterator[LineBlock]:
    """Cut the rest of the seekable file ``f`` into blocks of at most ``max_lines`` whole lines, as UTF-8."""
    line, size, utf8 = first_line, min(max_lines * 64, 1 << 24), _is_utf8(encoding)
    while chunk := f.read(size):
        if not chunk.endswith(b"\n"):
            chunk += f.readline()
        buf = np.frombuffer(chunk, dtype=np.uint8)
        n = _count_newlines(buf)
        if n > max_lines:  # give back what is past the max_lines-th line
            cut = _nth_newline(buf, max_lines) + 1
            f.seek(cut - len(chunk), io.SEEK_CUR)
            chunk, n = chunk[:cut], max_lines
        n += not chunk.endswith(b"\n")
        yield LineBlock(chunk if utf8 else _transcode(chunk, encoding, source, line), line, n)
        line += n
        size = int(np.clip(len(chunk) / n * max_lines * 0.98, _MIN_BLOCK_BYTES, _MAX_BLOCK_BYTES))


def _transcode(data: bytes, encoding: str, source: str, first_line: int) -> bytes:
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data[: err.start].count(b"\n")
        raise ValueError(f"{source}:{line}: bytes are not valid {encoding}; pass encoding= with the file's") from err


# ------------------------------------------------------------------------------------------------ value parsing


def is_text(arr: pa.ChunkedArray | pa.Array) -> bool:
    """Whether ``arr`` holds (large) UTF-8 strings."""
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def to_mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean pyarrow result as numpy, nulls as False."""
    return np.asarray(pc.fill_null(arr, False), dtype=bool)


def _number_pattern(decimal: str) -> str:
    d = re.escape(decimal)
    return rf"^[+-]?(\d+({d}\d*)?|{d}\d+)([eE][+-]?\d+)?$"


def parse_numbers(text: pa.ChunkedArray | pa.Array, decimal: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse decimal numbers; returns float64 values (NaN where not a number) and the mask of valid ones."""
    if decimal == "." or not pc.any(pc.match_substring(text, ".")).as_py():  # try a plain cast first
        try:
            values = pc.cast(text if decimal == "." else pc.replace_substring(text, decimal, "."), pa.float64())
        except pa.ArrowInvalid:
            pass
        else:
            return pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False), ~to_mask(pc.is_null(values))
    text = pc.utf8_trim_whitespace(text)
    ok = to_mask(pc.match_substring_regex(text, _number_pattern(decimal)))
    values = np.full(len(text), np.nan)
    if ok.any():
        good = pc.filter(text, pa.array(ok))
        good = pc.replace_substring(good, decimal, ".") if decimal != "." else good
        values[ok] = pc.cast(good, pa.float64()).to_numpy()
    return values, ok


def parse_values(
    arr: pa.ChunkedArray | pa.Array, decimal: str, column: str
) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """Values as float64 and the (mask, reason) of the rows to reject."""
    if is_text(arr):
        values, ok = parse_numbers(arr, decimal)
        missing = to_mask(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0))
        not_number = f"{column!r} is not a number (decimal separator {decimal!r}); fix the value or pass decimal="
        issues = [(missing, f"{column!r} is empty: no value"), (~ok, not_number)]
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        values = pc.fill_null(pc.cast(arr, pa.float64()), np.nan).to_numpy()
        issues = [(to_mask(pc.is_null(arr)), f"{column!r} is empty: no value")]
    else:
        raise TypeError(f"column {column!r} has type {arr.type}; a value column must hold numbers or text")
    issues += [(np.isnan(values), f"{column!r} is NaN: no value"), (np.isinf(values), f"{column!r} is not finite")]
    return values, issues


def find_id_issues(arr: pa.ChunkedArray | pa.Array, what: str, column: str) -> list[tuple[np.ndarray, str]]:
    """The (mask, reason) of empty, blank or null ids (``what``: "device id", "parameter") in ``column``."""
    missing = to_mask(pc.equal(pc.binary_length(arr), 0)) | to_mask(pc.utf8_is_space(arr)) | to_mask(pc.is_null(arr))
    return [(missing, f"{column!r} is empty: no {what}")]


# ------------------------------------------------------------------------------------------------- time parsing


def parse_times(arr: pa.ChunkedArray | pa.Array, spec: TimeSpec) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """Times as int64 UTC nanoseconds and the (mask, reason) of the rows to reject."""
    column = spec.column
    if pa.types.is_timestamp(arr.type):
        aware = np.full(len(arr), arr.type.tz is not None)
        missing = to_mask(pc.is_null(arr))
        ns = pc.fill_null(pc.cast(pc.cast(arr, pa.timestamp("ns", arr.type.tz)), pa.int64()), 0).to_numpy()
        issues = [(missing, f"{column!r} is empty: no time")]
    elif is_text(arr):
        text = pc.utf8_trim_whitespace(arr)
        missing = to_mask(pc.equal(pc.utf8_length(text), 0))
        if spec.time_format:
            parsed = pc.strptime(text, format=spec.time_format, unit="ns", error_is_null=True)
            aware = np.full(len(text), "%z" in spec.time_format)
            hint = f"does not match time_format {spec.time_format!r}"
        else:
            parsed, aware = _parse_iso(text)
            hint = "is not an ISO 8601 time; pass time_format= (strftime codes, e.g. '%H:%M:%S %d/%m/%Y')"
        ns = pc.fill_null(pc.cast(parsed, pa.int64()), 0).to_numpy()
        issues = [(missing, f"{column!r} is empty: no time"), (to_mask(pc.is_null(parsed)), f"{column!r} {hint}")]
    else:
        raise TypeError(f"column {column!r} has type {arr.type}; a time column must hold timestamps or text")
    bad = np.logical_or.reduce([mask for mask, _ in issues])
    naive = ~aware & ~bad
    ns, local_issues = _localize(ns, naive, spec)
    return ns, issues + local_issues


def _parse_iso(text: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """ISO 8601 texts → timestamps (null where invalid) and the mask of those with a UTC offset (exact instants).

    A plain cast does uniform columns; otherwise texts with and without offset are parsed apart by pandas (which
    would lend an offset seen earlier to a naive text).
    """
    for tz in (None, "UTC"):
        try:
            return pc.cast(text, pa.timestamp("ns", tz)), np.full(len(text), tz is not None)
        except pa.ArrowInvalid:
            pass
    aware = to_mask(pc.match_substring_regex(text, _ISO_OFFSET))
    objects = np.asarray(text, dtype=object)
    ns = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    for part in (aware, ~aware):
        if part.any():
            parsed = pd.to_datetime(objects[part], format="ISO8601", utc=True, errors="coerce")
            ns[part] = parsed.tz_localize(None).as_unit("ns").to_numpy()
    return pa.array(ns), aware


def _localize(ns: np.ndarray, naive: np.ndarray, spec: TimeSpec) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """Convert the wall-clock times ``ns[naive]`` in ``spec.tz`` to UTC; DST gaps and overlaps are reported."""
    if spec.tz.upper() in ("UTC", "ETC/UTC", "Z") or not naive.any():
        return ns, []
    local = pd.DatetimeIndex(ns[naive].view("datetime64[ns]"))
    choice = {"reject": "NaT", "earliest": np.ones(len(local), bool), "latest": np.zeros(len(local), bool)}
    utc = local.tz_localize(spec.tz, ambiguous=choice[spec.ambiguous], nonexistent="NaT")
    failed = np.asarray(utc.isna())
    ambiguous = np.zeros(len(ns), bool)
    if spec.ambiguous == "reject" and failed.any():  # tell overlaps (two instants) from gaps (none)
        second = local[failed].tz_localize(spec.tz, ambiguous=np.ones(failed.sum(), bool), nonexistent="NaT")
        ambiguous[np.flatnonzero(naive)[np.flatnonzero(failed)[~np.asarray(second.isna())]]] = True
    out = ns.copy()
    out[naive] = np.where(failed, 0, utc.tz_convert("UTC").tz_localize(None).asi8)
    nonexistent = np.zeros(len(ns), bool)
    nonexistent[np.flatnonzero(naive)[failed]] = True
    nonexistent &= ~ambiguous
    return out, [
        (
            ambiguous,
            f"{spec.column!r} is ambiguous in {spec.tz} (clocks go back); pass ambiguous='earliest' or 'latest'",
        ),
        (nonexistent, f"{spec.column!r} does not exist in {spec.tz} (clocks go forward); fix the time"),
    ]


def check_tz(tz: str) -> None:
    """Raise ``ValueError`` unless ``tz`` is an IANA time zone name."""
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown time zone {tz!r}; pass an IANA name such as 'UTC' or 'Europe/Rome'") from err


# ----------------------------------------------------------------------------------------------- batch assembly


def _string_series(arr: pa.ChunkedArray | pa.Array) -> pd.Series:
    arr = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr], type=arr.type)
    return pd.Series(pd.arrays.ArrowStringArray(arr if arr.type == pa.string() else pc.cast(arr, pa.string())))


def _rejected_frame(source: str, lines: np.ndarray, reasons: list[str] | np.ndarray, raw: list[str]) -> pd.DataFrame:
    order = np.argsort(lines, kind="stable")
    return pd.DataFrame({
        "source": pd.Series([source] * len(lines), dtype=object),
        "line": np.asarray(lines, dtype=np.int64)[order],
        "reason": pd.Series(np.asarray(reasons, dtype=object)[order], dtype=object),
        "raw": pd.Series(np.asarray(raw, dtype=object)[order], dtype=object),
    })  # fmt: skip


@dataclass
class Columns:
    """Readings before rejection: one entry per input reading (text ids, UTC ns, float64 values, file lines)."""

    device: pa.ChunkedArray | pa.Array
    parameter: pa.ChunkedArray | pa.Array | str
    time_ns: np.ndarray
    value: np.ndarray
    line: np.ndarray


def make_batch(
    source: str,
    cols: Columns,
    problems: Problems,
    raw: Callable[[np.ndarray], list[str]],
    extra: tuple[list[int], list[str], list[str]] = ([], [], []),
) -> ReadBatch:
    """Split ``cols`` into readings and rejected rows; ``extra`` holds rejects that never became columns."""
    good = ~problems.bad
    device, parameter, time_ns, value = cols.device, cols.parameter, cols.time_ns, cols.value
    if problems.bad.any():
        keep = pa.array(good)
        device, time_ns, value = pc.filter(device, keep), time_ns[good], value[good]
        parameter = parameter if isinstance(parameter, str) else pc.filter(parameter, keep)
    if isinstance(parameter, str):
        parameter = pa.repeat(pa.scalar(parameter, pa.string()), len(value))
    readings = pd.DataFrame({
        "device": _string_series(device),
        "parameter": _string_series(parameter),
        "time": time_ns.view("datetime64[ns]"),
        "value": np.asarray(value, dtype=np.float64),
    })  # fmt: skip
    bad = np.flatnonzero(problems.bad)
    lines = np.concatenate([cols.line[bad], np.asarray(extra[0], dtype=np.int64)])
    reasons = [*problems.reason[bad], *extra[1]]
    rejected = _rejected_frame(source, lines, reasons, [*raw(bad), *extra[2]])
    return ReadBatch(readings, rejected, len(cols.value) + len(extra[0]), source)


def add_all(problems: Problems, issues: list[tuple[np.ndarray, str]], at: slice = slice(None)) -> None:
    """Record every (mask, reason) of ``issues`` in ``problems``, in order (the first reason for a row wins)."""
    for mask, reason in issues:
        problems.add(mask, reason, at)
