"""Append-only audit log: one JSON line per state-changing request, each carrying the SHA-256 of the line before it.

Entries: ``seq, time, token_id, name, role, method, path, status, action, target, detail, prev``. ``prev`` of the
first entry is 64 zeros; editing, deleting or reordering any line breaks the chain from there on, which
:meth:`AuditLog.verify` reports by ``seq``. Each entry is fsynced before the request's response is sent.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["FIELDS", "AuditError", "AuditLog"]

FIELDS = ("seq", "time", "token_id", "name", "role", "method", "path", "status", "action", "target", "detail", "prev")
_GENESIS = "0" * 64


class AuditError(ValueError):
    """The audit log's hash chain is broken (the message names the first bad entry)."""


def _hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


class AuditLog:
    """An append-only JSON-lines file with a hash chain (see the module docstring).

    Parameters
    ----------
    path : str or Path
        ``audit.jsonl``; created on the first entry.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @staticmethod
    def _last_line(fd: int) -> bytes | None:
        """The file's last line (read backwards from the end in 64 KiB steps)."""
        end = os.lseek(fd, 0, os.SEEK_END)
        if end == 0:
            return None
        tail, pos = b"", end
        while pos > 0 and tail.count(b"\n") < 2:
            step = min(65536, pos)
            pos -= step
            tail = os.pread(fd, step, pos) + tail
        return tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]

    def append(self, **entry: Any) -> dict[str, Any]:
        """Write one entry (fields of :data:`FIELDS` except ``seq``, ``time`` and ``prev``, which are set here).

        The file is locked (``flock``) while the last entry is read and the new one written, so several processes
        (the service, ``gridtwin`` commands) keep one chain.
        """
        unknown = set(entry) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown audit fields {sorted(unknown)}; allowed: {FIELDS}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                last = self._last_line(fd)
                seq, prev = (0, _GENESIS) if last is None else (int(json.loads(last)["seq"]), _hash(last))
                doc = {k: entry.get(k) for k in FIELDS}
                doc.update(seq=seq + 1, time=pd.Timestamp.now(tz="UTC").isoformat(), prev=prev)
                line = json.dumps(doc, default=str, separators=(",", ":")).encode() + b"\n"
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)  # releases the flock
        return doc

    def read(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries, oldest first (the last ``limit`` when given)."""
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().splitlines()
        if limit is not None:
            lines = lines[-limit:] if limit > 0 else []
        return [json.loads(line) for line in lines]

    def verify(self) -> int:
        """Check the chain; returns the number of entries, or raises AuditError naming the first broken entry."""
        if not self.path.exists():
            return 0
        prev, n = _GENESIS, 0
        for i, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                raise AuditError(f"{self.path}:{i}: entry seq {n + 1} is not valid JSON: the log was edited") from None
            if doc.get("seq") != n + 1 or doc.get("prev") != prev:
                raise AuditError(
                    f"{self.path}:{i}: the chain breaks at entry seq {doc.get('seq')} (expected seq {n + 1} whose "
                    "'prev' is the SHA-256 of the line before): an entry at or before it was edited, removed or "
                    "reordered"
                )
            prev, n = _hash(line), n + 1
        return n
