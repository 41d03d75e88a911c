"""Atomic batches on a zarr store: a redo journal under ``<store>/.journal``.

Inside a transaction every key zarr writes (chunks and ``zarr.json`` metadata) goes to a staging folder
``.journal/<txn>/`` and reads see the staged version first, so a batch can read-modify-write chunks it already
touched. ``commit`` makes the staged files durable (fsync), then writes the manifest ``.journal/<txn>.commit.json``
with one atomic rename: that file is the commit point. The staged files are then moved over their targets and the
journal entry removed. On open, a committed entry whose moves were interrupted is rolled forward (the moves are
idempotent) and an entry without manifest is deleted: the store holds exactly the batches committed before the crash.

Only the local file system gets durable commits (``os.replace`` and ``fsync``); other fsspec file systems get the
same protocol with their own ``mv`` (atomic where the file system's rename is).

One writer at a time (local stores): a transaction holds :class:`WriterLock` — a lock per store path within the
process, then ``flock`` on ``<store>/.journal.lock`` across processes — from ``begin`` to ``commit``/``rollback``.
So ``gridtwin ingest`` into a store that ``gridtwin serve`` is writing waits for the current batch instead of
interleaving with it, and recovery on open skips a journal entry whose writer is alive (it is not interrupted; the
lock dies with its process, so a crashed writer's entry is recovered by the next opener). A writer that waits longer
than ``GRIDTWIN_WRITER_WAIT_S`` (default 120 s) gets :class:`StoreBusyError` naming the holder's pid.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zarr.abc.store import ByteRequest, Store
from zarr.storage import LocalStore, WrapperStore

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer, BufferPrototype

JOURNAL = ".journal"
LOCK_FILE = ".journal.lock"
_PATH_LOCKS: dict[str, threading.Lock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


def write_file_atomic(path: str | Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace the local file ``path`` with ``data`` so that readers see all of it or none, durably: a temporary file
    in the same folder (permissions ``mode`` set before any byte is written, e.g. 0o600 for secrets), fsync, rename,
    fsync of the folder. The temporary file is removed if anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_path(path.parent, directory=True)


class StoreBusyError(OSError):
    """Another writer holds the store for longer than we are willing to wait."""


class WriterLock:
    """The right to write one local store (see the module docstring); a no-op for non-local locations."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self._fd: int | None = None
        key = str(location.path.resolve()) if location.is_local else str(location)
        with _PATH_LOCKS_GUARD:
            self._thread_lock = _PATH_LOCKS.setdefault(key, threading.Lock())

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout_s: float | None = None) -> None:
        """Wait for the store (at most ``timeout_s``; default ``$GRIDTWIN_WRITER_WAIT_S`` or 120 s)."""
        if not self.location.is_local:
            return
        timeout = float(os.environ.get("GRIDTWIN_WRITER_WAIT_S", "120")) if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=max(timeout, 0.0)):
            raise StoreBusyError(f"{self.location} is being written by another thread of this process for {timeout} s")
        try:
            self._fd = self._flock(deadline, timeout)
        except BaseException:
            self._thread_lock.release()
            raise

    def _flock(self, deadline: float, timeout: float) -> int:
        fd = os.open(self.location.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise StoreBusyError(
                        f"{self.location} is being written by process {holder} for more than {timeout:.0f} s; wait for "
                        "it or stop it (a store takes one writer at a time; send data to a running 'gridtwin serve' "
                        "through its /write endpoint instead)"
                    ) from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def try_acquire(self) -> bool:
        """Take the store if nobody writes it now (no waiting)."""
        try:
            self.acquire(timeout_s=0.0)
        except StoreBusyError:
            return False
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        self._thread_lock.release()


class Location:
    """Where a store lives: a local folder (durable commits with fsync) or an fsspec URL (``s3://``, ``memory://``)."""

    def __init__(self, where: str | Path) -> None:
        text = str(where)
        self.is_local = isinstance(where, Path) or "://" not in text or text.startswith("file://")
        if self.is_local:
            self.path = Path(text.removeprefix("file://"))
            self.url = str(self.path)
        else:
            import fsspec

            self.url = text.rstrip("/")
            self.fs, self._root = fsspec.core.url_to_fs(self.url)

    def __str__(self) -> str:
        return self.url

    def store(self, sub: str = "", *, read_only: bool = False) -> Store:
        """A zarr store rooted at ``sub`` below the location."""
        if self.is_local:
            return LocalStore(self.path / sub, read_only=read_only)
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(f"{self.url}/{sub}".rstrip("/"), read_only=read_only)

    def _abs(self, rel: str) -> str:
        return f"{self._root}/{rel}".rstrip("/")

    def exists(self, rel: str) -> bool:
        """Whether a file or folder exists."""
        return (self.path / rel).exists() if self.is_local else self.fs.exists(self._abs(rel))

    def is_empty(self) -> bool:
        """Whether the location holds nothing."""
        if self.is_local:
            return not self.path.exists() or not any(self.path.iterdir())
        return not self.fs.exists(self._root) or not self.fs.find(self._root)

    def read_text(self, rel: str) -> str:
        """A small file's text."""
        return (self.path / rel).read_text() if self.is_local else self.fs.cat_file(self._abs(rel)).decode()

    def write_atomic(self, rel: str, text: str) -> None:
        """Write a small file so that readers see all of it or nothing (rename locally, one PUT elsewhere)."""
        if self.is_local:
            write_file_atomic(self.path / rel, text)
        else:
            self.fs.pipe_file(self._abs(rel), text.encode())

    def fsync_files(self, rels: Iterable[str]) -> None:
        """Flush written files to disk (local only; object stores acknowledge durable writes)."""
        if self.is_local:
            for rel in rels:
                _fsync_path(self.path / rel)

    def move(self, src: str, dst: str) -> bool:
        """Move a file over another; False when ``src`` is gone (already moved by an earlier, interrupted apply)."""
        if self.is_local:
            source, target = self.path / src, self.path / dst
            if not source.exists():
                return False
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
            return True
        if not self.fs.exists(self._abs(src)):
            return False
        self.fs.mv(self._abs(src), self._abs(dst))
        return True

    def remove(self, rel: str, *, recursive: bool = False) -> None:
        """Delete a file (or a folder with ``recursive``) if it exists."""
        if self.is_local:
            target = self.path / rel
            if recursive:
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
                parent = target.parent  # drop folders left empty (zarr would list them as broken nodes)
                while parent != self.path and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent
        elif self.fs.exists(self._abs(rel)):
            self.fs.rm(self._abs(rel), recursive=recursive)

    def fsync_dirs(self, rels: Iterable[str]) -> None:
        """Flush directory entries (renames) to disk, local only."""
        if self.is_local:
            for rel in set(rels):
                if (self.path / rel).is_dir():
                    _fsync_path(self.path / rel, directory=True)

    def journal_entries(self) -> tuple[list[str], list[str]]:
        """(transactions with a commit manifest, staging folders) under ``.journal``."""
        if self.is_local:
            folder = self.path / JOURNAL
            if not folder.is_dir():
                return [], []
            names = [p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()]
        else:
            base = self._abs(JOURNAL)
            if not self.fs.exists(base):
                return [], []
            names = [
                e["name"].rsplit("/", 1)[-1] + ("/" if e["type"] == "directory" else "")
                for e in self.fs.ls(base, detail=True)
            ]
        committed = sorted(n.removesuffix(".commit.json") for n in names if n.endswith(".commit.json"))
        staged = sorted(n.rstrip("/") for n in names if n.endswith("/"))
        return committed, staged


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(where: Location | str | Path) -> list[str]:
    """Roll committed journal entries forward and drop uncommitted ones; returns what was done (for the log)."""
    loc = where if isinstance(where, Location) else Location(where)
    committed, staged = loc.journal_entries()
    if not committed and not staged:
        return []
    lock = WriterLock(loc)
    if not lock.try_acquire():
        return ["a writer is active: its journal entry is live, not interrupted; left alone"]
    try:
        committed, staged = loc.journal_entries()
        return _recover(loc, committed, staged)
    finally:
        lock.release()


def _recover(loc: Location, committed: list[str], staged: list[str]) -> list[str]:
    done = []
    for txn in committed:
        _apply(loc, txn, json.loads(loc.read_text(f"{JOURNAL}/{txn}.commit.json")))
        done.append(f"rolled forward {txn}")
    for txn in staged:
        if txn not in committed:
            loc.remove(f"{JOURNAL}/{txn}", recursive=True)
            done.append(f"discarded uncommitted {txn}")
    return done


def _apply(loc: Location, txn: str, manifest: dict[str, Any]) -> None:
    staging = f"{JOURNAL}/{txn}"
    moved = [key for key in manifest["set"] if loc.move(f"{staging}/{key}", key)]
    for key in manifest["delete"]:
        loc.remove(key)
    loc.fsync_dirs(key.rsplit("/", 1)[0] if "/" in key else "" for key in moved + manifest["delete"])
    loc.remove(staging, recursive=True)
    loc.remove(f"{JOURNAL}/{txn}.commit.json")
    loc.fsync_dirs([JOURNAL])


class JournaledStore(WrapperStore[Store]):
    """A zarr store whose writes are staged until :meth:`commit` (see the module docstring)."""

    def __init__(self, location: Location, *, read_only: bool = False) -> None:
        super().__init__(location.store(read_only=read_only))
        self.location = location
        self._txn: str | None = None
        self._stage: Store | None = None
        self._set_keys: set[str] = set()
        self._deleted: set[str] = set()
        self._writer = WriterLock(location)

    def _with_store(self, store: Store) -> JournaledStore:
        """A view on another store object (zarr asks for read-only twins); shares this one's location and state."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._store = store
        return twin

    def begin(self) -> None:
        """Start staging writes."""
        if self._txn is not None:
            raise RuntimeError("a batch is already open on this store")
        self._writer.acquire()
        self._txn = uuid.uuid4().hex
        self._stage = self.location.store(f"{JOURNAL}/{self._txn}")
        self._set_keys, self._deleted = set(), set()

    def commit(self) -> None:
        """Make the staged batch durable and visible, atomically."""
        if self._txn is None:
            raise RuntimeError("no batch open")
        loc = self.location
        try:
            loc.fsync_files(f"{JOURNAL}/{self._txn}/{key}" for key in self._set_keys)
            manifest = {"set": sorted(self._set_keys), "delete": sorted(self._deleted - self._set_keys)}
            loc.write_atomic(f"{JOURNAL}/{self._txn}.commit.json", json.dumps(manifest))  # the commit point
            _apply(loc, self._txn, manifest)
        finally:  # interrupted: the entry stays for recovery (forward if committed), the store is free again
            self._reset()

    def rollback(self) -> None:
        """Forget the staged batch."""
        if self._txn is not None:
            self.location.remove(f"{JOURNAL}/{self._txn}", recursive=True)
        self._reset()

    def _reset(self) -> None:
        self._txn, self._stage = None, None
        self._set_keys, self._deleted = set(), set()
        self._writer.release()

    @property
    def in_transaction(self) -> bool:
        """Whether writes are being staged."""
        return self._txn is not None

    # --- zarr Store interface -----------------------------------------------------------------------------
    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """Staged value first, then the store's."""
        if self._stage is not None:
            if key in self._set_keys:
                return await self._stage.get(key, prototype, byte_range)
            if key in self._deleted:
                return None
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        """Partial reads, staged first."""
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists, counting staged writes and deletes."""
        if self._stage is not None:
            if key in self._set_keys:
                return True
            if key in self._deleted:
                return False
        return await self._store.exists(key)

    async def set(self, key: str, value: Buffer) -> None:
        """Stage a write (or write through when no batch is open)."""
        if self._stage is None:
            await self._store.set(key, value)
            return
        await self._stage.set(key, value)
        self._set_keys.add(key)
        self._deleted.discard(key)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        """Stage a write unless ``key`` exists."""
        if not await self.exists(key):
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        """Stage a delete (or delete now when no batch is open)."""
        if self._stage is None:
            await self._store.delete(key)
            return
        if key in self._set_keys:
            await self._stage.delete(key)
            self._set_keys.discard(key)
        self._deleted.add(key)

    async def delete_dir(self, prefix: str) -> None:
        """Stage the delete of every key under ``prefix`` (or delete now when no batch is open)."""
        if self._stage is None:
            await self._store.delete_dir(prefix)
            return
        base = prefix.rstrip("/") + "/"
        keys = [key async for key in self.list_prefix(base)]
        for key in keys:
            await self.delete(key)

    async def list(self) -> AsyncIterator[str]:
        """Every key, staged writes included, the journal excluded."""
        async for key in self.list_prefix(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Keys under ``prefix`` (staged included)."""
        seen = set()
        async for key in self._store.list_prefix(prefix):
            if not key.startswith(JOURNAL) and key not in self._deleted:
                seen.add(key)
                yield key
        for key in sorted(self._set_keys):
            if key.startswith(prefix) and key not in seen:
                yield key

    async def _alive(self, path: str) -> bool:
        """Whether ``path`` (a key or a folder of keys) still has a key that is not staged for deletion."""
        if path in self._set_keys or (path not in self._deleted and await self._store.exists(path)):
            return True
        async for _ in self.list_prefix(path + "/"):
            return True
        return False

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """Direct children of ``prefix`` (staged included)."""
        seen = set()
        base = prefix.rstrip("/") + "/" if prefix else ""
        async for key in self._store.list_dir(prefix):
            if key in (JOURNAL, LOCK_FILE) or (self._deleted and not await self._alive(base + key)):
                continue  # a child whose every key is staged for deletion is gone for this batch
            seen.add(key)
            yield key
        for key in sorted(self._set_keys):
            if key.startswith(base):
                child = key[len(base) :].split("/", 1)[0]
                if child not in seen:
                    seen.add(child)
                    yield child
