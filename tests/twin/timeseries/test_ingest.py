"""Meter-data readers: CSV (long, wide), Parquet, line protocol; UTC conversion, rejected rows and line numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from twin.timeseries.ingest import (
    ReadBatch,
    detect_format,
    read,
    read_line_protocol,
    read_long_csv,
    read_parquet,
    read_wide_csv,
)

ITALIAN = {"device": "Dispositivo", "parameter": "Parametro", "time": "Data", "value": "Valore"}
ITALIAN_FORMAT = {"decimal": ",", "time_format": "%H:%M:%S %d/%m/%Y"}


def collect(batches: object) -> tuple[pd.DataFrame, pd.DataFrame, list[ReadBatch]]:
    """All readings and rejected rows of a reader; checks the accounting of every batch."""
    batches = list(batches)
    for b in batches:
        assert b.rows_read == len(b.readings) + len(b.rejected)
        assert list(b.readings.columns) == ["device", "parameter", "time", "value"]
        assert list(b.rejected.columns) == ["source", "line", "reason", "raw"]
        assert b.readings["time"].dtype == np.dtype("datetime64[ns]")
        assert b.readings["value"].dtype == np.float64
    readings = pd.concat([b.readings for b in batches], ignore_index=True)
    rejected = pd.concat([b.rejected for b in batches], ignore_index=True)
    return readings, rejected, batches


def expected(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    """Readings frame from (device, parameter, UTC time, value) tuples."""
    device, parameter, time, value = zip(*rows, strict=True)
    return pd.DataFrame({
        "device": pd.array(device, dtype="string[pyarrow]"),
        "parameter": pd.array(parameter, dtype="string[pyarrow]"),
        "time": pd.to_datetime(list(time), format="ISO8601").as_unit("ns"),
        "value": np.asarray(value, dtype=np.float64),
    })  # fmt: skip


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ---------------------------------------------------------------------------------------------------- long CSV


def test_italian_export_decimal_comma_custom_format_and_rome_time(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "export.csv",
        "Dispositivo,Parametro,Data,Valore\n"
        'CONT-001,A+,16:30:04 12/10/2020,"12,8900"\n'
        'CONT-001,A+,16:45:04 12/10/2020,"13,0000"\n'
        'CONT-002,R+,16:30:04 12/01/2020,"-0,5"\n',
    )
    readings, rejected, _ = collect(read_long_csv(path, **ITALIAN, **ITALIAN_FORMAT, tz="Europe/Rome"))
    want = expected([
        ("CONT-001", "A+", "2020-10-12 14:30:04", 12.89),  # CEST = UTC+2
        ("CONT-001", "A+", "2020-10-12 14:45:04", 13.0),
        ("CONT-002", "R+", "2020-01-12 15:30:04", -0.5),  # CET = UTC+1
    ])  # fmt: skip
    pd.testing.assert_frame_equal(readings, want)
    assert rejected.empty


def test_bad_rows_are_rejected_with_line_numbers_and_reasons(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.csv",
        "Dispositivo,Parametro,Data,Valore\n"
        'CONT-001,A+,16:30:04 12/10/2020,"12,8900"\n'  # 2 ok
        'CONT-001,A+,16:45:04 12/10/2020,"abc"\n'  # 3 value
        ',A+,16:45:04 12/10/2020,"1,5"\n'  # 4 device
        'CONT-002,A+,99:45:04 12/10/2020,"1,5"\n'  # 5 time
        "CONT-002,A+\n"  # 6 fields
        "\n"  # 7 blank: not a row
        'CONT-003,A+,17:00:00 12/10/2020,""\n'  # 8 empty value
        'CONT-003,,17:00:00 12/10/2020,"1"\n'  # 9 parameter
        'CONT-003,A+,17:15:00 12/10/2020,"1.5"\n',  # 10 dot with decimal=','
    )
    readings, rejected, batches = collect(read_long_csv(path, **ITALIAN, **ITALIAN_FORMAT))
    assert readings["device"].tolist() == ["CONT-001"]
    assert rejected["line"].tolist() == [3, 4, 5, 6, 8, 9, 10]
    assert (rejected["source"] == str(path)).all()
    reasons = rejected["reason"].tolist()
    assert "'Valore' is not a number" in reasons[0]
    assert "decimal" in reasons[0]
    assert "'Dispositivo' is empty" in reasons[1]
    assert "does not match time_format '%H:%M:%S %d/%m/%Y'" in reasons[2]
    assert "expected 4 fields" in reasons[3]
    assert "'Valore' is empty" in reasons[4]
    assert "'Parametro' is empty" in reasons[5]
    assert "'Valore' is not a number" in reasons[6]
    assert rejected["raw"].tolist()[:2] == ['CONT-001,A+,16:45:04 12/10/2020,"abc"', ',A+,16:45:04 12/10/2020,"1,5"']
    assert sum(b.rows_read for b in batches) == 8


def test_dst_changes_in_rome(tmp_path: Path) -> None:
    text = (
        "device,time,value\n"
        "m,2020-03-29 01:30:00,1\n"  # CET → 00:30Z
        "m,2020-03-29 02:30:00,2\n"  # does not exist (clocks jump 02:00 → 03:00)
        "m,2020-03-29 03:30:00,3\n"  # CEST → 01:30Z
        "m,2020-10-25 01:30:00,4\n"  # CEST → 23:30Z the day before
        "m,2020-10-25 02:30:00,5\n"  # twice: 00:30Z (CEST) and 01:30Z (CET)
        "m,2020-10-25 03:30:00,6\n"  # CET → 02:30Z
    )
    path = write(tmp_path, "dst.csv", text)
    readings, rejected, _ = collect(read_long_csv(path, fixed_parameter="p_kw", tz="Europe/Rome"))
    assert readings["time"].astype(str).tolist() == [
        "2020-03-29 00:30:00", "2020-03-29 01:30:00", "2020-10-24 23:30:00", "2020-10-25 02:30:00",
    ]  # fmt: skip
    assert rejected["line"].tolist() == [3, 6]
    assert "does not exist in Europe/Rome" in rejected["reason"][0]
    assert "ambiguous in Europe/Rome" in rejected["reason"][1]
    assert "ambiguous='earliest'" in rejected["reason"][1]
    for choice, utc in (("earliest", "2020-10-25 00:30:00"), ("latest", "2020-10-25 01:30:00")):
        readings, rejected, _ = collect(read_long_csv(path, fixed_parameter="p", tz="Europe/Rome", ambiguous=choice))
        assert readings.loc[readings["value"] == 5, "time"].astype(str).tolist() == [utc]
        assert rejected["line"].tolist() == [3]  # the non-existent time is never guessed


def test_iso_times_with_offsets_are_instants_and_naive_ones_local(tmp_path: Path) -> None:
    clean = "device,parameter,time,value\nm,p,2020-10-12T16:30:04Z,1\nm,p,2020-10-12T18:30:04+02:00,2\n"
    readings, _, _ = collect(read_long_csv(write(tmp_path, "z.csv", clean), tz="Europe/Rome"))
    assert readings["time"].astype(str).tolist() == ["2020-10-12 16:30:04"] * 2
    mixed = clean + "m,p,2020-10-12 18:30:04,3\nm,p,not a time,4\n"
    readings, rejected, _ = collect(read_long_csv(write(tmp_path, "mixed.csv", mixed), tz="Europe/Rome"))
    assert readings["time"].astype(str).tolist() == ["2020-10-12 16:30:04"] * 3
    assert rejected["line"].tolist() == [5]
    assert "not an ISO 8601 time" in rejected["reason"][0]


def test_batches_keep_line_numbers_and_are_bounded(tmp_path: Path) -> None:
    rows = [f"m{i},p,2020-01-01 00:{i:02d}:00,{i}" for i in range(20)]
    rows[12] = "m12,p,2020-01-01 00:12:00,oops"
    path = write(tmp_path, "many.csv", "device,parameter,time,value\n" + "\n".join(rows))  # no final newline
    readings, rejected, batches = collect(read_long_csv(path, batch_rows=3))
    assert all(b.rows_read <= 3 for b in batches)
    assert sum(b.rows_read for b in batches) == 20
    assert rejected["line"].tolist() == [14]
    assert readings["value"].tolist() == [float(i) for i in range(20) if i != 12]


def test_quoted_newline_and_sep_options(tmp_path: Path) -> None:
    text = 'meter;register;stamp;kwh\n"m\n1";A+;2020-01-01 00:00;1,5\nm2;A+;2020-01-01 00:15;x\n'
    path = write(tmp_path, "semi.csv", text)
    options = {"device": "meter", "parameter": "register", "time": "stamp", "value": "kwh", "sep": ";", "decimal": ","}
    readings, rejected, _ = collect(read_long_csv(path, **options))
    assert readings["device"].tolist() == ["m\n1"]
    assert readings["value"].tolist() == [1.5]
    assert rejected["line"].tolist() == [4]  # the quoted newline spans lines 2-3


def test_latin1_encoding_and_undecodable_bytes(tmp_path: Path) -> None:
    text = "device,parameter,time,value\nZähler-1,p,2020-01-01,1\n"
    path = write(tmp_path, "latin.csv", text, encoding="latin-1")
    readings, _, _ = collect(read_long_csv(path, encoding="latin-1"))
    assert readings["device"].tolist() == ["Zähler-1"]
    with pytest.raises(ValueError, match=r"latin\.csv:2: .*not valid UTF-8.*encoding="):
        collect(read_long_csv(path))


def test_bom_crlf_and_trailing_blank_lines(tmp_path: Path) -> None:
    text = "\ufeffdevice,parameter,time,value\r\nm1,p,2020-01-01,1\r\n\r\nm2,p,2020-01-01,x\r\n\r\n\r\n"
    readings, rejected, _ = collect(read_long_csv(write(tmp_path, "win.csv", text)))
    pd.testing.assert_frame_equal(readings, expected([("m1", "p", "2020-01-01", 1.0)]))
    assert rejected["line"].tolist() == [4]
    assert rejected["raw"].tolist() == ["m2,p,2020-01-01,x"]


def test_missing_column_names_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "meter,time,value\nm,2020-01-01,1\n")
    with pytest.raises(ValueError, match=r"no column 'device'.*pass device="):
        collect(read_long_csv(path))
    with pytest.raises(ValueError, match=r"no column 'parameter'.*pass parameter="):
        collect(read_long_csv(path, device="meter"))
    readings, _, _ = collect(read_long_csv(path, device="meter", fixed_parameter="A+"))
    pd.testing.assert_frame_equal(readings, expected([("m", "A+", "2020-01-01", 1.0)]))
    with pytest.raises(ValueError, match="unknown time zone"):
        collect(read_long_csv(path, device="meter", fixed_parameter="A+", tz="Mars/Olympus"))


@pytest.mark.parametrize(
    ("noise", "bad_lines"),
    [
        (["m,A+,2020-01-01,not-a-number"], [102]),  # typed parse fails: text columns, vectorised checks
        (["m,A+,2020-01-01,not-a-number", "", "only,three,fields"], [102, 104]),  # Python csv module
    ],
)
def test_fast_and_careful_paths_agree(tmp_path: Path, noise: list[str], bad_lines: list[int]) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=200).round(6)
    rows = [f"m{i % 7},A+,2020-01-01T{i // 60:02d}:{i % 60:02d}:00,{v}" for i, v in enumerate(values)]
    header = "device,parameter,time,value\n"
    clean, _, _ = collect(read_long_csv(write(tmp_path, "clean.csv", header + "\n".join(rows) + "\n")))
    assert clean["value"].tolist() == values.tolist()
    text = header + "\n".join([*rows[:100], *noise, *rows[100:]]) + "\n"
    careful, rejected, _ = collect(read_long_csv(write(tmp_path, "noisy.csv", text)))
    pd.testing.assert_frame_equal(careful, clean)
    assert rejected["line"].tolist() == bad_lines


# ---------------------------------------------------------------------------------------------------- wide CSV


def test_wide_csv(tmp_path: Path) -> None:
    text = "time;m1;m2;m3\n2020-01-01 01:00;1,5;2;7\n2020-01-01 01:15;;3;8\nbad;1;2;3\n"
    path = write(tmp_path, "wide.csv", text)
    readings, rejected, batches = collect(
        read_wide_csv(path, parameter="p_kw", devices=["m1", "m2"], sep=";", decimal=",", tz="Europe/Rome")
    )
    want = expected([
        ("m1", "p_kw", "2020-01-01 00:00", 1.5),
        ("m2", "p_kw", "2020-01-01 00:00", 2.0),
        ("m2", "p_kw", "2020-01-01 00:15", 3.0),
    ])  # fmt: skip
    pd.testing.assert_frame_equal(readings, want)
    assert rejected["line"].tolist() == [3, 4, 4]  # the empty cell, then both cells of the bad-time row
    assert "'m1' is empty" in rejected["reason"][0]
    assert sum(b.rows_read for b in batches) == 6  # cells of the two device columns read
    all_devices, _, _ = collect(read_wide_csv(path, parameter="p_kw", sep=";", decimal=","))
    assert sorted(set(all_devices["device"])) == ["m1", "m2", "m3"]
    with pytest.raises(ValueError, match=r"no column 'm9'.*devices\[0\]"):
        collect(read_wide_csv(path, parameter="p_kw", devices=["m9"], sep=";"))


# ------------------------------------------------------------------------------------------------------ Parquet


def test_parquet_typed_and_text_columns(tmp_path: Path) -> None:
    table = pa.table({
        "meter": pa.array([101, 102, None, 104], pa.int64()),
        "register": ["A+", "A+", "A+", "A+"],
        "stamp": pa.array([0, 10**9, 2 * 10**9, 3 * 10**9], pa.timestamp("ns", "Europe/Rome")),
        "kwh": ["1,5", "x", "2", "4"],
    })  # fmt: skip
    path = tmp_path / "m.parquet"
    pq.write_table(table, path, row_group_size=2)
    columns = {"device": "meter", "parameter": "register", "time": "stamp", "value": "kwh"}
    readings, rejected, batches = collect(read_parquet(path, **columns, decimal=",", batch_rows=2))
    pd.testing.assert_frame_equal(
        readings, expected([("101", "A+", "1970-01-01 00:00:00", 1.5), ("104", "A+", "1970-01-01 00:00:03", 4.0)])
    )
    assert rejected["line"].tolist() == [2, 3]  # 1-based row numbers
    assert "'kwh' is not a number" in rejected["reason"][0]
    assert "'meter' is empty" in rejected["reason"][1]
    assert "'meter': 102" in rejected["raw"][0]
    assert [b.rows_read for b in batches] == [2, 2]


def test_parquet_naive_times_are_local(tmp_path: Path) -> None:
    table = pa.table({
        "device": ["m", "m"],
        "time": pa.array(np.array(["2020-07-01T12:00:00", "2020-03-29T02:30:00"], "datetime64[s]")),
        "value": pa.array([1, 2], pa.int32()),
    })  # fmt: skip
    path = tmp_path / "naive.parquet"
    pq.write_table(table, path)
    readings, rejected, _ = collect(read_parquet(path, fixed_parameter="p", tz="Europe/Rome"))
    pd.testing.assert_frame_equal(readings, expected([("m", "p", "2020-07-01 10:00", 1.0)]))
    assert "does not exist in Europe/Rome" in rejected["reason"][0]


# ------------------------------------------------------------------------------------------------ line protocol


LINES = [
    "# exported from the head end",
    "meter,device=m1,site=north p_kw=1.5,q_kvar=2i 1602513004000000000",
    "meter,device=m\\ 2\\,b\\=c,site=a\\ b p\\ kw=-3e2 1602513004000000001",
    'meter,device=m3 note="a b, c",s="12.5",b=true 1602513004000000002',
    "meter,device=m4 p_kw=1.5",
    "",
    "meter p_kw=1 1",
    "meter,device=m5 p_kw=abc 1",
    "meter,device=m6 p_kw=1 99999999999999999999",
    "broken line",
    "meter,device=m7 u=7u,f=2. 1602513004000000003",
]


def test_line_protocol_escapes_integers_and_rejects() -> None:
    readings, rejected, batches = collect(read_line_protocol(LINES))
    want = expected([
        ("m1", "p_kw", "2020-10-12 14:30:04", 1.5),
        ("m1", "q_kvar", "2020-10-12 14:30:04", 2.0),
        ("m 2,b=c", "p kw", "2020-10-12 14:30:04.000000001", -300.0),
        ("m7", "u", "2020-10-12 14:30:04.000000003", 7.0),
        ("m7", "f", "2020-10-12 14:30:04.000000003", 2.0),
    ])  # fmt: skip
    pd.testing.assert_frame_equal(readings, want)
    reasons = dict(zip(rejected["line"].astype(str) + ":" + rejected.groupby("line").cumcount().astype(str),
                       rejected["reason"], strict=True))  # fmt: skip
    assert "string field" in reasons["4:0"]
    assert "parse_strings=True" in reasons["4:0"]
    assert "string field" in reasons["4:1"]
    assert "boolean field" in reasons["4:2"]
    assert "no timestamp" in reasons["5:0"]
    assert "no tag 'device'" in reasons["7:0"]
    assert "not a number" in reasons["8:0"]
    assert "does not fit in 64 bits" in reasons["9:0"]
    assert "not valid line protocol" in reasons["10:0"]
    assert batches[0].source == "<lines>"
    assert sum(b.rows_read for b in batches) == 13  # fields of parsed lines + the unparsable line


def test_line_protocol_parse_strings_precision_and_parameter_sources(tmp_path: Path) -> None:
    readings, _, _ = collect(read_line_protocol(['m,device=a s="12.5" 1602513004'], parse_strings=True, precision="s"))
    pd.testing.assert_frame_equal(readings, expected([("a", "s", "2020-10-12 14:30:04", 12.5)]))
    path = write(tmp_path, "x.lp", "p_kw,device=a,phase=L1 value=1 1602513004000\np_kw,device=b,phase=L2 v=2,w=3 1\n")
    readings, rejected, _ = collect(read_line_protocol(path, parameter_from="measurement", precision="ms"))
    pd.testing.assert_frame_equal(readings, expected([("a", "p_kw", "2020-10-12 14:30:04", 1.0)]))
    assert rejected["line"].tolist() == [2, 2]
    assert "several fields" in rejected["reason"][0]
    readings, _, _ = collect(read_line_protocol(path, parameter_from="phase", device_tag="device", precision="ms"))
    assert readings["parameter"].tolist() == ["L1"]
    with pytest.raises(ValueError, match="precision"):
        collect(read_line_protocol(path, precision="m"))


def test_line_protocol_file_fast_path_matches_exact_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = [f"meter,device=m{i % 13},site=s{i % 3} a={v},b={i}i {1_600_000_000_000_000_000 + i}" for i, v in
            enumerate(rng.normal(size=300).round(5))]  # fmt: skip
    fast_path = write(tmp_path, "fast.lp", "\n".join(rows) + "\n")
    fast, rejected, batches = collect(read_line_protocol(fast_path, batch_rows=64))
    assert rejected.empty
    assert len(batches) == 5
    assert len(fast) == 600
    slow_path = write(tmp_path, "slow.lp", "\n".join(["# forces the line-by-line path", *rows]) + "\n")
    slow, _, _ = collect(read_line_protocol(slow_path, batch_rows=64))
    pd.testing.assert_frame_equal(slow, fast)
    exact, _, _ = collect(read_line_protocol([r.replace("site=", "si\\te=") for r in rows]))
    pd.testing.assert_frame_equal(exact, fast)  # every line through the exact parser
    assert fast["value"].iloc[1::2].tolist() == [float(i) for i in range(300)]


def test_line_protocol_whitespace_crlf_blank_lines_and_encoding(tmp_path: Path) -> None:
    text = "m,device=a p=1 1\r\n\r\n  m,device=b p=2 2\r\nm,device=c p=3 3   \r\n# note\r\nm,device=d p=4\r\n"
    readings, rejected, _ = collect(read_line_protocol(write(tmp_path, "win.lp", text)))
    assert readings["device"].tolist() == ["a", "b", "c"]
    assert readings["time"].astype("int64").tolist() == [1, 2, 3]
    assert rejected["line"].tolist() == [6]
    assert rejected["raw"].tolist() == ["m,device=d p=4"]
    for name, data in (("plain.lp", b"m,device=\xff p=1 1\n"), ("odd.lp", b"m,device=a p=1 1\nm,d\\ x=\xff p=1 1\n")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=rf"{name}:\d: bytes are not valid UTF-8"):
            collect(read_line_protocol(path))


# ------------------------------------------------------------------------------------------ detection, dispatch


def test_detect_format_and_read(tmp_path: Path) -> None:
    long_path = write(tmp_path, "a.csv", 'Dispositivo,Parametro,Data,Valore\nm,A+,16:30:04 12/10/2020,"1,5"\n')
    wide_path = write(tmp_path, "b.csv", "time;m1;m2\n2020-01-01;1;2\n")
    lp_path = write(tmp_path, "c.txt", "# c\nmeter,device=m1 p=1 1\n")
    pq_path = tmp_path / "d.bin"
    stamps = pa.array([0], pa.timestamp("ms"))
    pq.write_table(pa.table({"device": ["m"], "parameter": ["p"], "time": stamps, "value": [1.0]}), pq_path)
    assert [detect_format(p) for p in (long_path, wide_path, lp_path, pq_path)] == [
        "long_csv", "wide_csv", "line_protocol", "parquet",
    ]  # fmt: skip
    readings, _, _ = collect(read(long_path, **ITALIAN, **ITALIAN_FORMAT))
    assert readings["value"].tolist() == [1.5]
    readings, _, _ = collect(read(wide_path, parameter="p_kw", sep=";"))
    assert readings["device"].tolist() == ["m1", "m2"]
    readings, _, _ = collect(read(lp_path))
    assert readings["device"].tolist() == ["m1"]
    readings, _, _ = collect(read(pq_path))
    pd.testing.assert_frame_equal(readings, expected([("m", "p", "1970-01-01", 1.0)]))
    int_times = tmp_path / "e.parquet"
    pq.write_table(pa.table({"device": ["m"], "parameter": ["p"], "time": [0], "value": [1.0]}), int_times)
    with pytest.raises(TypeError, match="'time' has type int64"):
        collect(read(int_times))
    with pytest.raises(ValueError, match="format="):
        collect(read(long_path, format="xml"))
