"""Group commit of ingest requests: the readings of every request waiting at once go to the store in one batch.

A store append costs tens of milliseconds whatever its size (a journal transaction, chunk rewrites, fsync), so
appending request by request caps ingest at a few dozen requests per second and makes 50 concurrent Telegraf agents
queue for seconds. One writer thread takes everything that arrived while the previous batch was being written,
appends it as one journal transaction under the site's exclusive lock, and then answers every request in the batch:
a request is only answered (204) once its readings are committed, so nothing acknowledged can be lost. Rejections
(before the store's origin, off the time grid, ...) are handed back to the request whose readings they were. If a
combined batch fails as a whole, each request in it is retried alone, so one bad request cannot fail the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["IngestQueue", "IngestResult"]


@dataclass
class IngestResult:
    """What happened to one request's readings: how many stored (incl. duplicates and conflicts), which rejected."""

    stored: int
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["device", "time", "reason"]))


@dataclass
class _Job:
    readings: pd.DataFrame
    future: Future = field(default_factory=Future)


class IngestQueue:
    """One writer thread that appends the readings of all waiting requests to ``group`` in one batch.

    Parameters
    ----------
    append : callable
        ``append(readings: DataFrame) -> AppendReport``, called on the writer thread (it takes the store lock).
    max_rows : int
        At most this many readings per batch; the rest wait for the next one.
    """

    def __init__(self, append: Callable[[pd.DataFrame], Any], max_rows: int = 2_000_000) -> None:
        self._append = append
        self._max_rows = max_rows
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="gridtwin-ingest", daemon=True)
        self._thread.start()

    def submit(self, readings: pd.DataFrame) -> IngestResult:
        """Queue one request's readings and wait until they are committed (or failed: the error is raised here)."""
        job = _Job(readings)
        with self._cond:
            if self._closed:
                raise RuntimeError("the service is shutting down; resend the batch")
            self._jobs.append(job)
            self._cond.notify()
        return job.future.result()

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _take(self) -> list[_Job]:
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            taken, rows = [], 0
            while self._jobs and (not taken or rows + len(self._jobs[0].readings) <= self._max_rows):
                job = self._jobs.pop(0)
                taken.append(job)
                rows += len(job.readings)
            return taken

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                return
            self._write(jobs)

    def _write(self, jobs: list[_Job]) -> None:
        self.batches += 1
        combined = pd.concat([j.readings for j in jobs], ignore_index=True) if len(jobs) > 1 else jobs[0].readings
        try:
            report = self._append(combined)
        except Exception as error:
            if len(jobs) == 1:
                jobs[0].future.set_exception(error)
                return
            for job in jobs:  # one bad request must not fail the others: retry each alone
                self._write([job])
            return
        for job, result in zip(jobs, _split(jobs, report.rejected), strict=True):
            job.future.set_result(result)


def _split(jobs: list[_Job], rejected: pd.DataFrame) -> list[IngestResult]:
    """Hand the batch's rejected readings back to the requests that sent them (matched by device and time)."""
    if not len(rejected):
        return [IngestResult(len(j.readings)) for j in jobs]
    rej_key = rejected["device"].astype(str) + "\x00" + pd.to_datetime(rejected["time"]).astype("int64").astype(str)
    results = []
    for job in jobs:
        r = job.readings
        key = r["device"].astype(str) + "\x00" + pd.to_datetime(r["time"]).astype("int64").astype(str)
        mine = rejected[rej_key.isin(set(key)).to_numpy()]
        results.append(IngestResult(len(r) - len(mine), mine.reset_index(drop=True)))
    return results
