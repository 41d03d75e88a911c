"""InfluxDB 1.x: the local test server, line-protocol writing and paged reading (round trips through a real influxd)."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request

import numpy as np
import pandas as pd
import pytest

from twin.timeseries.influx import InfluxServer, create_database, read_influx, to_line_protocol, write_points
from twin.timeseries.ingest import read_line_protocol

SORT = ["time", "device", "parameter"]


def sample_readings(n: int, n_devices: int, seed: int = 0) -> pd.DataFrame:
    """Readings with awkward ids (spaces, commas, equals), two parameters and many devices per time."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    device = np.array([f"m {d},x=y" if d % 5 == 0 else f"meter-{d:04d}" for d in range(n_devices)])[i % n_devices]
    return pd.DataFrame({
        "device": pd.array(device, dtype="string[pyarrow]"),
        "parameter": pd.array(np.where(i % 3 == 0, "p kw", "A+"), dtype="string[pyarrow]"),
        "time": np.datetime64("2020-10-12T14:30:00", "ns") + (i // n_devices) * np.timedelta64(15, "m"),
        "value": rng.normal(size=n) * 10.0 ** rng.integers(-6, 9, size=n),
    })  # fmt: skip


def collect(batches: object) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    batches = list(batches)
    for b in batches:
        assert b.rows_read == len(b.readings) + len(b.rejected)
    readings = pd.concat([b.readings for b in batches], ignore_index=True)
    rejected = pd.concat([b.rejected for b in batches], ignore_index=True)
    return readings, rejected, batches


def post_lines(url: str, db: str, text: str) -> None:
    query = urllib.parse.urlencode({"db": db, "precision": "ns"})
    with urllib.request.urlopen(urllib.request.Request(f"{url}/write?{query}", data=text.encode())) as response:
        assert response.status == 204


def test_line_protocol_writer_and_reader_agree() -> None:
    readings = sample_readings(300, 11)
    lines = to_line_protocol(readings).to_pylist()
    head, value, stamp = re.split(r"(?<!\\) ", lines[0])
    assert head == "meter,device=m\\ 0\\,x\\=y"
    assert value.startswith("p\\ kw=")
    assert float(value.removeprefix("p\\ kw=")) == readings["value"][0]
    assert stamp == "1602513000000000000"
    parsed = pd.concat([b.readings for b in read_line_protocol(lines)], ignore_index=True)
    pd.testing.assert_frame_equal(parsed, readings)


def test_writer_refuses_values_influx_cannot_store() -> None:
    readings = sample_readings(4, 2)
    readings.loc[2, "value"] = np.nan
    with pytest.raises(ValueError, match=r"1 values are NaN or infinite \(first at row 2\)"):
        to_line_protocol(readings)


def test_round_trip_through_influxdb(influx: InfluxServer) -> None:
    readings = sample_readings(5000, 37)
    assert write_points(influx.url, "round_trip", readings, writers=4, batch=700) == len(readings)
    for chunk_size in (100_000, 1000, 10):  # one page; pages cut inside a time; times larger than a page
        got, rejected, batches = collect(
            read_influx(influx.url, "round_trip", measurement="meter", chunk_size=chunk_size)
        )
        assert rejected.empty
        assert all(b.rows_read <= max(chunk_size, 37) for b in batches)
        assert got["time"].is_monotonic_increasing
        want = readings.sort_values(SORT, ignore_index=True)
        pd.testing.assert_frame_equal(got.sort_values(SORT, ignore_index=True), want)


def test_time_range_and_parameter_sources(influx: InfluxServer) -> None:
    readings = sample_readings(60, 6).assign(parameter=pd.array(["p_kw"] * 60, dtype="string[pyarrow]"))
    write_points(influx.url, "ranges", readings, measurement="p_kw")
    start, end = readings["time"].iloc[12], readings["time"].iloc[36]
    got, _, _ = collect(read_influx(influx.url, "ranges", measurement="p_kw", start=start, end=end, chunk_size=7))
    want = readings[(readings["time"] >= start) & (readings["time"] < end)]
    pd.testing.assert_frame_equal(got.sort_values(SORT, ignore_index=True), want.sort_values(SORT, ignore_index=True))
    aware_start = pd.Timestamp(start).tz_localize("UTC").tz_convert("Europe/Rome")
    got, _, _ = collect(read_influx(influx.url, "ranges", measurement="p_kw", start=aware_start, end=end))
    assert len(got) == len(want)
    got, rejected, _ = collect(read_influx(influx.url, "ranges", measurement="p_kw", parameter_from="measurement"))
    assert rejected.empty
    pd.testing.assert_frame_equal(
        got.sort_values(SORT, ignore_index=True), readings.sort_values(SORT, ignore_index=True)
    )


def test_non_numeric_fields_and_missing_tags_are_rejected(influx: InfluxServer) -> None:
    create_database(influx.url, "mixed")
    post_lines(
        influx.url,
        "mixed",
        "meter,device=a p=1.5 1000\n"
        'meter,device=a note="hello" 2000\n'
        "meter,site=x p=2 3000\n"
        "meter,device=b p=1,k=2i,q=true 4000\n",
    )
    got, rejected, batches = collect(read_influx(influx.url, "mixed", measurement="meter"))
    assert got[["device", "parameter", "value"]].to_numpy().tolist() == [
        ["a", "p", 1.5],
        ["b", "k", 2.0],
        ["b", "p", 1.0],
    ]
    assert got["time"].astype("int64").tolist() == [1000, 4000, 4000]
    assert rejected["reason"].tolist() == [
        "field value is not a number", "no tag 'device' (the device id)", "field value is not a number",
    ]  # fmt: skip
    assert (rejected["line"] == -1).all()
    assert '"note": "hello"' in rejected["raw"][0]
    assert sum(b.rows_read for b in batches) == 6
    _, rejected, _ = collect(read_influx(influx.url, "mixed", measurement="meter", parameter_from="measurement"))
    assert rejected["reason"].str.contains("several fields").sum() == 2
    with pytest.raises(RuntimeError, match="database not found"):
        collect(read_influx(influx.url, "no_such_db", measurement="meter"))


def test_server_listens_on_loopback_only_and_stops() -> None:
    with InfluxServer() as server:
        config = server.config_path.read_text()
        binds = re.findall(r'bind-address = "([^"]+)"', config)
        assert len(binds) == 3
        assert all(b.startswith("127.0.0.1:") for b in binds)
        assert "reporting-disabled = true" in config
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{server.url}/ping") as response:
            assert response.status == 204
        url = server.url
    with pytest.raises(OSError, match="refused"):
        urllib.request.urlopen(f"{url}/ping", timeout=2)


def test_missing_influxd_says_how_to_install() -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install influxdb"), InfluxServer(binary="no-such-influxd"):
        pass
