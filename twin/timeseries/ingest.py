"""Meter-data readers: long and wide CSV, Parquet and InfluxDB line protocol → batches of readings in UTC.

Every reader yields :class:`ReadBatch` objects (``docs/design/timeseries.md``, "Readings"): a ``readings`` table
(``device``, ``parameter``, ``time`` as tz-naive UTC ``datetime64[ns]``, ``value`` as float64) and a ``rejected`` table
(``source``, ``line``, ``reason``, ``raw``), so memory is bounded by ``batch_rows``, not by the file. Nothing is dropped
silently: ``rows_read == len(readings) + len(rejected)`` in every batch of every reader.

Text files are cut into blocks of whole lines, so every row keeps its exact 1-based line number. A CSV block is parsed
in up to three tiers, each taken only when the one before fails: pyarrow's multi-threaded reader with typed columns
(the fast path), the same reader with text columns and vectorised checks (a bad value somewhere in the block), and
Python's ``csv`` module (rows with the wrong number of fields, quoted newlines). Line protocol is read by
:func:`read_line_protocol` (:mod:`twin.timeseries.lineprotocol`, re-exported here); blocks, value and time parsing and
batch assembly are shared in :mod:`twin.timeseries.parse`. Device and parameter columns are pandas
``string[pyarrow]`` (no Python object per row).

Limits: a quoted CSV field may span lines only within one block (``batch_rows`` lines); thousands separators are not
understood (``"1.234,5"`` is rejected).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from twin.timeseries.lineprotocol import Precision, read_line_protocol
from twin.timeseries.parse import (
    RAW_CHARS,
    Ambiguous,
    Columns,
    LineBlock,
    Problems,
    ReadBatch,
    TimeSpec,
    add_all,
    check_tz,
    find_id_issues,
    iter_blocks,
    make_batch,
    parse_times,
    parse_values,
)

__all__ = [
    "RAW_CHARS",
    "Ambiguous",
    "Format",
    "Precision",
    "ReadBatch",
    "detect_format",
    "read",
    "read_line_protocol",
    "read_long_csv",
    "read_parquet",
    "read_wide_csv",
]

Format = Literal["long_csv", "wide_csv", "parquet", "line_protocol"]


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
        time: TimeSpec | None,
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

    def _read_arrow(self, block: LineBlock, typed: bool) -> tuple[pa.Table, np.ndarray] | None:
        table = pacsv.read_csv(pa.py_buffer(block.data), *self._options(typed))
        lines = block.row_lines(len(table))
        return None if lines is None else (table, lines)

    def parse(self, block: LineBlock) -> tuple[pa.Table, np.ndarray, list[int]]:
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

    def _parse_python(self, block: LineBlock) -> tuple[pa.Table, np.ndarray, list[int]]:
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


def _as_text(arr: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if isinstance(arr.type, pa.DictionaryType):
        arr = pc.cast(arr, arr.type.value_type)
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())


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
    check_tz(tz)
    spec = TimeSpec(time, time_format, tz, ambiguous)
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
        for block in iter_blocks(f, 2, batch_rows, encoding, source):
            table, lines, broken = parser.parse(block)
            problems = Problems(len(lines))
            add_all(problems, find_id_issues(table[device], "device id", device))
            if fixed_parameter is None:
                add_all(problems, find_id_issues(table[parameter], "parameter", parameter))
            time_ns, time_issues = parse_times(table[time], spec)
            values, value_issues = parse_values(table[value], decimal, value)
            add_all(problems, time_issues + value_issues)
            param = fixed_parameter if fixed_parameter is not None else table[parameter]
            cols = Columns(table[device], param, time_ns, values, lines)
            reason = _field_count_reason(header, sep)
            extra = (broken, [reason] * len(broken), block.raw(np.asarray(broken, dtype=np.int64)))
            yield make_batch(source, cols, problems, lambda rows, b=block, ln=lines: b.raw(ln[rows]), extra)


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
    check_tz(tz)
    spec = TimeSpec(time, time_format, tz, ambiguous)
    with Path(path).open("rb") as f:
        header = _read_header(f, sep, encoding, source)
        _require_columns(source, header, {"time": time})
        names = [c for c in header if c != time] if devices is None else list(devices)
        _require_columns(source, header, {f"devices[{i}]": d for i, d in enumerate(names)})
        if not names:
            raise ValueError(f"{source}: no device columns besides {time!r} in the header {header}")
        types = {time: _time_type(time_format)} | dict.fromkeys(names, pa.float64())
        parser = _CsvBlockParser(source, header, types, sep, decimal, spec)
        for block in iter_blocks(f, 2, max(batch_rows // len(names), 1), encoding, source):
            yield _wide_batch(source, block, parser, names, parameter, spec)


def _wide_batch(
    source: str, block: LineBlock, parser: _CsvBlockParser, names: list[str], parameter: str, spec: TimeSpec
) -> ReadBatch:
    table, lines, broken = parser.parse(block)
    n, k = len(lines), len(names)
    time_ns, time_issues = parse_times(table[spec.column], spec)
    problems = Problems(n * k)
    values = np.empty(n * k)
    for j, name in enumerate(names):
        column_values, value_issues = parse_values(table[name], parser.decimal, name)
        values[j::k] = column_values
        add_all(problems, time_issues + value_issues, at=slice(j, None, k))
    device = pa.array(names, pa.string()).take(pa.array(np.tile(np.arange(k), n)))
    cols = Columns(device, parameter, np.repeat(time_ns, k), values, np.repeat(lines, k))
    broken_cells = np.repeat(np.asarray(broken, dtype=np.int64), k)
    reasons = [f"{_field_count_reason(parser.header, parser.sep)} (device column {d!r})" for d in names] * len(broken)
    extra = (list(broken_cells), reasons, block.raw(broken_cells))
    return make_batch(source, cols, problems, lambda rows: block.raw(cols.line[rows]), extra)


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
    check_tz(tz)
    spec = TimeSpec(time, time_format, tz, ambiguous)
    file = pq.ParquetFile(path)
    header = file.schema_arrow.names
    wanted = {"device": device, "time": time, "value": value} | ({} if fixed_parameter else {"parameter": parameter})
    _require_columns(source, header, wanted)
    first_row = 1
    for batch in file.iter_batches(batch_size=batch_rows, columns=list(dict.fromkeys(wanted.values()))):
        n = batch.num_rows
        dev = _as_text(batch.column(device))
        problems = Problems(n)
        add_all(problems, find_id_issues(dev, "device id", device))
        param: pa.Array | str = fixed_parameter if fixed_parameter is not None else _as_text(batch.column(parameter))
        if not isinstance(param, str):
            add_all(problems, find_id_issues(param, "parameter", parameter))
        time_ns, time_issues = parse_times(batch.column(time), spec)
        values, value_issues = parse_values(batch.column(value), decimal, value)
        add_all(problems, time_issues + value_issues)
        lines = first_row + np.arange(n, dtype=np.int64)
        cols = Columns(dev, param, time_ns, values, lines)

        def raw(rows: np.ndarray, b: pa.RecordBatch = batch) -> list[str]:
            return [str(r)[:RAW_CHARS] for r in b.take(pa.array(rows, pa.int64())).to_pylist()]

        yield make_batch(source, cols, problems, raw)
        first_row += n


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
