"""Readers–writer lock of a served store, and the ASGI middleware that holds it for reading requests.

The store's journal makes each write batch atomic on disk, but a reader in the same process that opens a group
while a batch is being moved into place can see half of it (a new meter on one coordinate and not yet on another).
So every ``GET``/``HEAD`` request holds the site's lock *shared* for as long as it runs, and every store write
(ingest, plan, erasure) holds it *exclusive*. The lock prefers writers: once a writer waits, new readers queue
behind it, so a stream of dashboard polls cannot starve ingest. A thread must not take the lock it already holds
(reading handlers must not write; writers do their own reading inside their exclusive section).

Threads that *wait* for the lock (or for the ingest group commit) run under their own capacity limiter,
:func:`wait_limiter`, never under the worker-thread pool's: otherwise requests waiting for a writer could hold every
pool thread while the readers the writer waits for need one to finish (a deadlock seen with 50 clients).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

T = TypeVar("T")

__all__ = ["RWLock", "ReadLockMiddleware", "run_waiting", "wait_limiter"]

_WAIT_THREADS = 512


@functools.cache
def wait_limiter() -> anyio.CapacityLimiter:
    """The capacity limiter of threads that may block on the store lock or the ingest queue (created on first use)."""
    return anyio.CapacityLimiter(_WAIT_THREADS)


async def run_waiting(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a thread that may block on the store lock (see the module docstring)."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=wait_limiter())


class RWLock:
    """A writer-preferring readers–writer lock (not re-entrant; release may happen on another thread)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared."""
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusive."""
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()


# GET paths that never read the store (plan files, tokens, audit log, topology from the grid, pages): no lock, so a
# long ingest batch does not hold them up. A new route that reads the store must not start with one of these.
STORE_FREE = ("/api/v1/plans", "/api/v1/whoami", "/api/v1/tokens", "/api/v1/audit", "/api/v1/grid/topology",
              "/api/v1/scenarios", "/static/", "/docs", "/redoc", "/openapi.json", "/healthz")  # fmt: skip
STORE_FREE_EXACT = ("/", "/dashboard")


class ReadLockMiddleware:
    """Hold ``lock`` shared around every GET/HEAD request that may read the store (acquired off the event loop)."""

    def __init__(self, app: ASGIApp, lock: RWLock) -> None:
        self.app = app
        self.lock = lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or path in STORE_FREE_EXACT
            or path.startswith(STORE_FREE)
        ):
            await self.app(scope, receive, send)
            return
        await run_waiting(self.lock.acquire_read)
        try:
            await self.app(scope, receive, send)
        finally:
            self.lock.release_read()
