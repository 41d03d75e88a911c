"""The store lock and the ingest group commit of ``gridtwin serve`` (``twin/api/locking.py``, ``ingest_queue.py``)."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from twin.api.ingest_queue import IngestQueue
from twin.api.locking import RWLock


def test_rwlock_readers_share_writers_exclude() -> None:
    lock = RWLock()
    inside: list[str] = []
    lock.acquire_read()
    lock.acquire_read()  # a second reader gets in while the first holds it
    writer_in = threading.Event()

    def writer() -> None:
        with lock.write():
            inside.append("w")
            writer_in.set()

    t = threading.Thread(target=writer)
    t.start()
    assert not writer_in.wait(0.2), "a writer must wait for the readers"
    lock.release_read()
    assert not writer_in.wait(0.1)
    lock.release_read()
    assert writer_in.wait(2.0)
    t.join()
    assert inside == ["w"]


def test_rwlock_prefers_a_waiting_writer() -> None:
    lock = RWLock()
    order: list[str] = []
    lock.acquire_read()
    t_w = threading.Thread(target=lambda: (lock.acquire_write(), order.append("writer"), lock.release_write()))
    t_w.start()
    time.sleep(0.1)  # the writer is now waiting
    t_r = threading.Thread(target=lambda: (lock.acquire_read(), order.append("reader"), lock.release_read()))
    t_r.start()
    time.sleep(0.1)
    assert order == [], "a new reader queues behind the waiting writer"
    lock.release_read()
    t_w.join(2)
    t_r.join(2)
    assert order == ["writer", "reader"]


class _Report:
    def __init__(self, rejected: pd.DataFrame) -> None:
        self.rejected = rejected


def _readings(device: str, n: int, start: str = "2016-01-01") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device": device,
            "parameter": "p_kw",
            "time": pd.date_range(start, periods=n, freq="15min"),
            "value": range(n),
        }
    )


def test_ingest_queue_batches_waiting_requests_and_returns_each_its_rejections() -> None:
    batches: list[int] = []
    gate = threading.Event()

    def append(frame: pd.DataFrame) -> _Report:
        gate.wait(5)  # hold the first batch so the others queue up behind it
        batches.append(len(frame))
        bad = frame[frame["device"] == "bad"].head(2)  # pretend the store rejects two readings of "bad"
        return _Report(bad[["device", "time"]].assign(reason="before the store's origin").reset_index(drop=True))

    queue = IngestQueue(append)
    results: dict[str, object] = {}
    threads = [
        threading.Thread(target=lambda d=d: results.__setitem__(d, queue.submit(_readings(d, 10))))
        for d in ("a", "b", "bad", "c")
    ]
    for t in threads:
        t.start()
        time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(5)
    queue.close()
    assert sum(batches) == 40
    assert len(batches) < 4, f"requests waiting together are one append: {batches}"
    assert [results[d].stored for d in ("a", "b", "c")] == [10, 10, 10]
    assert results["bad"].stored == 8
    assert len(results["bad"].rejected) == 2


def test_ingest_queue_one_failing_request_does_not_fail_the_others() -> None:
    gate = threading.Event()

    def append(frame: pd.DataFrame) -> _Report:
        gate.wait(5)
        if (frame["device"] == "poison").any():
            raise ValueError("device 'poison': unknown parameter")
        return _Report(pd.DataFrame(columns=["device", "time", "reason"]))

    queue = IngestQueue(append)
    outcome: dict[str, object] = {}

    def send(device: str) -> None:
        try:
            outcome[device] = queue.submit(_readings(device, 4)).stored
        except ValueError as err:
            outcome[device] = str(err)

    threads = [threading.Thread(target=send, args=(d,)) for d in ("a", "poison", "b")]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(5)
    queue.close()
    assert outcome == {"a": 4, "b": 4, "poison": "device 'poison': unknown parameter"}
    with pytest.raises(RuntimeError, match="shutting down"):
        queue.submit(_readings("late", 1))
