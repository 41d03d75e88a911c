"""Run a set of scenarios in-process or on Dask distributed: resumable, failure-isolated, results in one zarr store.

Each item of a set is ``(name, payload)``; ``fn(payload)`` returns that scenario's result Dataset (no ``scenario``
dim). The client writes every result as soon as it arrives, so a killed run loses only the scenarios in flight.

Store (zarr v3; layout, commit protocol and measurements in ``docs/design/scenarios_runner.md``): one group per
scenario, ``<store>/scenarios/<percent-encoded name>``, encoded where the scenario ran; the client writes its
files and then its ``zarr.json`` (with ``complete: true``, atomically), the commit point. A failed scenario is a
group without variables whose status is ``"failed: <ErrorType>: <message>"``, with a short traceback.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from scenarios.runner_store import encode_group, open_results, prepare_store, read_status, write_group

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster
    from rich.progress import Progress

__all__ = [
    "WORKER_ENV",
    "RunReport",
    "ScenarioSetupError",
    "open_results",
    "read_status",
    "run_set",
    "start_local_cluster",
]

#: Environment of LocalCluster workers: one numba/OpenMP/BLAS thread each, so n workers use n cores, not n².
WORKER_ENV: dict[str, str] = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
_RESERVED = ("scenario", "status")
_TRACEBACK_FRAMES = 6
_TRACEBACK_CHARS = 4000


class ScenarioSetupError(RuntimeError):
    """Every scenario of a run failed with the same error: the setup (fn, store, cluster) is wrong, not a scenario."""


@dataclass(frozen=True)
class RunReport:
    """What one :func:`run_set` call did.

    Attributes
    ----------
    store : str
        The results store.
    ran, skipped, failed : tuple of str
        Scenarios run now (ok or failed), skipped because the store holds them complete, and those of ``ran`` that
        failed; each in the set's order.
    seconds : float
        Wall time of the call, s (cluster start included).
    setup_seconds : float
        Part of ``seconds`` spent starting or connecting to the cluster, s.
    write_seconds : float
        Part of ``seconds`` the client spent writing results to the store, s (serial: the ceiling of a large
        cluster's throughput is about ``len(ran) / write_seconds`` scenarios per second).
    """

    store: str
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: tuple[str, ...]
    seconds: float
    setup_seconds: float
    write_seconds: float = 0.0

    @property
    def scenarios_per_hour(self) -> float:
        """Throughput of the run, scenarios per hour of wall time after the cluster was up (0 when none ran)."""
        busy_s = self.seconds - self.setup_seconds
        return len(self.ran) / busy_s * 3600.0 if self.ran and busy_s > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"{len(self.ran)} scenarios ran ({len(self.failed)} failed), {len(self.skipped)} skipped, "
            f"{self.seconds:.1f} s ({self.setup_seconds:.1f} s setup), {self.scenarios_per_hour:,.0f} scenarios/h"
        )


@dataclass(frozen=True)
class _Outcome:
    """One scenario as the runner records it: its group's zarr files, encoded where it ran ("" error when ok)."""

    name: str
    files: dict[str, bytes]
    error: str
    traceback: str
    cause: str = ""  # the innermost error ("raise ... from" chain): equal causes = the same setup error


# --- one scenario (runs on a worker, or in-process with scheduler="sync") ------------------------------------------
def _check_result(ds: object) -> xr.Dataset:
    """Return ``ds`` when it is one scenario's Dataset, else raise TypeError/ValueError saying what is wrong."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"the scenario function returned {type(ds).__name__}, expected an xarray.Dataset")
    clash = [n for n in _RESERVED if n in ds.variables or n in ds.dims]
    if clash:
        raise ValueError(f"the scenario result uses the runner's reserved name(s) {clash}; rename them in fn")
    return ds


def _short_traceback(err: BaseException) -> str:
    """The last frames of ``err``'s traceback, at most ``_TRACEBACK_CHARS`` characters."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=-_TRACEBACK_FRAMES))
    return text[-_TRACEBACK_CHARS:]


def _run_one(fn: Callable[[Any], xr.Dataset], name: str, payload: Any, retries: int) -> _Outcome:
    """Call ``fn(payload)`` up to ``retries + 1`` times and encode the result; an exception becomes a failure."""
    t0 = time.perf_counter()
    last: Exception = RuntimeError("not run")
    for attempt in range(1, retries + 2):
        try:
            ds = _check_result(fn(payload))
            return _Outcome(name, encode_group(name, ds, "", time.perf_counter() - t0, attempt), "", "")
        except Exception as err:  # failure isolation: every error is recorded, none escapes
            last = err
    return _failure(name, last, time.perf_counter() - t0, retries + 1)


def _failure(name: str, err: BaseException, seconds: float, attempts: int) -> _Outcome:
    """A failed outcome: a group without variables whose status names the error."""
    root = err
    while root.__cause__ is not None:  # explicit "raise ... from" only: __context__ holds unrelated handled errors
        root = root.__cause__
    error = f"{type(err).__name__}: {err}"
    if root is not err:  # e.g. distributed's "Could not serialize" wrapping "cannot pickle '_thread.lock' object"
        error += f" (caused by {type(root).__name__}: {root})"
    tb = _short_traceback(err)
    cause = f"{type(root).__name__}: {root}"
    return _Outcome(name, encode_group(name, xr.Dataset(), error, seconds, attempts, tb), error, tb, cause)


# --- running ------------------------------------------------------------------------------------------------------
def _check_items(items: Sequence[tuple[str, Any]]) -> list[str]:
    """Names of ``items``; raise ValueError for a non-string, empty or repeated name."""
    names, seen = [], {}
    for pos, item in enumerate(items):
        if not (isinstance(item, tuple) and len(item) == 2):
            raise ValueError(f"item {pos} is {item!r}; each item must be a (name, payload) tuple")
        name = item[0]
        if not isinstance(name, str) or not name:
            raise ValueError(f"item {pos} has name {name!r}; scenario names must be non-empty strings")
        if name in seen:
            raise ValueError(f"scenario name {name!r} is used by items {seen[name]} and {pos}; names must be unique")
        seen[name] = pos
        names.append(name)
    return names


def start_local_cluster(n_workers: int | None = None) -> LocalCluster:
    """Start a ``distributed.LocalCluster`` the way :func:`run_set` does; close it (``with``) when done.

    Worker processes (``n_workers``, default CPU cores) with 1 thread each and :data:`WORKER_ENV` set in them before
    they import numba (the nanny's ``env``), so numba, OpenMP and BLAS use one thread per worker.
    No dashboard. Pass ``cluster.scheduler_address`` as ``scheduler=`` to run several sets on one cluster.
    """
    from distributed import LocalCluster

    n = n_workers or os.cpu_count() or 1
    # ``env`` is applied inside each worker process before it imports numba. Not pre-spawn-environ: the nannies live
    # in this process and would write it into *this* os.environ (again at every worker restart), after which this
    # process's numba refuses to run ("Cannot set NUMBA_NUM_THREADS to a different value").
    return LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # its HTTP server on a free port (8787 may be taken), without the dashboard
        scheduler_kwargs={"dashboard": False},
        env=dict(WORKER_ENV),
    )


@contextlib.contextmanager
def _client(scheduler: str | None, n_workers: int | None) -> Iterator[Client]:
    """A Client of a new LocalCluster (``scheduler=None``) or of the scheduler at address ``scheduler``."""
    from distributed import Client

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with start_local_cluster(n_workers) as cluster, Client(cluster) as client:
        yield client


def _progress_bar(total: int, enabled: bool) -> Progress | None:
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("scenarios"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(), console=Console(stderr=True),
    )  # fmt: skip
    bar.add_task("scenarios", total=total, failed=0)
    return bar


def _iter_sync(fn: Callable[[Any], xr.Dataset], todo: list[tuple[str, Any]], retries: int) -> Iterator[_Outcome]:
    for name, payload in todo:
        yield _run_one(fn, name, payload, retries)


def _iter_distributed(
    client: Client, fn: Callable[[Any], xr.Dataset], todo: list[tuple[str, Any]], retries: int
) -> Iterator[_Outcome]:
    """Submit every scenario, yield outcomes as they finish; worker deaths and transfer errors become failures."""
    from distributed import as_completed

    futures: dict[Future, str] = {}
    try:
        for name, payload in todo:
            try:
                fut = client.submit(
                    _run_one, fn, name, payload, retries, pure=False, key=f"scenario-{name}-{os.urandom(4).hex()}"
                )
            except Exception as err:  # e.g. a payload that cannot be pickled: that scenario fails
                yield _failure(name, err, 0.0, 0)
                continue
            futures[fut] = name
        for fut in as_completed(list(futures)):
            name = futures.pop(fut)
            try:
                yield fut.result()
            except Exception as err:  # KilledWorker, CancelledError, result that cannot be unpickled
                yield _failure(name, err, 0.0, 0)
            fut.release()
    finally:
        client.cancel(list(futures))  # on KeyboardInterrupt or a store error: stop what is still queued


def run_set(
    items: Sequence[tuple[str, Any]],
    fn: Callable[[Any], xr.Dataset],
    store: str | Path,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    retries: int = 0,
    rerun_failed: bool = True,
) -> RunReport:
    """Run ``fn(payload)`` for every ``(name, payload)`` of ``items`` and write each result to ``store``.

    Parameters
    ----------
    items : sequence of (str, Any)
        Scenario names (unique, non-empty) and payloads; payloads and ``fn`` must pickle unless ``scheduler="sync"``.
    fn : callable
        Payload → one scenario's result Dataset (no ``scenario`` dim; names ``scenario``/``status`` are reserved).
    store : str or Path
        Zarr v3 results store (created when missing). Scenarios it holds complete with status "ok" are skipped.
    scheduler : str, optional
        None: a new ``distributed.LocalCluster`` (worker processes with 1 thread and :data:`WORKER_ENV`);
        ``"tcp://host:port"`` (any Dask address): that scheduler's workers; ``"sync"``: a plain in-process loop.
    n_workers : int, optional
        Workers of the LocalCluster (default: CPU cores). Only with ``scheduler=None``.
    progress : bool
        Show a progress bar on stderr.
    retries : int
        Extra attempts for a scenario whose ``fn`` raises (the last error is recorded).
    rerun_failed : bool
        Also run again scenarios recorded as failed (default); False skips them like finished ones.

    Returns
    -------
    RunReport

    Raises
    ------
    ScenarioSetupError
        When every scenario run failed with the same error (after writing them to the store).
    ValueError
        For bad items, an unknown ``scheduler`` or ``n_workers`` with a remote scheduler.
    """
    t0 = time.perf_counter()
    names = _check_items(items)
    _check_options(scheduler, n_workers, retries)
    store = str(store)
    prepare_store(store, names)
    keep = {n for n, s in read_status(store).items() if s == "ok" or not rerun_failed}
    todo = [(n, p) for n, p in items if n not in keep]
    errors: dict[str, tuple[str, str, str]] = {}  # failed name → (error, traceback, cause); results are not kept
    setup_s = write_s = 0.0
    bar = _progress_bar(len(todo), progress and bool(todo))
    with contextlib.ExitStack() as stack:
        if bar is not None:
            stack.enter_context(bar)
        if scheduler == "sync" or not todo:
            stream = _iter_sync(fn, todo, retries)
        else:
            client = stack.enter_context(_client(scheduler, n_workers))
            setup_s = time.perf_counter() - t0
            stream = _iter_distributed(client, fn, todo, retries)
        stack.enter_context(contextlib.closing(stream))  # closed (queued tasks cancelled) before the client
        for out in stream:
            t_write = time.perf_counter()
            write_group(store, out.name, out.files)
            write_s += time.perf_counter() - t_write
            if out.error:
                errors[out.name] = (out.error, out.traceback, out.cause)
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1, failed=len(errors))
    ran = tuple(n for n, _ in todo)
    skipped = tuple(n for n in names if n in keep)
    report = RunReport(
        store, ran, skipped, tuple(n for n in ran if n in errors), time.perf_counter() - t0, setup_s, write_s
    )
    _raise_on_setup_error(report, errors)
    return report


def _check_options(scheduler: str | None, n_workers: int | None, retries: int) -> None:
    """Raise ValueError for an unknown scheduler, n_workers with an existing scheduler, or negative retries."""
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if scheduler not in (None, "sync") and "://" not in str(scheduler):
        raise ValueError(
            f"scheduler must be None, 'sync' or a Dask address like 'tcp://10.0.0.1:8786', got {scheduler!r}"
        )
    if n_workers is not None and scheduler is not None:
        raise ValueError(f"n_workers applies to a new LocalCluster (scheduler=None), not to scheduler={scheduler!r}")


def _raise_on_setup_error(report: RunReport, errors: dict[str, tuple[str, str, str]]) -> None:
    """Raise ScenarioSetupError when every scenario run (two or more) failed with one and the same (innermost) error.

    A single failing scenario says nothing about the setup (a rerun of the one that failed before): it is recorded.
    """
    same = len({c for _, _, c in errors.values()}) == 1
    if len(report.ran) >= 2 and len(report.failed) == len(report.ran) and same:
        first = report.failed[0]
        error, tb, _ = errors[first]
        raise ScenarioSetupError(
            f"all {len(report.ran)} scenarios failed with the same error, so the setup is wrong rather than a "
            f"scenario: {error}\n(recorded in {report.store}; traceback of {first!r}:)\n{tb}"
        )
