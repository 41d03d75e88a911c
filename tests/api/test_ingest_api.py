"""InfluxDB-compatible ingest over HTTP (/write, /api/v2/write): stored rows counted in the store, no loss."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.api.conftest import LiveServer
from twin.timeseries.store import Store

T0 = pd.Timestamp("2016-06-01T00:15:00")  # the slot after the demo store's last one


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        yield c


def _lines(devices: list[str], steps: int, unit_ns: int, field: str = "p_kw") -> list[str]:
    out = []
    for d in devices:
        for k in range(steps):
            t = (T0 + k * pd.Timedelta("15min")).value // unit_ns
            out.append(f"meter,device={d},site=x {field}={k + 0.5},q_kvar={k}i {t}")
    return out


def _count(store_path: object, devices: list[str], variable: str) -> int:
    store = Store.open(store_path, mode="r")  # type: ignore[arg-type]
    ds = store.dataset("measurements")
    ids = store.meter_ids(devices)
    assert set(ids) <= set(ds["meter"].to_numpy()), "every sent device is in the store"
    return int(np.isfinite(ds[variable].sel(meter=list(ids)).to_numpy()).sum())


def test_write_v1_stores_every_reading(client: httpx.Client, live_server: LiveServer) -> None:
    devices = [f"HTTP-V1-{i:03d}" for i in range(20)]
    lines = _lines(devices, 8, 10**9)
    r = client.post(
        "/write?db=grid&precision=s", content="\n".join(lines) + "\n", headers=live_server.headers("ingest")
    )
    assert r.status_code == 204, r.text
    assert _count(live_server.store, devices, "p_kw") == len(lines)
    assert _count(live_server.store, devices, "q_kvar") == len(lines)
    latest = client.get("/api/v1/measurements/latest?ids=HTTP-V1-000", headers=live_server.headers("viewer")).json()
    stored_id = Store.open(live_server.store, mode="r").meter_ids(["HTTP-V1-000"])[0]
    assert latest["variables"]["p_kw"] == {stored_id: {"value": 7.5, "time": "2016-06-01T02:00:00"}}
    again = client.post("/write?precision=s", content="\n".join(lines), headers=live_server.headers("ingest"))
    assert again.status_code == 204  # a resent batch: duplicates, nothing stored twice
    assert _count(live_server.store, devices, "p_kw") == len(lines)


def test_write_v2_gzip_token_scheme(client: httpx.Client, live_server: LiveServer) -> None:
    devices = [f"HTTP-V2-{i:03d}" for i in range(10)]
    lines = _lines(devices, 4, 10**6, field="v2_kw")
    body = gzip.compress(("\n".join(lines)).encode())
    headers = {"Authorization": f"Token {live_server.tokens['ingest']}", "Content-Encoding": "gzip"}
    r = client.post("/api/v2/write?bucket=b&org=o&precision=ms", content=body, headers=headers)
    assert r.status_code == 204, r.text
    assert _count(live_server.store, devices, "v2_kw") == len(lines)
    r = client.post("/api/v2/write", content=b"not gzip", headers=headers)
    assert r.status_code == 400
    assert "not valid gzip" in r.json()["detail"]


def test_influx_v1_credentials(client: httpx.Client, live_server: LiveServer) -> None:
    token = live_server.tokens["ingest"]
    line = _lines(["HTTP-CRED-1"], 1, 1, field="cred_kw")[0]
    assert client.post(f"/write?u=telegraf&p={token}", content=line).status_code == 204
    assert client.post("/write", content=line, auth=("telegraf", token)).status_code == 204
    assert client.post("/write?p=gt_0_bad", content=line).status_code == 401
    assert client.post("/write?precision=h", content=line, auth=("t", token)).status_code == 400


def test_rejected_lines_are_listed_and_the_rest_kept(client: httpx.Client, live_server: LiveServer) -> None:
    good = _lines(["HTTP-PART-1", "HTTP-PART-2"], 3, 1, field="part_kw")
    t = T0.value
    bad = [
        f"meter,site=x part_kw=1 {t}",  # no device tag
        f"meter,device=HTTP-PART-3 part_kw=abc {t}",  # not a number
        "garbage",
    ]
    before_origin = f"meter,device=HTTP-PART-4 part_kw=1 {pd.Timestamp('2015-01-01').value}"
    body = "\n".join(good[:3] + bad[:2] + good[3:] + [bad[2], before_origin])
    r = client.post("/write", content=body, headers=live_server.headers("operator"))
    assert r.status_code == 400
    doc = r.json()
    assert [x["line"] for x in doc["rejected_lines"]] == [4, 5, 9]
    assert "device" in doc["rejected_lines"][0]["reason"]
    assert len(doc["rejected_readings"]) == 1
    assert "origin" in doc["rejected_readings"][0]["reason"]
    assert "the other 12 readings were stored" in doc["detail"]  # 6 lines × 2 fields and "line 4" in doc["detail"]
    assert _count(live_server.store, ["HTTP-PART-1", "HTTP-PART-2"], "part_kw") == len(good)


def test_concurrent_writers_lose_nothing(client: httpx.Client, live_server: LiveServer) -> None:
    batches = [_lines([f"HTTP-CC-{w:02d}-{b}" for b in range(5)], 6, 1, field="cc_kw") for w in range(8)]

    def send(lines: list[str]) -> int:
        with httpx.Client(base_url=live_server.url, timeout=60) as c:
            return c.post("/write", content="\n".join(lines), headers=live_server.headers("ingest")).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(send, batches)) == [204] * len(batches)
    devices = [f"HTTP-CC-{w:02d}-{b}" for w in range(8) for b in range(5)]
    assert _count(live_server.store, devices, "cc_kw") == sum(len(b) for b in batches)
