"""Files and servers into a store: readers (``twin.timeseries.ingest``) feeding ``Store.append``, with a report.

Reading and writing overlap: a reader thread parses the next batch (pyarrow releases the GIL) while the main thread
merges the previous one into the store. Reader batches are gathered up to ``batch_rows`` readings per store batch,
so a file becomes few large journal transactions (each atomic; an interrupted import keeps the batches committed
before it, and importing the same file again only counts duplicates).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from twin.timeseries.store import AppendReport, Store

Progress = Callable[[str, int], None]


@dataclass
class IngestReport:
    """Totals of an import (see :meth:`as_dict`)."""

    sources: list[str] = field(default_factory=list)
    rows_read: int = 0
    store: AppendReport = field(default_factory=lambda: AppendReport(group=""))
    reader_rejected: pd.DataFrame = field(default_factory=pd.DataFrame)
    gaps: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rejected(self) -> pd.DataFrame:
        """Every rejected row: the reader's (file, line, reason) and the store's (device, time, reason)."""
        parts = [df for df in (self.reader_rejected, self.store.rejected) if len(df)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["reason"])

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON output and the CLI's table."""
        reasons = self.rejected["reason"].value_counts().to_dict() if len(self.rejected) else {}
        return {
            "sources": self.sources,
            "rows_read": self.rows_read,
            "readings_stored": self.store.stored,
            "duplicates": self.store.duplicates,
            "conflicts": self.store.conflicts,
            "rejected": len(self.rejected),
            "rejected_by_reason": {str(k): int(v) for k, v in reasons.items()},
            "new_devices": self.store.new_devices,
            "variables": self.store.variables,
            "time_range": [str(t) for t in self.store.time_range] if self.store.time_range else None,
            "gaps": self.gaps,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_read / self.seconds) if self.seconds else None,
        }


def _prefetch(batches: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run ``batches`` in a thread, ``depth`` batches ahead; reader errors are raised in the caller."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in batches:
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as exc:
            q.put(exc)
        q.put(done)

    thread = threading.Thread(target=work, daemon=True, name="gridtwin-reader")
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def import_batches(
    store: Store,
    batches: Iterable[Any],
    *,
    group: str = "measurements",
    batch_rows: int = 10_000_000,
    meters: pd.DataFrame | None = None,
    units: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Append reader batches (``ReadBatch``) to ``store``; one store transaction per ``batch_rows`` readings."""
    import time

    t0 = time.perf_counter()
    report = IngestReport(store=AppendReport(group=group))
    rejected = []
    appender = None
    pending_rows = 0
    try:
        for batch in _prefetch(iter(batches)):
            if batch.source not in report.sources:
                report.sources.append(batch.source)
            report.rows_read += batch.rows_read
            if len(batch.rejected):
                rejected.append(batch.rejected)
            if appender is None:
                appender = store.appender(group, units=units, meters=meters)
            appender.add(batch.readings)  # located now, while the reader thread parses the next batch
            pending_rows += len(batch.readings)
            if progress is not None:
                progress(batch.source, batch.rows_read)
            if pending_rows >= batch_rows:
                report.store.merge(appender.commit(",".join(report.sources)))
                appender, pending_rows = None, 0
        if appender is not None:
            report.store.merge(appender.commit(",".join(report.sources)))
            appender = None
    finally:
        if appender is not None:
            appender.rollback()
    report.reader_rejected = pd.concat(rejected, ignore_index=True) if rejected else pd.DataFrame()
    report.gaps = {"missing_slots": report.store.missing_in_range}
    report.seconds = time.perf_counter() - t0
    return report


def import_files(
    store: Store,
    paths: Iterable[str | Path],
    *,
    format: str | None = None,
    group: str = "measurements",
    batch_rows: int = 10_000_000,
    meters: pd.DataFrame | None = None,
    progress: Progress | None = None,
    **reader_options: Any,
) -> IngestReport:
    """Read meter files of any supported format (see ``twin.timeseries.ingest.read``) into ``store``."""
    from twin.timeseries import ingest

    def batches() -> Iterator[Any]:
        for path in paths:
            yield from ingest.read(path, format=format, **reader_options)

    return import_batches(store, batches(), group=group, batch_rows=batch_rows, meters=meters, progress=progress)
