"""Tests of scenarios.runner: resumability, failure isolation, sync == distributed, explicit scheduler address."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cloudpickle
import numpy as np
import pytest
import xarray as xr

if TYPE_CHECKING:
    from distributed import LocalCluster

from scenarios.runner import (
    RunReport,
    ScenarioSetupError,
    open_results,
    read_status,
    run_set,
    start_local_cluster,
)

# worker processes cannot import this test module (pytest imports it by path): ship its functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ROOT = Path(__file__).resolve().parents[2]


def scenario_result(payload: dict) -> xr.Dataset:
    """A small deterministic result shaped like the scenario statistics (branch, bus, percentile, scalar)."""
    rng = np.random.default_rng(payload["seed"])
    branch = np.array([f"line/{i}" for i in range(4)], dtype=object)
    bus = np.array([f"bus/{i}" for i in range(3)], dtype=object)
    loading = rng.uniform(0, 150, size=(96, 4))
    if payload.get("log"):
        with Path(payload["log"]).open("a") as f:
            f.write(f"{payload['seed']} {os.getpid()}\n")
    if payload.get("fail"):
        raise ValueError(f"scenario with seed {payload['seed']} is broken")
    return xr.Dataset(
        {
            "max_loading_pct": ("branch", loading.max(axis=0), {"units": "%"}),
            "hours_over_limit": ("branch", (loading > 100).sum(axis=0) * 0.25, {"units": "h"}),
            "loading_duration_pct": (("branch", "percentile"), np.percentile(loading, [50, 95], axis=0).T),
            "min_vm_pu": ("bus", rng.uniform(0.9, 1.0, size=3)),
            "energy_loss_mwh": ((), float(loading.sum() * 1e-3)),
        },
        coords={"branch": branch, "bus": bus, "percentile": [50.0, 95.0]},
    )


def _items(n: int, **extra: object) -> list[tuple[str, dict]]:
    return [(f"s{i:02d}", {"seed": i, **extra}) for i in range(n)]


def _calls(log: Path) -> tuple[list[int], set[int]]:
    """Seeds run (sorted) and the process ids that ran them, from the log ``scenario_result`` appends to."""
    rows = [line.split() for line in log.read_text().splitlines()]
    return sorted(int(seed) for seed, _ in rows), {int(pid) for _, pid in rows}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """One LocalCluster (2 worker processes, 1 thread each, as run_set starts them) shared by the module's tests."""
    with start_local_cluster(2) as local:
        yield local


@pytest.fixture
def cluster_address(cluster: LocalCluster) -> str:
    return cluster.scheduler_address


def test_sync_results_and_report(tmp_path: Path) -> None:
    items = _items(3)
    report = run_set(items, scenario_result, tmp_path / "r.zarr", scheduler="sync", progress=False)
    assert isinstance(report, RunReport)
    assert report.ran == ("s00", "s01", "s02")
    assert report.skipped == report.failed == ()
    assert report.scenarios_per_hour > 0
    res = open_results(tmp_path / "r.zarr")
    assert list(res["scenario"].values) == ["s00", "s01", "s02"]
    assert list(res["status"].values) == ["ok"] * 3
    assert res["max_loading_pct"].dims == ("scenario", "branch")
    assert res["max_loading_pct"].attrs["units"] == "%"
    for name, payload in items:
        xr.testing.assert_equal(res.sel(scenario=name).drop_vars(["scenario", "status", "run_seconds"]),
                                scenario_result(payload))  # fmt: skip


def test_sync_equals_local_cluster(tmp_path: Path) -> None:
    items = _items(6)
    run_set(items, scenario_result, tmp_path / "sync.zarr", scheduler="sync", progress=False)
    report = run_set(items, scenario_result, tmp_path / "dask.zarr", n_workers=2, progress=False)
    assert report.ran == tuple(n for n, _ in items)
    assert report.setup_seconds > 0  # a LocalCluster was started
    a, b = open_results(tmp_path / "sync.zarr"), open_results(tmp_path / "dask.zarr")
    xr.testing.assert_equal(a.drop_vars("run_seconds"), b.drop_vars("run_seconds"))


def test_explicit_scheduler_address(tmp_path: Path, cluster_address: str) -> None:
    from distributed import Client

    with Client(cluster_address) as client:
        worker_pids = set(client.run(os.getpid).values())
    log = tmp_path / "calls.txt"
    report = run_set(_items(4, log=str(log)), scenario_result, tmp_path / "r.zarr", scheduler=cluster_address)
    assert report.ran == ("s00", "s01", "s02", "s03")
    seeds, pids = _calls(log)
    assert seeds == [0, 1, 2, 3]
    assert pids <= worker_pids  # the cluster's worker processes ran them, not this one
    assert os.getpid() not in pids
    assert list(open_results(tmp_path / "r.zarr")["status"].values) == ["ok"] * 4


@pytest.mark.parametrize("where", ["sync", "cluster"])
def test_failing_scenario_is_recorded_and_others_go_on(tmp_path: Path, cluster_address: str, where: str) -> None:
    items = _items(4)
    items[1] = ("s01", {"seed": 1, "fail": True})
    scheduler = "sync" if where == "sync" else cluster_address
    report = run_set(items, scenario_result, tmp_path / "r.zarr", scheduler=scheduler, progress=False)
    assert report.failed == ("s01",)
    assert report.ran == ("s00", "s01", "s02", "s03")
    res = open_results(tmp_path / "r.zarr")
    assert list(res["status"].values) == ["ok", "failed: ValueError: scenario with seed 1 is broken", "ok", "ok"]
    assert np.isnan(res["max_loading_pct"].sel(scenario="s01")).all()
    assert np.isfinite(res["max_loading_pct"].sel(scenario=["s00", "s02", "s03"])).all()
    xr.testing.assert_equal(res["min_vm_pu"].sel(scenario="s02", drop=True), scenario_result({"seed": 2})["min_vm_pu"])
    # the traceback is kept in the store
    ds = xr.open_zarr(tmp_path / "r.zarr", group="scenarios/s01", consolidated=False, chunks=None)
    assert "scenario_result" in ds.attrs["gridtwin_scenario"]["traceback"]
    assert "raise ValueError" in ds.attrs["gridtwin_scenario"]["traceback"]
    # a rerun runs the failed one again (now fixed) and skips the others
    fixed = [(n, {**p, "fail": False}) for n, p in items]
    again = run_set(fixed, scenario_result, tmp_path / "r.zarr", scheduler="sync", progress=False)
    assert again.ran == ("s01",)
    assert again.skipped == ("s00", "s02", "s03")
    assert list(open_results(tmp_path / "r.zarr")["status"].values) == ["ok"] * 4


def test_failed_kept_when_rerun_failed_false(tmp_path: Path) -> None:
    items = [("a", {"seed": 0}), ("b", {"seed": 1, "fail": True})]
    run_set(items, scenario_result, tmp_path / "r.zarr", scheduler="sync", progress=False)
    again = run_set(items, scenario_result, tmp_path / "r.zarr", scheduler="sync", progress=False, rerun_failed=False)
    assert again.ran == ()
    assert again.skipped == ("a", "b")


def test_same_error_everywhere_raises_setup_error(tmp_path: Path, cluster_address: str) -> None:
    def needs_missing_file(payload: dict) -> xr.Dataset:
        return xr.open_dataset(Path(payload["dir"]) / "base_case.nc")

    items = [(f"s{i}", {"dir": str(tmp_path)}) for i in range(3)]
    with pytest.raises(ScenarioSetupError, match=r"all 3 scenarios failed with the same error.*base_case\.nc"):
        run_set(items, needs_missing_file, tmp_path / "r.zarr", scheduler=cluster_address, progress=False)
    assert set(read_status(tmp_path / "r.zarr").values()) == {read_status(tmp_path / "r.zarr")["s0"]}
    assert read_status(tmp_path / "r.zarr")["s0"].startswith("failed: FileNotFoundError")


def test_wrong_return_type_fails_that_scenario(tmp_path: Path) -> None:
    def half_wrong(payload: dict) -> xr.Dataset:
        return scenario_result(payload) if payload["seed"] else {"not": "a dataset"}

    report = run_set(_items(2), half_wrong, tmp_path / "r.zarr", scheduler="sync", progress=False)
    assert report.failed == ("s00",)
    assert read_status(tmp_path / "r.zarr")["s00"] == (
        "failed: TypeError: the scenario function returned dict, expected an xarray.Dataset"
    )


def test_retries(tmp_path: Path) -> None:
    marker = tmp_path / "tried"

    def flaky(payload: dict) -> xr.Dataset:
        if not marker.exists():
            marker.touch()
            raise ConnectionError("transient")
        return scenario_result(payload)

    report = run_set(_items(1), flaky, tmp_path / "r.zarr", scheduler="sync", progress=False, retries=1)
    assert report.failed == ()
    assert open_results(tmp_path / "r.zarr")["status"].item() == "ok"


def test_killed_worker_is_recorded(tmp_path: Path, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    def dies(payload: dict) -> xr.Dataset:
        if payload.get("die"):
            os._exit(3)
        return scenario_result(payload)

    monkeypatch.setattr(cluster.scheduler, "allowed_failures", 0)  # give up after the first death, not the fourth
    items = [*_items(2), ("boom", {"seed": 9, "die": True})]
    report = run_set(items, dies, tmp_path / "r.zarr", scheduler=cluster.scheduler_address, progress=False)
    # tasks queued on the dying worker are suspects too (Dask's rule; retried when allowed-failures > 0)
    assert "boom" in report.failed
    status = read_status(tmp_path / "r.zarr")
    assert len(report.failed) < len(items), status
    assert all(status[n].startswith("failed: KilledWorker") for n in report.failed)
    ok = [n for n in report.ran if n not in report.failed]
    assert all(status[n] == "ok" for n in ok)
    assert np.isfinite(open_results(tmp_path / "r.zarr")["max_loading_pct"].sel(scenario=ok)).all()


_KILLED_RUN = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from scenarios.runner import run_set
    from test_runner import scenario_result, _items

    log = Path({log!r})

    def dies_at_third(payload):
        ds = scenario_result(payload)
        if payload["seed"] == 2 and not Path({marker!r}).exists():
            Path({marker!r}).touch()
            os._exit(9)  # the runner process dies with s02 in flight, like kill -9
        return ds

    run_set(_items(6, log=str(log)), dies_at_third, {store!r}, scheduler="sync", progress=False)
    """
)


def test_resume_after_killed_run(tmp_path: Path, cluster_address: str) -> None:
    store, log, marker = tmp_path / "r.zarr", tmp_path / "calls.txt", tmp_path / "died"
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent), log=str(log), marker=str(marker), store=str(store))
    proc = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 9, proc.stderr
    assert sorted(read_status(store)) == ["s00", "s01"]  # the killed one (s02) and the ones after it are missing
    first = open_results(store)
    report = run_set(_items(6, log=str(log)), scenario_result, store, scheduler=cluster_address, progress=False)
    assert report.skipped == ("s00", "s01")
    assert report.ran == ("s02", "s03", "s04", "s05")
    # every scenario ran once, except s02: once in the killed run (in flight) and once after the restart
    assert _calls(log)[0] == [0, 1, 2, 2, 3, 4, 5]
    res = open_results(store)
    assert list(res["scenario"].values) == [f"s{i:02d}" for i in range(6)]
    xr.testing.assert_equal(res.isel(scenario=[0, 1]).drop_vars("run_seconds"), first.drop_vars("run_seconds"))


def test_interrupted_write_counts_as_not_run(tmp_path: Path) -> None:
    import zarr

    store = tmp_path / "r.zarr"
    run_set(_items(2), scenario_result, store, scheduler="sync", progress=False)
    group = zarr.open_group(store, path="scenarios/s01", mode="r+")
    group.attrs["gridtwin_scenario"] = {**group.attrs["gridtwin_scenario"], "complete": False}
    assert list(read_status(store)) == ["s00"]
    assert list(open_results(store)["scenario"].values) == ["s00"]
    assert run_set(_items(2), scenario_result, store, scheduler="sync", progress=False).ran == ("s01",)


def test_names_are_encoded_and_order_kept(tmp_path: Path) -> None:
    items = [("z/1 . 2", {"seed": 1}), ("__a", {"seed": 2}), (".", {"seed": 3})]
    run_set(items, scenario_result, tmp_path / "r.zarr", scheduler="sync", progress=False)
    assert list(open_results(tmp_path / "r.zarr")["scenario"].values) == ["z/1 . 2", "__a", "."]


@pytest.mark.parametrize(
    ("items", "kwargs", "match"),
    [
        ([("a", 1), ("a", 2)], {}, "'a' is used by items 0 and 1"),
        ([("", 1)], {}, "non-empty strings"),
        ([("a", 1, 2)], {}, r"\(name, payload\) tuple"),
        ([("a", 1)], {"scheduler": "local"}, "scheduler must be None, 'sync' or a Dask address"),
        ([("a", 1)], {"scheduler": "sync", "n_workers": 2}, "n_workers applies to a new LocalCluster"),
        ([("a", 1)], {"scheduler": "sync", "retries": -1}, "retries must be >= 0"),
    ],
)
def test_bad_input(tmp_path: Path, items: list, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run_set(items, scenario_result, tmp_path / "r.zarr", progress=False, **kwargs)


def test_reserved_names_rejected(tmp_path: Path) -> None:
    def with_status(payload: dict) -> xr.Dataset:
        return scenario_result(payload).assign(status=1.0)

    items = [("a", {"seed": 0}), ("b", {"seed": 1})]
    with pytest.raises(ScenarioSetupError, match="reserved name"):
        run_set(items, with_status, tmp_path / "r.zarr", scheduler="sync", progress=False)


def test_open_results_empty_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no complete scenario"):
        open_results(tmp_path / "nothing.zarr")


def test_fsspec_url_store() -> None:
    import fsspec

    store = "memory://gridtwin-runner-test/r.zarr"
    fs = fsspec.filesystem("memory")
    try:
        report = run_set(_items(2), scenario_result, store, scheduler="sync", progress=False)
        assert report.ran == ("s00", "s01")
        fs.rm("/gridtwin-runner-test/r.zarr/scenarios/s01/zarr.json")  # an interrupted write
        assert list(read_status(store)) == ["s00"]
        assert run_set(_items(2), scenario_result, store, scheduler="sync", progress=False).ran == ("s01",)
        res = open_results(store)
        xr.testing.assert_equal(
            res.sel(scenario="s01").drop_vars(["scenario", "status", "run_seconds"]), scenario_result({"seed": 1})
        )
    finally:
        fs.rm("/gridtwin-runner-test", recursive=True)


def test_results_with_different_elements_coords_and_attrs(tmp_path: Path) -> None:
    def evaluate_like(payload: dict) -> xr.Dataset:
        ds = scenario_result(payload)
        kind = np.array(["line", "line", "line", "trafo" if payload["seed"] == 1 else "line"], dtype=object)
        ds = ds.assign_coords(branch_kind=("branch", kind)).assign_attrs(step_h=0.25, warnings=f"w{payload['seed']}")
        if payload["seed"] == 2:  # a scenario with one branch more (e.g. a new line)
            extra = ds.isel(branch=[0]).assign_coords(branch=np.array(["line/new"], dtype=object))
            ds = xr.concat(
                [ds, extra], dim="branch", data_vars="all", coords="different", compat="equals", join="outer"
            )
        return ds

    items = [*_items(3), ("bad", {"seed": 3, "fail": True})]
    run_set(items, evaluate_like, tmp_path / "r.zarr", scheduler="sync", progress=False)
    res = open_results(tmp_path / "r.zarr")
    assert list(res["scenario"].values) == ["s00", "s01", "s02", "bad"]
    assert res.attrs == {"step_h": 0.25}  # equal everywhere: stays an attribute
    assert list(res["attr_warnings"].values) == ["w0", "w1", "w2", ""]
    assert res["branch_kind"].dims == ("scenario", "branch")  # differs between scenarios
    assert res["branch_kind"].sel(scenario="s01", branch="line/3").item() == "trafo"
    assert res.sizes["branch"] == 5
    new = res["max_loading_pct"].sel(branch="line/new")
    assert np.isnan(new.sel(scenario=["s00", "s01", "bad"])).all()
    assert new.sel(scenario="s02").item() == res["max_loading_pct"].sel(scenario="s02", branch="line/0").item()
    assert res["status"].sel(scenario="bad").item().startswith("failed: ValueError")


def test_benchmark_statistics_of_a_known_series() -> None:
    from benchmarks.scenarios import summarize_loading

    loading = np.array([[50.0, 120.0], [80.0, 90.0], [np.nan, np.nan], [110.0, 130.0]])  # step 2 did not converge
    pf = xr.Dataset(
        {
            "loading_pct": (("time", "branch"), loading),
            "vm_pu": (("time", "bus"), np.array([[1.0, 0.97], [1.0, 0.95], [np.nan, np.nan], [1.01, 0.96]])),
            "p_loss_mw": ("time", np.array([0.4, 0.8, np.nan, 1.2])),
            "converged": ("time", np.array([True, True, False, True])),
        },
        coords={"branch": ["line/a", "trafo/b"], "bus": ["1", "2"]},
    )
    out = summarize_loading(pf)
    np.testing.assert_allclose(out["max_loading_pct"], [110.0, 130.0])
    np.testing.assert_allclose(out["hours_over_limit"], [0.25, 0.5])  # 1 and 2 quarter-hours above 100 %
    np.testing.assert_allclose(out["loading_duration_pct"].sel(percentile=50.0), [80.0, 120.0])
    np.testing.assert_allclose(out["loading_duration_pct"].sel(percentile=100.0), out["max_loading_pct"])
    np.testing.assert_allclose(out["min_vm_pu"], [1.0, 0.95])
    assert out["energy_loss_mwh"].item() == pytest.approx(0.6)  # (0.4 + 0.8 + 1.2) MW × 0.25 h
    assert out["steps_not_converged"].item() == 1


def test_benchmark_estimate_scales_the_measured_cost() -> None:
    from benchmarks.scenarios import estimate_large_run

    rows = [
        {"workers": 1, "cluster_start_s": 1.0, "cpu_s_per_scenario": 0.5, "write_s": 0.64, "scenarios": 64},
        {"workers": 2, "cluster_start_s": 1.0, "cpu_s_per_scenario": 0.6, "write_s": 0.64, "scenarios": 64},
        {"workers": 1, "cluster_start_s": 0.0, "cpu_s_per_scenario": 0.1, "write_s": 0.64, "scenarios": 64},  # sync
    ]
    est = {e["workers"]: e for e in estimate_large_run(rows, n_scenarios=10_000, cluster_workers=(2, 1000))}
    assert est[2]["compute_hours"] == pytest.approx(10_000 * 0.6 / 2 / 3600)  # the largest cluster's CPU cost
    assert est[2]["hours"] == est[2]["compute_hours"]
    assert est[1000]["hours"] == pytest.approx(10_000 * 0.01 / 3600)  # bound by the client's writes


def test_unpicklable_fn_and_payload(tmp_path: Path, cluster_address: str) -> None:
    import threading

    lock = threading.Lock()

    def holds_a_lock(payload: dict) -> xr.Dataset:
        with lock:
            return scenario_result(payload)

    with pytest.raises(
        ScenarioSetupError, match=r"same error.*serialize.*caused by TypeError: cannot pickle '_thread.lock'"
    ):
        run_set(_items(2), holds_a_lock, tmp_path / "a.zarr", scheduler=cluster_address, progress=False)
    items = [*_items(2), ("locked", {"seed": 5, "lock": threading.Lock()})]
    report = run_set(items, scenario_result, tmp_path / "b.zarr", scheduler=cluster_address, progress=False)
    assert report.failed == ("locked",)
    assert "cannot pickle '_thread.lock' object" in read_status(tmp_path / "b.zarr")["locked"]


def test_starting_a_cluster_leaves_this_process_environment_alone() -> None:
    import os

    # NUMBA_NUM_THREADS changed in this process makes its numba refuse to run once its threads exist. (Dask's own
    # default pre-spawn-environ still sets OMP/MKL/OPENBLAS_NUM_THREADS=1 here; harmless for numba.)
    before = os.environ.get("NUMBA_NUM_THREADS")
    with start_local_cluster(1):
        assert os.environ.get("NUMBA_NUM_THREADS") == before


def _numba_threads() -> tuple[int, str | None]:
    import os

    import numba

    return numba.get_num_threads(), os.environ.get("NUMBA_NUM_THREADS")


def test_workers_run_numba_on_one_thread(cluster_address: str) -> None:
    from distributed import Client

    with Client(cluster_address) as client:
        seen = client.run(_numba_threads)
    assert seen
    assert set(seen.values()) == {(1, "1")}
