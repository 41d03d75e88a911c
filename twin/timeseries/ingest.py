"""Meter-data readers: long and wide CSV, Parquet and InfluxDB line protocol → batches of readings in UTC.

Every reader yields :class:`ReadBatch` objects (``docs/design/timeseries.md``, "Readings"): a ``readings`` table
(``device``, ``parameter``, ``time`` as tz-naive UTC ``datetime64[ns]``, ``value`` as float64) and a ``rejected`` table
(``source``, ``line``, ``reason``, ``raw``), so memory is bounded by ``batch_rows``, not by the file. Nothing is dropped
silently: ``rows_read == len(readings) + len(rejected)`` in every batch of every reader.

Text files are cut into blocks of whole lines, so every row keeps its exact 1-based line number. A CSV block is parsed
in up to three tiers, each taken only when the one before fails: pyarrow's multi-threaded reader with typed columns
(the fast path), the same reader with text columns and vectorised checks (a bad value somewhere in the block), and
Python's ``csv`` module (rows with the wrong number of fields, quoted newlines). Line protocol goes the same way:
pyarrow splits ``series fields timestamp``, series keys are split once per distinct key, and only lines with escapes,
quotes, comments or stray whitespace go through an exact Python parser. Device and parameter columns are pandas
``string[pyarrow]`` (no Python object per row).

Limits: a quoted CSV field may span lines only within one block (``batch_rows`` lines); thousands separators are not
understood (``"1.234,5"`` is rejected).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

Format = Literal["long_csv", "wide_csv", "parquet", "line_protocol"]
Ambiguous = Literal["reject", "earliest", "latest"]
Precision = Literal["ns", "us", "ms", "s"]

RAW_CHARS = 200  # ``rejected.raw`` keeps at most this many characters of the offending text
_NS_PER_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
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
class _TimeSpec:
    """How to turn a time column into UTC nanoseconds."""

    column: str
    time_format: str | None
    tz: str
    ambiguous: Ambiguous


class _Problems:
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


class _Block:
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


def _iter_blocks(f: BinaryIO, first_line: int, max_lines: int, encoding: str, source: str) -> Iterator[_Block]:
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
        yield _Block(chunk if utf8 else _transcode(chunk, encoding, source, line), line, n)
        line += n
        size = int(np.clip(len(chunk) / n * max_lines * 0.98, _MIN_BLOCK_BYTES, _MAX_BLOCK_BYTES))


def _transcode(data: bytes, encoding: str, source: str, first_line: int) -> bytes:
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data[: err.start].count(b"\n")
        raise ValueError(f"{source}:{line}: bytes are not valid {encoding}; pass encoding= with the file's") from err


def _read_header(f: BinaryIO, sep: str, encoding: str, source: str) -> list[str]:
    first = f.readline()
    if not first.strip():
        raise ValueError(f"{source}: the first line is empty; a CSV file needs a header line with the column names")
    text = first.decode(encoding).lstrip("\ufeff").rstrip("\r\n")
    return next(csv.reader([text], delimiter=sep))


def _require_columns(source: str, header: list[str], wanted: dict[str, str]) -> None:
    """``wanted`` maps option name → column name; raise naming the options to set when a column is missing."""
    for option, column in wanted.items():
        if column not in header:
            msg = f"{source}: no column {column!r} in the header {header}; pass {option}='<column name>'"
            raise ValueError(msg)


# --------------------------------------------------------------------------------------------------- CSV parsing


class _CsvBlockParser:
    """Parses blocks of a CSV file into columns (typed, or text when typing fails) with one file line per row."""

    def __init__(
        self,
        source: str,
        header: list[str],
        types: dict[str, pa.DataType],
        sep: str,
        decimal: str,
        time: _TimeSpec | None,
    ) -> None:
        self.source, self.header, self.types, self.sep = source, header, dict(types), sep
        self.decimal, self.time = decimal, time

    def _options(self, typed: bool) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
        types = self.types if typed else dict.fromkeys(self.types, pa.string())
        parsers = [self.time.time_format] if typed and self.time and self.time.time_format else None
        convert = pacsv.ConvertOptions(
            column_types=types, include_columns=list(types), null_values=[""], strings_can_be_null=False,
            decimal_point=self.decimal, timestamp_parsers=parsers, quoted_strings_can_be_null=typed,
        )  # fmt: skip
        return pacsv.ReadOptions(column_names=self.header), pacsv.ParseOptions(delimiter=self.sep), convert

    def _read_arrow(self, block: _Block, typed: bool) -> tuple[pa.Table, np.ndarray] | None:
        table = pacsv.read_csv(pa.py_buffer(block.data), *self._options(typed))
        lines = block.row_lines(len(table))
        return None if lines is None else (table, lines)

    def parse(self, block: _Block) -> tuple[pa.Table, np.ndarray, list[int]]:
        """Columns, the file line of each row, and the lines whose field count is wrong."""
        for typed in (True, False):
            try:
                result = self._read_arrow(block, typed)
            except pa.ArrowInvalid as err:
                if typed and self.time and "zone offset" in str(err):  # flip naive <-> UTC-aware times once
                    column = self.time.column
                    self.types[column] = pa.timestamp("ns", None if self.types[column].tz else "UTC")
                    try:
                        result = self._read_arrow(block, typed)
                    except pa.ArrowInvalid:
                        continue
                elif "CSV parse error" in str(err):
                    break
                else:
                    continue
            if result is not None:
                return result[0], result[1], []
        return self._parse_python(block)

    def _parse_python(self, block: _Block) -> tuple[pa.Table, np.ndarray, list[int]]:
        positions = [self.header.index(c) for c in self.types]
        columns: list[list[str]] = [[] for _ in positions]
        lines, broken, previous = [], [], 0
        reader = csv.reader(io.StringIO(block.text(self.source), newline=""), delimiter=self.sep, strict=True)
        try:
            for record in reader:
                line, previous = block.first_line + previous, reader.line_num
                if not record:
                    continue
                if len(record) != len(self.header):
                    broken.append(line)
                    continue
                lines.append(line)
                for values, pos in zip(columns, positions, strict=True):
                    values.append(record[pos])
        except csv.Error as err:
            raise ValueError(f"{self.source}:{block.first_line + reader.line_num}: {err}; check quoting") from err
        table = pa.table({c: pa.array(v, pa.string()) for c, v in zip(self.types, columns, strict=True)})
        return table, np.asarray(lines, dtype=np.int64), broken


def _field_count_reason(header: list[str], sep: str) -> str:
    return f"expected {len(header)} fields separated by {sep!r}; check sep=, quoting and stray separators"


# ------------------------------------------------------------------------------------------------ value parsing


def _text(arr: pa.ChunkedArray | pa.Array) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def _mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean pyarrow result as numpy, nulls as False."""
    return np.asarray(pc.fill_null(arr, False), dtype=bool)


def _number_pattern(decimal: str) -> str:
    d = re.escape(decimal)
    return rf"^[+-]?(\d+({d}\d*)?|{d}\d+)([eE][+-]?\d+)?$"


def _numbers_from_text(text: pa.ChunkedArray | pa.Array, decimal: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse decimal numbers; returns float64 values (NaN where not a number) and the mask of valid ones."""
    if decimal == "." or not pc.any(pc.match_substring(text, ".")).as_py():  # try a plain cast first
        try:
            values = pc.cast(text if decimal == "." else pc.replace_substring(text, decimal, "."), pa.float64())
        except pa.ArrowInvalid:
            pass
        else:
            return pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False), ~_mask(pc.is_null(values))
    text = pc.utf8_trim_whitespace(text)
    ok = _mask(pc.match_substring_regex(text, _number_pattern(decimal)))
    values = np.full(len(text), np.nan)
    if ok.any():
        good = pc.filter(text, pa.array(ok))
        good = pc.replace_substring(good, decimal, ".") if decimal != "." else good
        values[ok] = pc.cast(good, pa.float64()).to_numpy()
    return values, ok


def _parse_values(
    arr: pa.ChunkedArray | pa.Array, decimal: str, column: str
) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """Values as float64 and the (mask, reason) of the rows to reject."""
    if _text(arr):
        values, ok = _numbers_from_text(arr, decimal)
        missing = _mask(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0))
        not_number = f"{column!r} is not a number (decimal separator {decimal!r}); fix the value or pass decimal="
        issues = [(missing, f"{column!r} is empty: no value"), (~ok, not_number)]
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        values = pc.fill_null(pc.cast(arr, pa.float64()), np.nan).to_numpy()
        issues = [(_mask(pc.is_null(arr)), f"{column!r} is empty: no value")]
    else:
        raise TypeError(f"column {column!r} has type {arr.type}; a value column must hold numbers or text")
    issues += [(np.isnan(values), f"{column!r} is NaN: no value"), (np.isinf(values), f"{column!r} is not finite")]
    return values, issues


def _id_issues(arr: pa.ChunkedArray | pa.Array, what: str, column: str) -> list[tuple[np.ndarray, str]]:
    missing = _mask(pc.equal(pc.binary_length(arr), 0)) | _mask(pc.utf8_is_space(arr)) | _mask(pc.is_null(arr))
    return [(missing, f"{column!r} is empty: no {what}")]


def _as_text(arr: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if isinstance(arr.type, pa.DictionaryType):
        arr = pc.cast(arr, arr.type.value_type)
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())


# ------------------------------------------------------------------------------------------------- time parsing


def _parse_times(arr: pa.ChunkedArray | pa.Array, spec: _TimeSpec) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """Times as int64 UTC nanoseconds and the (mask, reason) of the rows to reject."""
    column = spec.column
    if pa.types.is_timestamp(arr.type):
        aware = np.full(len(arr), arr.type.tz is not None)
        missing = _mask(pc.is_null(arr))
        ns = pc.fill_null(pc.cast(pc.cast(arr, pa.timestamp("ns", arr.type.tz)), pa.int64()), 0).to_numpy()
        issues = [(missing, f"{column!r} is empty: no time")]
    elif _text(arr):
        text = pc.utf8_trim_whitespace(arr)
        missing = _mask(pc.equal(pc.utf8_length(text), 0))
        if spec.time_format:
            parsed = pc.strptime(text, format=spec.time_format, unit="ns", error_is_null=True)
            aware = np.full(len(text), "%z" in spec.time_format)
            hint = f"does not match time_format {spec.time_format!r}"
        else:
            parsed, aware = _parse_iso(text)
            hint = "is not an ISO 8601 time; pass time_format= (strftime codes, e.g. '%H:%M:%S %d/%m/%Y')"
        ns = pc.fill_null(pc.cast(parsed, pa.int64()), 0).to_numpy()
        issues = [(missing, f"{column!r} is empty: no time"), (_mask(pc.is_null(parsed)), f"{column!r} {hint}")]
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
    aware = _mask(pc.match_substring_regex(text, _ISO_OFFSET))
    objects = np.asarray(text, dtype=object)
    ns = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    for part in (aware, ~aware):
        if part.any():
            parsed = pd.to_datetime(objects[part], format="ISO8601", utc=True, errors="coerce")
            ns[part] = parsed.tz_localize(None).as_unit("ns").to_numpy()
    return pa.array(ns), aware


def _localize(ns: np.ndarray, naive: np.ndarray, spec: _TimeSpec) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
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


def _check_tz(tz: str) -> None:
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
class _Columns:
    """Readings before rejection: one entry per input reading (text ids, UTC ns, float64 values, file lines)."""

    device: pa.ChunkedArray | pa.Array
    parameter: pa.ChunkedArray | pa.Array | str
    time_ns: np.ndarray
    value: np.ndarray
    line: np.ndarray


def _make_batch(
    source: str,
    cols: _Columns,
    problems: _Problems,
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


def _add_all(problems: _Problems, issues: list[tuple[np.ndarray, str]], at: slice = slice(None)) -> None:
    for mask, reason in issues:
        problems.add(mask, reason, at)


# -------------------------------------------------------------------------------------------------- CSV readers


def read_long_csv(
    path: str | PathLike[str],
    *,
    device: str = "device",
    parameter: str = "parameter",
    time: str = "time",
    value: str = "value",
    fixed_parameter: str | None = None,
    sep: str = ",",
    decimal: str = ".",
    time_format: str | None = None,
    tz: str = "UTC",
    ambiguous: Ambiguous = "reject",
    batch_rows: int = 2_000_000,
    encoding: str = "utf-8",
) -> Iterator[ReadBatch]:
    """Read a long CSV (one reading per row) in batches.

    Parameters
    ----------
    path : str or PathLike
        The CSV file; its first line is the header.
    device, parameter, time, value : str
        Column names (e.g. ``device="Dispositivo", parameter="Parametro", time="Data", value="Valore"``).
    fixed_parameter : str, optional
        For files without a parameter column: every reading gets this parameter name (``parameter`` is then unused).
    sep, decimal : str
        Field separator and decimal separator (``decimal=","`` for ``"12,8900"``).
    time_format : str, optional
        strftime-style format of the time column (``"%H:%M:%S %d/%m/%Y"``); ISO 8601 when None. Times with a UTC
        offset (``Z``, ``+02:00``, ``%z``) are exact instants; others are wall-clock times in ``tz``.
    tz : str
        IANA time zone of wall-clock times (``"Europe/Rome"``); converted to UTC.
    ambiguous : {"reject", "earliest", "latest"}
        Wall-clock times in the repeated hour when clocks go back: rejected, or read as the first (summer time) or
        second (standard time) instant. Times in the skipped hour when clocks go forward are always rejected.
    batch_rows : int
        At most this many rows per batch.
    encoding : str
        Text encoding of the file.

    Yields
    ------
    ReadBatch
        Readings and rejected rows (1-based file line numbers) per block of the file.
    """
    source = str(path)
    _check_tz(tz)
    spec = _TimeSpec(time, time_format, tz, ambiguous)
    with Path(path).open("rb") as f:
        header = _read_header(f, sep, encoding, source)
        wanted = {"device": device, "time": time, "value": value} | (
            {} if fixed_parameter else {"parameter": parameter}
        )
        _require_columns(source, header, wanted)
        types = {device: pa.string(), time: _time_type(time_format), value: pa.float64()}
        if fixed_parameter is None:
            types[parameter] = pa.string()
        parser = _CsvBlockParser(source, header, types, sep, decimal, spec)
        for block in _iter_blocks(f, 2, batch_rows, encoding, source):
            table, lines, broken = parser.parse(block)
            problems = _Problems(len(lines))
            _add_all(problems, _id_issues(table[device], "device id", device))
            if fixed_parameter is None:
                _add_all(problems, _id_issues(table[parameter], "parameter", parameter))
            time_ns, time_issues = _parse_times(table[time], spec)
            values, value_issues = _parse_values(table[value], decimal, value)
            _add_all(problems, time_issues + value_issues)
            param = fixed_parameter if fixed_parameter is not None else table[parameter]
            cols = _Columns(table[device], param, time_ns, values, lines)
            reason = _field_count_reason(header, sep)
            extra = (broken, [reason] * len(broken), block.raw(np.asarray(broken, dtype=np.int64)))
            yield _make_batch(source, cols, problems, lambda rows, b=block, ln=lines: b.raw(ln[rows]), extra)


def _time_type(time_format: str | None) -> pa.DataType:
    return pa.timestamp("ns", "UTC" if time_format and "%z" in time_format else None)


def read_wide_csv(
    path: str | PathLike[str],
    *,
    parameter: str,
    time: str = "time",
    devices: list[str] | None = None,
    sep: str = ",",
    decimal: str = ".",
    time_format: str | None = None,
    tz: str = "UTC",
    ambiguous: Ambiguous = "reject",
    batch_rows: int = 2_000_000,
    encoding: str = "utf-8",
) -> Iterator[ReadBatch]:
    """Read a wide CSV (one time column, one column per device) as readings of one parameter.

    Parameters
    ----------
    path : str or PathLike
        The CSV file; its header names the time column and the device columns.
    parameter : str
        Parameter name of every value in the file (``"p_kw"``).
    time : str
        Name of the time column.
    devices : list of str, optional
        Device columns to read; all columns except ``time`` when None.
    sep, decimal, time_format, tz, ambiguous, encoding
        As in :func:`read_long_csv`.
    batch_rows : int
        At most about this many readings (rows × devices) per batch.

    Yields
    ------
    ReadBatch
        Readings in file order (row by row); an empty cell is rejected as "no value". ``rows_read`` counts cells.
    """
    source = str(path)
    _check_tz(tz)
    spec = _TimeSpec(time, time_format, tz, ambiguous)
    with Path(path).open("rb") as f:
        header = _read_header(f, sep, encoding, source)
        _require_columns(source, header, {"time": time})
        names = [c for c in header if c != time] if devices is None else list(devices)
        _require_columns(source, header, {f"devices[{i}]": d for i, d in enumerate(names)})
        if not names:
            raise ValueError(f"{source}: no device columns besides {time!r} in the header {header}")
        types = {time: _time_type(time_format)} | dict.fromkeys(names, pa.float64())
        parser = _CsvBlockParser(source, header, types, sep, decimal, spec)
        for block in _iter_blocks(f, 2, max(batch_rows // len(names), 1), encoding, source):
            yield _wide_batch(source, block, parser, names, parameter, spec)


def _wide_batch(
    source: str, block: _Block, parser: _CsvBlockParser, names: list[str], parameter: str, spec: _TimeSpec
) -> ReadBatch:
    table, lines, broken = parser.parse(block)
    n, k = len(lines), len(names)
    time_ns, time_issues = _parse_times(table[spec.column], spec)
    problems = _Problems(n * k)
    values = np.empty(n * k)
    for j, name in enumerate(names):
        column_values, value_issues = _parse_values(table[name], parser.decimal, name)
        values[j::k] = column_values
        _add_all(problems, time_issues + value_issues, at=slice(j, None, k))
    device = pa.array(names, pa.string()).take(pa.array(np.tile(np.arange(k), n)))
    cols = _Columns(device, parameter, np.repeat(time_ns, k), values, np.repeat(lines, k))
    broken_cells = np.repeat(np.asarray(broken, dtype=np.int64), k)
    reasons = [f"{_field_count_reason(parser.header, parser.sep)} (device column {d!r})" for d in names] * len(broken)
    extra = (list(broken_cells), reasons, block.raw(broken_cells))
    return _make_batch(source, cols, problems, lambda rows: block.raw(cols.line[rows]), extra)


# ---------------------------------------------------------------------------------------------------- Parquet


def read_parquet(
    path: str | PathLike[str],
    *,
    device: str = "device",
    parameter: str = "parameter",
    time: str = "time",
    value: str = "value",
    fixed_parameter: str | None = None,
    decimal: str = ".",
    time_format: str | None = None,
    tz: str = "UTC",
    ambiguous: Ambiguous = "reject",
    batch_rows: int = 2_000_000,
) -> Iterator[ReadBatch]:
    """Read a long-layout Parquet file in batches (columns and options as in :func:`read_long_csv`).

    Timestamp columns with a time zone are exact instants; naive ones are wall-clock times in ``tz``. Text time and
    value columns are parsed like CSV text. ``rejected.line`` is the 1-based row number in the file.
    """
    source = str(path)
    _check_tz(tz)
    spec = _TimeSpec(time, time_format, tz, ambiguous)
    file = pq.ParquetFile(path)
    header = file.schema_arrow.names
    wanted = {"device": device, "time": time, "value": value} | ({} if fixed_parameter else {"parameter": parameter})
    _require_columns(source, header, wanted)
    first_row = 1
    for batch in file.iter_batches(batch_size=batch_rows, columns=list(dict.fromkeys(wanted.values()))):
        n = batch.num_rows
        dev = _as_text(batch.column(device))
        problems = _Problems(n)
        _add_all(problems, _id_issues(dev, "device id", device))
        param: pa.Array | str = fixed_parameter if fixed_parameter is not None else _as_text(batch.column(parameter))
        if not isinstance(param, str):
            _add_all(problems, _id_issues(param, "parameter", parameter))
        time_ns, time_issues = _parse_times(batch.column(time), spec)
        values, value_issues = _parse_values(batch.column(value), decimal, value)
        _add_all(problems, time_issues + value_issues)
        lines = first_row + np.arange(n, dtype=np.int64)
        cols = _Columns(dev, param, time_ns, values, lines)

        def raw(rows: np.ndarray, b: pa.RecordBatch = batch) -> list[str]:
            return [str(r)[:RAW_CHARS] for r in b.take(pa.array(rows, pa.int64())).to_pylist()]

        yield _make_batch(source, cols, problems, raw)
        first_row += n


# ----------------------------------------------------------------------------------------------- line protocol

_LP_FIELD_SET = r"(?:\\.|[^\\,= ]|\\$)*"  # a tag key/value or field key: backslash escapes ',', '=' and ' '
_LP_MEASUREMENT = re.compile(r"(?:\\.|[^\\, ]|\\$)+")
_LP_TOKEN = re.compile(_LP_FIELD_SET)
_LP_VALUE = re.compile(r'"((?:\\.|[^"\\])*)"|[^, ]*')
_LP_UNESCAPE = re.compile(r"\\([,= ])")
_LP_INTEGER = r"^[+-]?\d+[iu]$"
_LP_BOOLEAN = r"^(t|T|true|True|TRUE|f|F|false|False|FALSE)$"


@dataclass
class _LpFields:
    """Line protocol parsed to one entry per field, before values, times and ids are checked."""

    line: np.ndarray
    measurement: pa.Array
    tags: dict[str, pa.Array]  # the tags the caller asked for (null where a line lacks one)
    key: pa.Array
    text: pa.Array  # the field's value as written (quotes removed for strings)
    quoted: np.ndarray
    n_fields: np.ndarray  # number of fields on the entry's line
    timestamp: pa.Array  # int64, or text to check


def _lp_unescape(token: str) -> str:
    return _LP_UNESCAPE.sub(r"\1", token) if "\\" in token else token


def _lp_parse_line(s: str) -> tuple[str, dict[str, str], list[tuple[str, str, bool]], str | None]:
    """Parse one line exactly (escapes, quoted strings): measurement, tags, (key, value, quoted) fields, timestamp."""
    m = _LP_MEASUREMENT.match(s)
    if not m:
        raise ValueError("no measurement name at the start of the line")
    measurement, pos, tags = _lp_unescape(m.group()), m.end(), {}
    while pos < len(s) and s[pos] == ",":
        key = _LP_TOKEN.match(s, pos + 1)
        value = _LP_TOKEN.match(s, key.end() + 1)
        if key.end() >= len(s) or s[key.end()] != "=" or not key.group() or not value.group():
            raise ValueError(f"tag {s[pos + 1 : key.end()]!r} is not key=value")
        tags[_lp_unescape(key.group())] = _lp_unescape(value.group())
        pos = value.end()
    if pos >= len(s) or s[pos] != " ":
        raise ValueError("no fields: expected a space and key=value after the measurement and tags")
    fields = []
    while True:
        key = _LP_TOKEN.match(s, pos + 1)
        if key.end() >= len(s) or s[key.end()] != "=" or not key.group():
            raise ValueError(f"field {s[pos + 1 : key.end() + 1]!r} is not key=value")
        value = _LP_VALUE.match(s, key.end() + 1)
        if s.startswith('"', key.end() + 1) and value.group(1) is None:
            raise ValueError("unterminated string field (missing closing '\"')")
        quoted = value.group(1) is not None
        text = value.group(1).replace('\\"', '"').replace("\\\\", "\\") if quoted else value.group()
        fields.append((_lp_unescape(key.group()), text, quoted))
        pos = value.end()
        if pos >= len(s) or s[pos] != ",":
            break
    rest = s[pos:].strip()
    if " " in rest:
        raise ValueError(f"unexpected text after the timestamp: {rest!r}")
    return measurement, tags, fields, rest or None


def _lp_series(series: pa.Array, tag_names: list[str]) -> tuple[pa.Array, dict[str, pa.Array], np.ndarray]:
    """Measurement, the wanted tags (null where absent) and the malformed mask of distinct ``measurement,tags``."""
    parts = pc.split_pattern(series, ",")
    items, starts = parts.values, parts.offsets.to_numpy()[:-1]
    measurement = pc.take(items, pa.array(starts))
    is_tag = np.ones(len(items), bool)
    is_tag[starts] = False
    tags = pc.filter(items, pa.array(is_tag))
    parent = np.repeat(np.arange(len(series)), pc.list_value_length(parts).to_numpy() - 1)
    bad = ~_mask(pc.greater(pc.binary_length(measurement), 0))
    bad[parent[~_is_key_value(tags)]] = True
    found = {}
    for name in tag_names:
        hit = _mask(pc.starts_with(tags, name + "="))
        idx = np.full(len(series), -1)
        idx[parent[hit]] = np.arange(hit.sum())
        values = pc.utf8_slice_codeunits(pc.filter(tags, pa.array(hit)), len(name) + 1)
        found[name] = pc.take(values, pa.array(idx, mask=idx < 0))
    return measurement, found, bad


def _lp_split_simple(
    key: pa.Array, fields: pa.Array, ts: pa.Array, lines: np.ndarray, tag_names: list[str]
) -> tuple[_LpFields, np.ndarray]:
    """Vectorised split of lines without escapes or quotes; also the mask of malformed lines (to parse exactly).

    Series keys (``measurement,tags``) repeat, so they are split once per distinct key.
    """
    encoded = pc.dictionary_encode(key)
    series = encoded.indices.to_numpy()
    measurement, found, bad_series = _lp_series(encoded.dictionary, tag_names)
    field_line, n_fields = np.arange(len(key)), np.ones(len(fields), np.int64)
    if pc.any(pc.match_substring(fields, ",")).as_py():
        split = pc.split_pattern(fields, ",")
        fields, field_line = pc.list_flatten(split), pc.list_parent_indices(split).to_numpy()
        n_fields = pc.list_value_length(split).to_numpy()[field_line]
    bad = bad_series[series]
    bad[field_line[~_is_key_value(fields)]] = True
    if bad.any():
        keep = pa.array(~bad)
        group, _ = _lp_split_simple(*(pc.filter(a, keep) for a in (key, fields, ts)), lines[~bad], tag_names)
        return group, bad
    kv = pc.split_pattern(fields, "=", max_splits=1)
    kv_items, kv_starts = kv.values, kv.offsets.to_numpy()[:-1]
    one_field = len(field_line) == len(key)
    per_field = pa.array(series if one_field else series[field_line])
    group = _LpFields(
        line=lines if one_field else lines[field_line],
        measurement=pc.take(measurement, per_field),
        tags={k: pc.take(v, per_field) for k, v in found.items()},
        key=pc.take(kv_items, pa.array(kv_starts)),
        text=pc.take(kv_items, pa.array(kv_starts + 1)),
        quoted=np.zeros(len(fields), bool),
        n_fields=n_fields,
        timestamp=ts if one_field else pc.take(ts, pa.array(field_line)),
    )
    return group, bad


def _is_key_value(arr: pa.Array) -> np.ndarray:
    """``key=value`` with both sides non-empty."""
    pos = pc.find_substring(arr, "=").to_numpy(zero_copy_only=False)
    return (pos > 0) & (pos < pc.binary_length(arr).to_numpy(zero_copy_only=False) - 1)


def _whole_lines(block: _Block, source: str) -> pa.Array:
    """The block's lines (blank ones included, so row i is line ``first_line + i``) as a string array."""
    if b"\x1f" not in block.data:
        options = (
            pacsv.ReadOptions(column_names=["line"]),
            pacsv.ParseOptions(delimiter="\x1f", quote_char=False, ignore_empty_lines=False),
            pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
        )
        try:
            table = pacsv.read_csv(pa.py_buffer(block.data), *options)
        except pa.ArrowInvalid:
            table = None
        if table is not None and len(table) == block.n_lines:
            return pa.concat_arrays(table["line"].chunks) if table.num_rows else pa.array([], pa.string())
    return pa.array(block.text(source).split("\n")[: block.n_lines], pa.string())


def _lp_odd_lines(block: _Block) -> tuple[np.ndarray, np.ndarray]:
    """Blank lines, and lines for the exact parser: escapes, quotes, ``#`` or whitespace around (found by byte)."""
    starts, ends = block.line_bounds()
    buf = np.frombuffer(block.data, dtype=np.uint8)
    blank = ends == starts
    odd = np.zeros(len(starts), bool)
    for byte in b'\\"#':
        odd[np.searchsorted(starts, np.flatnonzero(buf == byte), side="right") - 1] = True
    spaces = np.frombuffer(b" \t", np.uint8)
    odd[~blank] |= np.isin(buf[starts[~blank]], spaces) | np.isin(buf[ends[~blank] - 1], spaces)
    return blank, odd


def _join_lines(block: _Block, keep: np.ndarray) -> bytes:
    """The kept lines of the block, newline-terminated, copied run by run."""
    if keep.all():
        return block.data
    starts, ends = block.line_bounds()
    kept = np.flatnonzero(keep)
    breaks = np.flatnonzero(np.diff(kept) > 1)
    firsts, lasts = kept[np.r_[0, breaks + 1]], kept[np.r_[breaks, len(kept) - 1]]
    return b"\n".join(block.data[starts[f] : ends[e]] for f, e in zip(firsts, lasts, strict=True)) + b"\n"


def _lp_parse_lines(block: _Block, source: str, tag_names: list[str]) -> tuple[list[_LpFields], list[int], list[str]]:
    """Lines one by one where needed: plain lines vectorised, the others exactly; also the unparsable lines."""
    blank, odd = _lp_odd_lines(block)
    lines = block.first_line + np.arange(block.n_lines, dtype=np.int64)
    simple = ~blank & ~odd
    split = _lp_sections(_join_lines(block, simple)) if simple.any() else None
    if split is None and simple.any():  # a line lacks a section or its timestamp is not an integer
        parts = pc.split_pattern(_whole_lines(block, source), " ")
        simple &= pc.list_value_length(parts).to_numpy(zero_copy_only=False) == 3
        mine = pc.filter(parts, pa.array(simple))
        split = tuple(pc.take(mine.values, pa.array(mine.offsets.to_numpy()[:-1] + i)) for i in range(3))
    groups = []
    exact = ~blank & ~simple
    if simple.any():
        group, bad = _lp_split_simple(*split, lines[simple], tag_names)
        groups.append(group)
        exact[np.flatnonzero(simple)[bad]] = True
    records: list[tuple] = []
    broken, reasons = [], []
    try:
        texts = block.texts(lines[exact])
    except UnicodeDecodeError:
        block.text(source)  # raises the error naming the line
        raise
    for n, line_text in zip(lines[exact].tolist(), texts, strict=True):
        s = line_text.strip()
        if not s or s.startswith("#"):
            continue
        try:
            measurement, tags, parsed, ts = _lp_parse_line(s)
        except ValueError as err:
            broken.append(n)
            reasons.append(f"not valid line protocol: {err}")
            continue
        names = tuple(tags.get(t) for t in tag_names)
        records += [(n, measurement, names, key, text, quoted, len(parsed), ts) for key, text, quoted in parsed]
    if records:
        groups.append(_lp_fields_from_records(records, tag_names))
    return groups, broken, reasons


def _lp_fields_from_records(records: list[tuple], tag_names: list[str]) -> _LpFields:
    lines, measurements, tag_values, keys, texts, quoted, n_fields, stamps = zip(*records, strict=True)
    by_tag = zip(tag_names, zip(*tag_values, strict=True), strict=True)
    return _LpFields(
        line=np.asarray(lines, dtype=np.int64),
        measurement=pa.array(measurements, pa.string()),
        tags={t: pa.array(v, pa.string()) for t, v in by_tag},
        key=pa.array(keys, pa.string()),
        text=pa.array(texts, pa.string()),
        quoted=np.asarray(quoted, bool),
        n_fields=np.asarray(n_fields, np.int64),
        timestamp=pa.array(stamps, pa.string()),
    )


@dataclass(frozen=True)
class _LpOptions:
    device_tag: str
    parameter_from: str
    precision: Precision
    parse_strings: bool

    @property
    def tag_names(self) -> list[str]:
        extra = [] if self.parameter_from in ("field", "measurement") else [self.parameter_from]
        return list(dict.fromkeys([self.device_tag, *extra]))


def _lp_check(g: _LpFields, opts: _LpOptions) -> tuple[_Columns, _Problems]:
    """Turn parsed fields into columns and the reasons to reject some of them."""
    problems = _Problems(len(g.line))
    device = g.tags[opts.device_tag]
    problems.add(_mask(pc.is_null(device)), f"no tag {opts.device_tag!r} (the device id); pass device_tag=")
    _add_all(problems, _id_issues(device, "device id", opts.device_tag))
    if opts.parameter_from == "field":
        parameter = g.key
    else:
        parameter = g.measurement if opts.parameter_from == "measurement" else g.tags[opts.parameter_from]
        problems.add(_mask(pc.is_null(parameter)), f"no tag {opts.parameter_from!r} (parameter_from) on the line")
        several = f"the line has several fields; parameter_from={opts.parameter_from!r} takes one: use 'field'"
        problems.add(g.n_fields > 1, several)
    _add_all(problems, _id_issues(parameter, "parameter", opts.parameter_from))
    time_ns, time_issues = _lp_times(g.timestamp, opts.precision)
    values, value_issues = _lp_values(g, opts.parse_strings)
    _add_all(problems, time_issues + value_issues)
    return _Columns(device, parameter, time_ns, values, g.line), problems


def _lp_times(ts: pa.Array, precision: Precision) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """Timestamps (int64, or text from the exact parser) in ``precision`` units → int64 UTC nanoseconds."""
    missing = _mask(pc.is_null(ts))
    if _text(ts):
        with contextlib.suppress(pa.ArrowInvalid):
            ts = pc.cast(ts, pa.int64())
    if _text(ts):
        missing |= _mask(pc.equal(pc.binary_length(ts), 0))
        ok = _mask(pc.match_substring_regex(ts, r"^[+-]?\d+$"))
        approx = np.zeros(len(ts))
        approx[ok] = pc.cast(pc.filter(ts, pa.array(ok)), pa.float64()).to_numpy()
        fits = ok & (np.abs(approx) < 9.2e18)
        raw = np.zeros(len(ts), np.int64)
        raw[fits] = pc.cast(pc.filter(ts, pa.array(fits)), pa.int64()).to_numpy()
        issues = [
            (~ok & ~missing, "timestamp is not an integer"),
            (~fits & ~missing, "timestamp does not fit in 64 bits"),
        ]
    else:
        raw, issues = pc.fill_null(ts, 0).to_numpy(zero_copy_only=False).astype(np.int64), []
    factor = _NS_PER_UNIT[precision]
    out_of_range = np.abs(raw) > np.iinfo(np.int64).max // factor
    issues = [
        (missing, "no timestamp; line protocol readings need one (the server's clock is not used)"),
        *issues,
        (out_of_range, f"timestamp is out of range for precision {precision!r}; check precision="),
    ]
    return np.where(out_of_range, 0, raw) * factor, issues


def _lp_values(g: _LpFields, parse_strings: bool) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    text = g.text
    suffix = _mask(pc.ends_with(text, "i")) | _mask(pc.ends_with(text, "u"))
    if suffix.any():
        integer = suffix & _mask(pc.match_substring_regex(text, _LP_INTEGER))
        text = pc.if_else(pa.array(integer), pc.utf8_slice_codeunits(text, 0, -1), text)
    values, ok = _numbers_from_text(text, ".")
    boolean = ~ok & ~g.quoted
    if boolean.any():
        boolean &= _mask(pc.match_substring_regex(g.text, _LP_BOOLEAN))
    string = "string field: not a number; pass parse_strings=True to read numbers written in quotes"
    issues = [
        (g.quoted & (not parse_strings), string),
        (boolean, "boolean field: not a numeric reading"),
        (~ok, "field value is not a number"),
        (np.isnan(values), "field value is NaN: no value"),
        (np.isinf(values), "field value is not finite"),
    ]
    return values, issues


def _merge(parts: list[tuple[_Columns, _Problems]]) -> tuple[_Columns, _Problems]:
    """Concatenate columns and problems of several groups, in file-line order."""
    if len(parts) == 1:
        return parts[0]

    def cat(arrays: list) -> pa.ChunkedArray:
        chunks = [c for a in arrays for c in (a.chunks if isinstance(a, pa.ChunkedArray) else [a])]
        return pa.chunked_array(chunks, type=pa.string())

    line = np.concatenate([c.line for c, _ in parts])
    order = np.argsort(line, kind="stable")
    take = pa.array(order)
    cols = _Columns(
        pc.take(cat([c.device for c, _ in parts]), take), pc.take(cat([c.parameter for c, _ in parts]), take),
        np.concatenate([c.time_ns for c, _ in parts])[order], np.concatenate([c.value for c, _ in parts])[order],
        line[order],
    )  # fmt: skip
    problems = _Problems(len(line))
    problems.bad = np.concatenate([p.bad for _, p in parts])[order]
    problems.reason = np.concatenate([p.reason for _, p in parts])[order]
    return cols, problems


def _lp_batch(block: _Block, source: str, opts: _LpOptions) -> ReadBatch:
    groups, broken, reasons = None, [], []
    data = block.data
    if b"\\" not in data and b'"' not in data and (b"#" not in data or not _has_comment(data)):
        sections = _lp_sections(data)
        lines = None if sections is None else block.row_lines(len(sections[0]))
        if lines is not None:
            group, bad = _lp_split_simple(*sections, lines, opts.tag_names)
            groups = None if bad.any() else [group]
    if groups is None:
        groups, broken, reasons = _lp_parse_lines(block, source, opts.tag_names)
    empty = _Columns(
        pa.array([], pa.string()), pa.array([], pa.string()), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    )
    cols, problems = _merge([_lp_check(g, opts) for g in groups] or [(empty, _Problems(0))])
    extra = (broken, reasons, block.raw(np.asarray(broken, dtype=np.int64)))
    return _make_batch(source, cols, problems, lambda rows: block.raw(cols.line[rows]), extra)


def _lp_sections(data: bytes | pa.Buffer) -> tuple[pa.Array, pa.Array, pa.Array] | None:
    """Series keys, field sets and int64 timestamps of lines ``key fields timestamp`` (pyarrow, multi-threaded).

    None when a line has another number of space-separated sections or a timestamp that is not an integer.
    """
    options = (
        pacsv.ReadOptions(column_names=["key", "fields", "ts"]),
        pacsv.ParseOptions(delimiter=" ", quote_char=False),
        pacsv.ConvertOptions(column_types={"key": pa.string(), "fields": pa.string(), "ts": pa.int64()}),
    )
    try:
        table = pacsv.read_csv(pa.py_buffer(data) if isinstance(data, bytes) else data, *options)
    except pa.ArrowInvalid:
        return None
    key, fields, ts = (
        pa.concat_arrays(table[c].chunks) if table.num_rows else pa.array([], table[c].type)
        for c in ("key", "fields", "ts")
    )
    return key, fields, ts


def _has_comment(data: bytes) -> bool:
    return data.startswith(b"#") or b"\n#" in data


def _blocks_from_lines(lines: Iterable[str], max_lines: int) -> Iterator[_Block]:
    chunk: list[str] = []
    first = 1
    for line in lines:
        chunk.append(line.rstrip("\r\n"))
        if len(chunk) == max_lines:
            yield _Block(("\n".join(chunk) + "\n").encode(), first)
            first, chunk = first + len(chunk), []
    if chunk:
        yield _Block(("\n".join(chunk) + "\n").encode(), first)


def read_line_protocol(
    path_or_lines: str | PathLike[str] | Iterable[str],
    *,
    device_tag: str = "device",
    parameter_from: str = "field",
    precision: Precision = "ns",
    parse_strings: bool = False,
    batch_rows: int = 2_000_000,
    encoding: str = "utf-8",
) -> Iterator[ReadBatch]:
    """Read InfluxDB line protocol (``meter,device=m1 p_kw=1.5,q=2i 1602513004000000000``): one reading per field.

    Parameters
    ----------
    path_or_lines : str, PathLike or iterable of str
        A file path, or the lines themselves (a ``str`` is always a path).
    device_tag : str
        Tag holding the device id; lines without it are rejected.
    parameter_from : str
        ``"field"`` (the field key is the parameter), ``"measurement"``, or the name of a tag. With a measurement or
        tag, a line must carry a single field.
    precision : {"ns", "us", "ms", "s"}
        Unit of the timestamps. Lines without a timestamp are rejected.
    parse_strings : bool
        Read quoted string fields as numbers (``p="12.5"``); otherwise they are rejected as non-numeric.
    batch_rows : int
        At most this many lines per batch.
    encoding : str
        Text encoding of the file.

    Yields
    ------
    ReadBatch
        Readings in file order; integer fields (``2i``, ``2u``) become float64; booleans are rejected. ``#`` comment
        lines and blank lines are skipped; escapes (``\\,``, ``\\ ``, ``\\=``) are honoured.
    """
    if precision not in _NS_PER_UNIT:
        raise ValueError(f"precision={precision!r}; use one of {sorted(_NS_PER_UNIT)}")
    opts = _LpOptions(device_tag, parameter_from, precision, parse_strings)
    if isinstance(path_or_lines, str | PathLike):
        source = str(path_or_lines)
        with Path(path_or_lines).open("rb") as f:
            for block in _iter_blocks(f, 1, batch_rows, encoding, source):
                yield _lp_batch(block, source, opts)
    else:
        for block in _blocks_from_lines(path_or_lines, batch_rows):
            yield _lp_batch(block, "<lines>", opts)


# ------------------------------------------------------------------------------------------- format detection

_LONG_DEVICE_NAMES = {"device", "meter", "meter_id", "device_id", "id", "dispositivo", "contatore", "sensor"}
_LONG_VALUE_NAMES = {"value", "valore", "reading", "val"}
_LP_LINE = re.compile(r"^(?:[^\s\\]|\\.)+ (?:[^\s\\=]|\\.)+=")


def detect_format(path: str | PathLike[str]) -> Format:
    """Guess a meter file's format from its extension and first lines.

    Parquet: ``.parquet``/``.pq`` or the ``PAR1`` magic; line protocol: ``.lp``/``.line``/``.influx`` or a first data
    line like ``measurement,tag=v field=1``; CSV: long when the header names a device column (``device``, ``meter``,
    ``id``, ``dispositivo``, ...) and a value column (``value``, ``valore``, ...), wide otherwise.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".lp", ".line", ".influx"):
        return "line_protocol"
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if head.startswith(b"PAR1"):
        return "parquet"
    lines = [s.strip() for s in head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()]
    lines = [s for s in lines if s and not s.startswith("#")]
    if not lines:
        raise ValueError(f"{path}: no data in the first 64 KiB; cannot detect the format, pass format=")
    if _LP_LINE.match(lines[0]):
        return "line_protocol"
    sep = max(",;\t|", key=lines[0].count)
    header = {c.strip().lower() for c in next(csv.reader([lines[0]], delimiter=sep))}
    if header & _LONG_DEVICE_NAMES and header & _LONG_VALUE_NAMES:
        return "long_csv"
    if len(header) >= 2:
        return "wide_csv"
    raise ValueError(f"{path}: cannot tell the format from the header {lines[0]!r}; pass format=")


_READERS: dict[str, Callable[..., Iterator[ReadBatch]]] = {
    "long_csv": read_long_csv,
    "wide_csv": read_wide_csv,
    "parquet": read_parquet,
    "line_protocol": read_line_protocol,
}


def read(path: str | PathLike[str], format: Format | None = None, **options: object) -> Iterator[ReadBatch]:
    """Read a meter file with the reader of its format (given, or :func:`detect_format`); ``options`` go to it."""
    fmt = format or detect_format(path)
    if fmt not in _READERS:
        raise ValueError(f"format={fmt!r}; use one of {sorted(_READERS)}")
    return _READERS[fmt](path, **options)
