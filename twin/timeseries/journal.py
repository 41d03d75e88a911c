"""Atomic batches on a zarr store: a redo journal under ``<store>/.journal``.

Inside a transaction every key zarr writes (chunks and ``zarr.json`` metadata) goes to a staging folder
``.journal/<txn>/`` and reads see the staged version first, so a batch can read-modify-write chunks it already
touched. ``commit`` makes the staged files durable (fsync), then writes the manifest ``.journal/<txn>.commit.json``
with one atomic rename: that file is the commit point. The staged files are then moved over their targets and the
journal entry removed. On open, a committed entry whose moves were interrupted is rolled forward (the moves are
idempotent) and an entry without manifest is deleted: the store holds exactly the batches committed before the crash.

Only the local file system gets durable commits (``os.replace`` and ``fsync``); other fsspec file systems get the
same protocol with their own ``mv`` (atomic where the file system's rename is).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zarr.abc.store import ByteRequest
from zarr.storage import LocalStore, WrapperStore

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer, BufferPrototype

JOURNAL = ".journal"


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(root: Path) -> list[str]:
    """Roll committed journal entries forward and drop uncommitted ones; returns what was done (for the log)."""
    journal = root / JOURNAL
    if not journal.is_dir():
        return []
    done = []
    for manifest in sorted(journal.glob("*.commit.json")):
        txn = manifest.name.removesuffix(".commit.json")
        _apply(root, txn, json.loads(manifest.read_text()))
        done.append(f"rolled forward {txn}")
    for staged in journal.iterdir():
        if staged.is_dir():
            shutil.rmtree(staged)
            done.append(f"discarded uncommitted {staged.name}")
    return done


def _apply(root: Path, txn: str, manifest: dict[str, Any]) -> None:
    staging = root / JOURNAL / txn
    parents = set()
    for key in manifest["set"]:
        src, dst = staging / key, root / key
        if src.exists():  # a key already moved by an interrupted earlier apply is skipped
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dst)
            parents.add(dst.parent)
    for key in manifest["delete"]:
        (root / key).unlink(missing_ok=True)
        parents.add((root / key).parent)
    for parent in parents:
        if parent.is_dir():
            _fsync_path(parent, directory=True)
    if staging.is_dir():
        shutil.rmtree(staging)
    (root / JOURNAL / f"{txn}.commit.json").unlink(missing_ok=True)
    _fsync_path(root / JOURNAL, directory=True)


class JournaledStore(WrapperStore[LocalStore]):
    """A LocalStore whose writes are staged until :meth:`commit` (see the module docstring)."""

    def __init__(self, store: LocalStore) -> None:
        super().__init__(store)
        self._txn: str | None = None
        self._stage: LocalStore | None = None
        self._set_keys: set[str] = set()
        self._deleted: set[str] = set()

    @property
    def root(self) -> Path:
        """The store's folder."""
        return Path(self._store.root)

    # --- transactions -------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Start staging writes."""
        if self._txn is not None:
            raise RuntimeError("a batch is already open on this store")
        self._txn = uuid.uuid4().hex
        path = self.root / JOURNAL / self._txn
        path.mkdir(parents=True)
        self._stage = LocalStore(path)
        self._set_keys, self._deleted = set(), set()

    def commit(self) -> None:
        """Make the staged batch durable and visible, atomically."""
        if self._txn is None:
            raise RuntimeError("no batch open")
        staging = self.root / JOURNAL / self._txn
        for key in self._set_keys:
            _fsync_path(staging / key)
        manifest = {"set": sorted(self._set_keys), "delete": sorted(self._deleted - self._set_keys)}
        tmp = self.root / JOURNAL / f"{self._txn}.tmp"
        with tmp.open("w") as fh:
            json.dump(manifest, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.root / JOURNAL / f"{self._txn}.commit.json")  # the commit point
        _fsync_path(self.root / JOURNAL, directory=True)
        _apply(self.root, self._txn, manifest)
        self._reset()

    def rollback(self) -> None:
        """Forget the staged batch."""
        if self._txn is not None:
            shutil.rmtree(self.root / JOURNAL / self._txn, ignore_errors=True)
        self._reset()

    def _reset(self) -> None:
        self._txn, self._stage = None, None
        self._set_keys, self._deleted = set(), set()

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

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """Direct children of ``prefix`` (staged included)."""
        seen = set()
        async for key in self._store.list_dir(prefix):
            if key != JOURNAL:
                seen.add(key)
                yield key
        base = prefix.rstrip("/") + "/" if prefix else ""
        for key in sorted(self._set_keys):
            if key.startswith(base):
                child = key[len(base) :].split("/", 1)[0]
                if child not in seen:
                    seen.add(child)
                    yield child
