"""What one control-room service runs on: the store, the grid, the comm layer, alarms, plans and its own folder.

:func:`open_site` opens a store written by ``gridtwin demo`` (which records ``grid_file`` and ``comm_dir`` in the
store's attributes) or any store with ``--grid``/``--comm`` given. The service keeps its state next to the store:
``<STORE>.service/`` (tokens, audit log, alarm book, submitted scenario sets) and ``<STORE>.plans/`` (plans as
``gridtwin shed`` writes them, plus their approval state). Design: ``docs/design/api.md``.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from twin.alarms import AlarmBook, MismatchRule, ThresholdRule, read_rules
from twin.api.audit import AuditLog
from twin.api.auth import TokenStore
from twin.api.ingest_queue import IngestQueue, IngestResult
from twin.api.locking import RWLock
from twin.timeseries.store import Store, StoreError

T = TypeVar("T")

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable

    import pandas as pd
    import xarray as xr

    from twin.comm import CommLayer
    from twin.graph import MultiLayerGraph
    from twin.grid import Grid

__all__ = ["DEFAULT_RULES", "Site", "open_site", "service_dir"]

DEFAULT_RULES = [
    ThresholdRule(name="overload-risk", group="overload", variable="p_exceed", high=0.5, hysteresis=0.1),
    MismatchRule(name="virtual-sensor-mismatch", limit=0.05, min_duration="1h"),
]


def service_dir(store: str | Path) -> Path:
    """``<STORE>.service``: the folder of the service's tokens, audit log, alarms and scenario sets."""
    store = Path(store)
    return store.with_name(store.name + ".service")


@dataclass
class Site:
    """The twin one service serves (see the module docstring).

    Attributes
    ----------
    store_path : Path
        The store folder.
    store : Store
        The store, opened for writing; writes go through :attr:`write_lock`.
    grid : Grid or None
        The grid the store belongs to (None: grid endpoints answer 404 saying how to give one).
    comm : CommLayer or None
        The communication layer (None: plans may use every controllable device).
    book : AlarmBook
        Alarm events and states in ``<STORE>.service/alarms``.
    tokens : TokenStore
        API tokens, ``<STORE>.service/tokens.json``.
    audit : AuditLog
        ``<STORE>.service/audit.jsonl``.
    lock : RWLock
        The store's readers–writer lock: reading requests hold it shared (``ReadLockMiddleware``), store writes
        (ingest, erasure, plans) exclusive (:attr:`write_lock`); see ``twin/api/locking.py``.
    """

    store_path: Path
    store: Store
    grid: Grid | None
    comm: CommLayer | None
    book: AlarmBook
    tokens: TokenStore
    audit: AuditLog
    lock: RWLock = field(default_factory=RWLock)
    alarm_interval_s: float = 5.0
    _book_lock: threading.Lock = field(default_factory=threading.Lock)
    _plans_lock: threading.Lock = field(default_factory=threading.Lock)
    _evaluated_time: float = 0.0
    _version: int = 0
    _version_lock: threading.Lock = field(default_factory=threading.Lock)
    _graph: MultiLayerGraph | None = None
    _evaluated_at: int = -1
    _ingest: IngestQueue | None = None
    _datasets: dict[str, xr.Dataset] = field(default_factory=dict)
    _groups: list[str] | None = None
    _memo: dict[tuple[str, Hashable], Any] = field(default_factory=dict)

    @property
    def write_lock(self) -> AbstractContextManager[None]:
        """``with site.write_lock:`` holds the store lock exclusive (never from a reading request)."""
        return self.lock.write()

    @property
    def read_lock(self) -> AbstractContextManager[None]:
        """``with site.read_lock:`` holds the store lock shared (writing requests that need to read first)."""
        return self.lock.read()

    @property
    def plans_lock(self) -> threading.Lock:
        """Serialises plan state changes (``<STORE>.plans/*.state.json``)."""
        return self._plans_lock

    @property
    def book_lock(self) -> threading.Lock:
        """Serialises alarm evaluation and acknowledgements (the alarm book's files)."""
        return self._book_lock

    @property
    def service_dir(self) -> Path:
        """``<STORE>.service``."""
        return service_dir(self.store_path)

    @property
    def plans_dir(self) -> Path:
        """``<STORE>.plans`` (created on first use)."""
        folder = self.store_path.with_name(self.store_path.name + ".plans")
        folder.mkdir(exist_ok=True)
        return folder

    @property
    def scenarios_dir(self) -> Path:
        """``<STORE>.service/scenarios``: one folder per submitted set."""
        folder = self.service_dir / "scenarios"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def version(self) -> int:
        """A counter that grows whenever data, alarms or plans change (the dashboard polls it)."""
        return self._version

    def changed(self, groups: Iterable[str] | None = None) -> None:
        """Note that data, alarms or plans changed (raises :attr:`version`).

        ``groups``: the store groups that were written (their cached datasets are dropped); None: any of them (all
        are dropped); ``()``: none (alarms, plan states).
        """
        with self._version_lock:
            self._version += 1
            if groups is None:
                self._datasets.clear()
                self._memo.clear()
            for group in groups or ():
                self._datasets.pop(group, None)
                for key in [k for k in self._memo if k[0] == group]:
                    del self._memo[key]
            if groups is None or groups:
                self._groups = None

    def groups(self) -> list[str]:
        """The store's groups (listed once, again after a write through this site)."""
        with self._version_lock:
            names = self._groups
        if names is None:
            names = self.store.groups()
            with self._version_lock:
                self._groups = names
        return list(names)

    def memo(self, group: str, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, kept until a write through this site changes ``group`` (answers derived from one group,
        e.g. the latest value per device, asked by every dashboard poll)."""
        with self._version_lock:
            if (group, key) in self._memo:
                return self._memo[group, key]
        value = compute()
        with self._version_lock:
            self._memo[group, key] = value
        return value

    def dataset(self, group: str) -> xr.Dataset:
        """The store group as a lazy xarray Dataset, opened once and kept until a write through this site changes
        it (opening a group costs tens of milliseconds: every reading request would pay it). Call with the store
        lock held (reading requests hold it shared)."""
        with self._version_lock:
            ds = self._datasets.get(group)
        if ds is None:
            ds = self.store.dataset(group)
            with self._version_lock:
                self._datasets[group] = ds
        return ds

    @property
    def graph(self) -> MultiLayerGraph:
        """The multilayer graph of the grid and comm layer (built once)."""
        if self.grid is None:
            raise LookupError(_NO_GRID)
        if self._graph is None:
            from twin.graph import MultiLayerGraph

            self._graph = MultiLayerGraph.from_grid(self.grid, self.comm)
        return self._graph

    def require_grid(self) -> Grid:
        """The grid, or a LookupError (→ 404) saying how to give one."""
        if self.grid is None:
            raise LookupError(_NO_GRID)
        return self.grid

    def ingest(self, readings: pd.DataFrame) -> IngestResult:
        """Append Readings to ``measurements`` with the other requests waiting at the same time (group commit,
        ``twin/api/ingest_queue.py``); returns once they are committed."""
        with self._version_lock:
            if self._ingest is None:
                self._ingest = IngestQueue(self._append_measurements)
        return self._ingest.submit(readings)

    def _append_measurements(self, readings: pd.DataFrame) -> Any:
        with self.lock.write():
            report = self.store.append(readings, group="measurements", source="http:/write")
            self.changed(["measurements"])
        return report

    def close(self) -> None:
        """Write what ingest has queued and stop its writer thread."""
        if self._ingest is not None:
            self._ingest.close()
            self._ingest = None

    def evaluate_alarms(self) -> None:
        """Evaluate the alarm rules on data that arrived since the last evaluation.

        Called by reading requests (which hold the store lock shared); a no-op when nothing changed, and at most
        once per :attr:`alarm_interval_s` while ingest keeps changing the store (the dashboard polls every few
        seconds; evaluating on every poll of every client would cost more than the ingest itself).
        """
        with self._book_lock:
            if self._evaluated_at == self._version:
                return
            if self._evaluated_at >= 0 and time.monotonic() - self._evaluated_time < self.alarm_interval_s:
                return
            before = len(self.book.events)
            seen = self._version
            self.book.evaluate_store(self.store)
            self._evaluated_time = time.monotonic()
            self._evaluated_at = seen
            if len(self.book.events) != before:
                self.changed(())
                self._evaluated_at = self._version


_NO_GRID = "this service has no grid: start it with 'gridtwin serve STORE --grid CASE' (or a store from gridtwin demo)"


def _recorded(store: Store, store_path: Path, key: str) -> Path | None:
    value = store.attrs.get(key)
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else store_path.parent / path


def _rules(folder: Path) -> list[Any]:
    for name in ("alarm_rules.yaml", "alarm_rules.yml", "alarm_rules.json"):
        if (folder / name).exists():
            return read_rules(folder / name)
    return list(DEFAULT_RULES)


def open_site(store: str | Path, grid: str | Path | None = None, comm: str | Path | None = None) -> Site:
    """Open the store and the twin it belongs to for serving.

    Parameters
    ----------
    store : str or Path
        A gridtwin store (zarr folder).
    grid : str or Path, optional
        Grid case or file (``twin.load``); default: the store's ``grid_file`` attribute (written by gridtwin demo).
    comm : str or Path, optional
        Comm layer folder (``twin.comm.write_comm``); default: the store's ``comm_dir`` attribute.

    Returns
    -------
    Site
        Alarm rules come from ``<STORE>.service/alarm_rules.{yaml,json}`` when present, else :data:`DEFAULT_RULES`
        (overload risk above 0.5; virtual sensor mismatch above 5 % for an hour).
    """
    import twin
    from twin.comm import read_comm

    store_path = Path(store).resolve()
    if not (store_path / "zarr.json").exists():
        raise StoreError(f"{store_path} is not a gridtwin store; build one with 'gridtwin demo {store}' first")
    st = Store.open(store_path)
    grid_path = grid if grid is not None else _recorded(st, store_path, "grid_file")
    grid_obj = twin.load(grid_path) if grid_path is not None else None
    comm_path = comm if comm is not None else _recorded(st, store_path, "comm_dir")
    comm_obj = read_comm(comm_path, grid_obj) if comm_path is not None else None
    folder = service_dir(store_path)
    folder.mkdir(exist_ok=True)
    book = AlarmBook(folder / "alarms", _rules(folder))
    return Site(
        store_path, st, grid_obj, comm_obj, book, TokenStore(folder / "tokens.json"), AuditLog(folder / "audit.jsonl")
    )
