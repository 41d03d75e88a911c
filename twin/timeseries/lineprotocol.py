"""InfluxDB line protocol reader: ``measurement,tag=v field=1.5,other=2i 1602513004000000000`` → readings.

One reading per field; :func:`read_line_protocol` yields :class:`~twin.timeseries.parse.ReadBatch` objects like the
other readers of :mod:`twin.timeseries.ingest` (which re-exports it). A block of lines goes the fast way when it can:
pyarrow splits ``series fields timestamp``, series keys (``measurement,tags``) are split once per distinct key, and
fields are split vectorised. Only lines with escapes, quotes, comments or stray whitespace go through an exact
Python parser (:func:`_lp_parse_line`), and lines that parser refuses are rejected with the reason and their line.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from twin.timeseries.parse import (
    Columns,
    LineBlock,
    Problems,
    ReadBatch,
    add_all,
    find_id_issues,
    is_text,
    iter_blocks,
    make_batch,
    parse_numbers,
    to_mask,
)

__all__ = ["Precision", "read_line_protocol"]

Precision = Literal["ns", "us", "ms", "s"]

_NS_PER_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

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
    bad = ~to_mask(pc.greater(pc.binary_length(measurement), 0))
    bad[parent[~_is_key_value(tags)]] = True
    found = {}
    for name in tag_names:
        hit = to_mask(pc.starts_with(tags, name + "="))
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


def _whole_lines(block: LineBlock, source: str) -> pa.Array:
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


def _lp_odd_lines(block: LineBlock) -> tuple[np.ndarray, np.ndarray]:
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


def _join_lines(block: LineBlock, keep: np.ndarray) -> bytes:
    """The kept lines of the block, newline-terminated, copied run by run."""
    if keep.all():
        return block.data
    starts, ends = block.line_bounds()
    kept = np.flatnonzero(keep)
    breaks = np.flatnonzero(np.diff(kept) > 1)
    firsts, lasts = kept[np.r_[0, breaks + 1]], kept[np.r_[breaks, len(kept) - 1]]
    return b"\n".join(block.data[starts[f] : ends[e]] for f, e in zip(firsts, lasts, strict=True)) + b"\n"


def _lp_parse_lines(
    block: LineBlock, source: str, tag_names: list[str]
) -> tuple[list[_LpFields], list[int], list[str]]:
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


def _lp_check(g: _LpFields, opts: _LpOptions) -> tuple[Columns, Problems]:
    """Turn parsed fields into columns and the reasons to reject some of them."""
    problems = Problems(len(g.line))
    device = g.tags[opts.device_tag]
    problems.add(to_mask(pc.is_null(device)), f"no tag {opts.device_tag!r} (the device id); pass device_tag=")
    add_all(problems, find_id_issues(device, "device id", opts.device_tag))
    if opts.parameter_from == "field":
        parameter = g.key
    else:
        parameter = g.measurement if opts.parameter_from == "measurement" else g.tags[opts.parameter_from]
        problems.add(to_mask(pc.is_null(parameter)), f"no tag {opts.parameter_from!r} (parameter_from) on the line")
        several = f"the line has several fields; parameter_from={opts.parameter_from!r} takes one: use 'field'"
        problems.add(g.n_fields > 1, several)
    add_all(problems, find_id_issues(parameter, "parameter", opts.parameter_from))
    time_ns, time_issues = _lp_times(g.timestamp, opts.precision)
    values, value_issues = _lp_values(g, opts.parse_strings)
    add_all(problems, time_issues + value_issues)
    return Columns(device, parameter, time_ns, values, g.line), problems


def _lp_times(ts: pa.Array, precision: Precision) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """Timestamps (int64, or text from the exact parser) in ``precision`` units → int64 UTC nanoseconds."""
    missing = to_mask(pc.is_null(ts))
    if is_text(ts):
        with contextlib.suppress(pa.ArrowInvalid):
            ts = pc.cast(ts, pa.int64())
    if is_text(ts):
        missing |= to_mask(pc.equal(pc.binary_length(ts), 0))
        ok = to_mask(pc.match_substring_regex(ts, r"^[+-]?\d+$"))
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
    suffix = to_mask(pc.ends_with(text, "i")) | to_mask(pc.ends_with(text, "u"))
    if suffix.any():
        integer = suffix & to_mask(pc.match_substring_regex(text, _LP_INTEGER))
        text = pc.if_else(pa.array(integer), pc.utf8_slice_codeunits(text, 0, -1), text)
    values, ok = parse_numbers(text, ".")
    boolean = ~ok & ~g.quoted
    if boolean.any():
        boolean &= to_mask(pc.match_substring_regex(g.text, _LP_BOOLEAN))
    string = "string field: not a number; pass parse_strings=True to read numbers written in quotes"
    issues = [
        (g.quoted & (not parse_strings), string),
        (boolean, "boolean field: not a numeric reading"),
        (~ok, "field value is not a number"),
        (np.isnan(values), "field value is NaN: no value"),
        (np.isinf(values), "field value is not finite"),
    ]
    return values, issues


def _merge(parts: list[tuple[Columns, Problems]]) -> tuple[Columns, Problems]:
    """Concatenate columns and problems of several groups, in file-line order."""
    if len(parts) == 1:
        return parts[0]

    def cat(arrays: list) -> pa.ChunkedArray:
        chunks = [c for a in arrays for c in (a.chunks if isinstance(a, pa.ChunkedArray) else [a])]
        return pa.chunked_array(chunks, type=pa.string())

    line = np.concatenate([c.line for c, _ in parts])
    order = np.argsort(line, kind="stable")
    take = pa.array(order)
    cols = Columns(
        pc.take(cat([c.device for c, _ in parts]), take), pc.take(cat([c.parameter for c, _ in parts]), take),
        np.concatenate([c.time_ns for c, _ in parts])[order], np.concatenate([c.value for c, _ in parts])[order],
        line[order],
    )  # fmt: skip
    problems = Problems(len(line))
    problems.bad = np.concatenate([p.bad for _, p in parts])[order]
    problems.reason = np.concatenate([p.reason for _, p in parts])[order]
    return cols, problems


def _lp_batch(block: LineBlock, source: str, opts: _LpOptions) -> ReadBatch:
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
    empty = Columns(
        pa.array([], pa.string()), pa.array([], pa.string()), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    )
    cols, problems = _merge([_lp_check(g, opts) for g in groups] or [(empty, Problems(0))])
    extra = (broken, reasons, block.raw(np.asarray(broken, dtype=np.int64)))
    return make_batch(source, cols, problems, lambda rows: block.raw(cols.line[rows]), extra)


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


def _blocks_from_lines(lines: Iterable[str], max_lines: int) -> Iterator[LineBlock]:
    chunk: list[str] = []
    first = 1
    for line in lines:
        chunk.append(line.rstrip("\r\n"))
        if len(chunk) == max_lines:
            yield LineBlock(("\n".join(chunk) + "\n").encode(), first)
            first, chunk = first + len(chunk), []
    if chunk:
        yield LineBlock(("\n".join(chunk) + "\n").encode(), first)


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
            for block in iter_blocks(f, 1, batch_rows, encoding, source):
                yield _lp_batch(block, source, opts)
    else:
        for block in _blocks_from_lines(path_or_lines, batch_rows):
            yield _lp_batch(block, "<lines>", opts)
