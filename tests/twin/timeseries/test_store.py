"""The zarr store: appends, idempotence, conflicts, crash safety, pseudonymisation, erasure, retention."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.timeseries import flags
from twin.timeseries.journal import JOURNAL
from twin.timeseries.privacy import SecretMismatchError, erase_customer, export_customer
from twin.timeseries.store import Store, StoreError

SECRET = "test-secret"
ROOT = Path(__file__).resolve().parents[3]


def _readings(meters: list[str], start: str, periods: int, offset: float = 0.0) -> pd.DataFrame:
    times = pd.date_range(start, periods=periods, freq="15min")
    values = offset + np.arange(len(meters) * periods, dtype=float)
    return pd.DataFrame(
        {
            "device": np.repeat(np.array(meters, dtype=object), periods),
            "parameter": "A+",
            "time": np.tile(times.to_numpy(), len(meters)),
            "value": values,
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.create(tmp_path / "s.zarr", origin="2020-01-01", secret=SECRET, device_chunk=4, chunk_days=1)


def test_append_reads_back_on_the_slot_grid(store: Store) -> None:
    r = _readings(["M1", "M2"], "2020-01-01 00:15", 8)
    r.loc[2, "time"] += pd.Timedelta("4s")  # head-end jitter: 00:45:04 is the 00:45 reading
    report = store.append(r, source="a.csv")
    assert (report.stored, report.duplicates, report.conflicts, len(report.rejected)) == (16, 0, 0, 0)
    da = store.dataset()["A_plus"]
    keys = store.meter_ids(["M1", "M2"])
    got = da.sel(meter=keys[0]).to_series().dropna()
    assert got.index[0] == pd.Timestamp("2020-01-01 00:15")
    np.testing.assert_array_equal(got.to_numpy(), np.arange(8.0))
    assert np.isnan(da.sel(meter=keys[1], time="2020-01-01 00:00").item())  # slot 0 never read
    quality = store.dataset()["quality_A_plus"].sel(meter=keys[1])
    assert quality.sel(time="2020-01-01 00:00").item() == flags.MISSING
    assert (quality.sel(time=slice("2020-01-01 00:15", "2020-01-01 02:00")) == flags.OK).all()


def test_bad_readings_are_rejected_with_reasons(store: Store) -> None:
    r = _readings(["M1"], "2020-01-01 01:00", 4)
    r.loc[0, "time"] = pd.Timestamp("2020-01-01 01:07")  # off the 15-min grid
    r.loc[1, "time"] = pd.Timestamp("2019-12-31 23:00")  # before the origin
    r.loc[2, "value"] = np.nan
    report = store.append(r)
    assert report.stored == 1
    reasons = report.rejected["reason"].tolist()
    assert len(reasons) == 3
    assert "off the store's 0 days 00:15:00 grid" in reasons[0]
    assert "before the store's origin" in reasons[1]
    assert "not a finite number" in reasons[2]


def test_reingest_is_idempotent_and_conflicts_are_flagged(store: Store) -> None:
    r = _readings(["M1", "M2", "M3"], "2020-01-01", 200)  # spans 3 daily time chunks
    store.append(r)
    before = store.dataset()["A_plus"].to_numpy().copy()
    again = store.append(r)
    assert (again.stored, again.duplicates, again.conflicts) == (0, 600, 0)
    np.testing.assert_array_equal(store.dataset()["A_plus"].to_numpy(), before)
    changed = r.iloc[[5]].assign(value=-1.0)
    report = store.append(changed)
    assert report.conflicts == 1
    ds = store.dataset()
    np.testing.assert_array_equal(ds["A_plus"].to_numpy(), before)  # the first value is kept
    assert int((ds["quality_A_plus"] & flags.CONFLICT).astype(bool).sum()) == 1


def test_duplicates_inside_one_batch_are_counted_once(store: Store) -> None:
    r = _readings(["M1"], "2020-01-01", 4)
    twice = pd.concat([r, r, r.iloc[[0]].assign(value=99.0)], ignore_index=True)
    report = store.append(twice)
    assert (report.stored, report.duplicates, report.conflicts) == (4, 4, 1)
    assert store.dataset()["A_plus"].isel(time=0).item() == 0.0


def test_meters_and_time_grow_across_batches(store: Store) -> None:
    store.append(_readings(["M1", "M2"], "2020-01-01", 4))
    second = _readings(["M3", "M4", "M5", "M6", "M1"], "2020-01-03", 4)
    store.append(second)
    ds = store.dataset()
    assert ds.sizes["meter"] == 6
    assert ds["time"][-1].item() == pd.Timestamp("2020-01-03 00:45").value
    assert int(ds["A_plus"].notnull().sum()) == 28
    reopened = Store.open(store.path, secret=SECRET)
    assert reopened.append(second[second["device"] == "M6"]).duplicates == 4


def test_wrong_secret_is_refused(store: Store) -> None:
    store.append(_readings(["M1"], "2020-01-01", 4))
    with pytest.raises(SecretMismatchError, match="another pseudonymisation secret"):
        Store.open(store.path, secret="other").append(_readings(["M1"], "2020-01-01", 4))


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is not a gridtwin store"):
        Store.open(tmp_path)


def _all_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def _meters_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer": ["Alice-7781", "Bob-1201", "Alice-7781"],
            "load": ["load/1", "load/2", "load/1"],
            "bus": ["1", "2", "1"],
            "trafo": ["trafo/0"] * 3,
        },
        index=pd.Index(["MTR-000001", "MTR-000002", "MTR-000003"], name="meter"),
    )


def test_clear_ids_never_reach_the_store(store: Store) -> None:
    meters = _meters_table()
    store.append(_readings(list(meters.index), "2020-01-01", 8), meters=meters)
    blob = _all_bytes(store.path)
    for clear in [*meters.index, *meters["customer"]]:
        assert clear.encode() not in blob
    ds = store.dataset()
    assert set(ds["customer"].values) == {
        store.pseudonymiser.customer("Alice-7781"),
        store.pseudonymiser.customer("Bob-1201"),
    }


def test_erase_customer_leaves_no_trace(store: Store) -> None:
    meters = _meters_table()
    store.append(_readings(list(meters.index), "2020-01-01", 150), meters=meters)
    bob_before = store.dataset()["A_plus"].sel(meter=store.meter_ids(["MTR-000002"])[0]).to_numpy().copy()
    alice_keys = store.meter_ids(["MTR-000001", "MTR-000003"])
    alice_pseudonym = store.pseudonymiser.customer("Alice-7781")
    exported = export_customer(store, "Alice-7781", meters)
    assert sorted(exported["meter"].values) == ["MTR-000001", "MTR-000003"]
    assert int(exported["A_plus"].notnull().sum()) == 300
    counts = erase_customer(store, "Alice-7781")
    assert counts["meters"] == 2
    ds = store.dataset()
    assert ds.sizes["meter"] == 3
    assert not set(alice_keys) & set(ds["meter"].values)
    assert alice_pseudonym not in set(ds["customer"].values)
    erased = ds["meter"].str.startswith("erased-").to_numpy()
    assert erased.sum() == 2
    assert ds["A_plus"].isel(meter=erased).isnull().all()
    assert (ds["quality_A_plus"].isel(meter=erased) == flags.MISSING).all()
    np.testing.assert_array_equal(ds["A_plus"].sel(meter=store.meter_ids(["MTR-000002"])[0]), bob_before)
    blob = _all_bytes(store.path)
    for trace in [*alice_keys, alice_pseudonym, "Alice-7781", "MTR-000001"]:
        assert trace.encode() not in blob
    # values: the exported numbers appear nowhere in the chunks (they are distinct floats per meter)
    assert not (store.path / JOURNAL).exists() or not any((store.path / JOURNAL).iterdir())
    with pytest.raises(KeyError, match="no meter of customer"):
        erase_customer(store, "Alice-7781")


def test_retention_drops_old_values(store: Store) -> None:
    store.append(_readings(["M1", "M2"], "2020-01-01", 96 * 4))
    store.set_retention({"A_plus": 2})
    cleared = store.apply_retention(now=pd.Timestamp("2020-01-05"))
    assert cleared["measurements/A_plus"] == 2 * 96
    da = store.dataset()["A_plus"]
    assert da.sel(time=slice(None, "2020-01-02 23:45")).isnull().all()
    assert da.sel(time=slice("2020-01-03", None)).notnull().all()
    old_chunks = [
        p for p in (store.path / "measurements" / "A_plus").rglob("*") if p.is_file() and p.name != "zarr.json"
    ]
    assert len(old_chunks) == 2  # the two cleared daily chunk rows are gone from disk, two days remain


def test_error_inside_a_batch_leaves_the_store_unchanged(store: Store) -> None:
    store.append(_readings(["M1"], "2020-01-01", 4))
    before = store.dataset()["A_plus"].to_numpy().copy()

    def fail_inside_a_batch() -> None:
        with store.batch():
            store._append(_readings(["M1", "M9"], "2020-01-02", 4), "measurements", {}, None, "", None)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside_a_batch()
    ds = Store.open(store.path, secret=SECRET).dataset()
    assert ds.sizes["meter"] == 1
    np.testing.assert_array_equal(ds["A_plus"].to_numpy(), before)


def test_committed_batch_is_rolled_forward(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from twin.timeseries import journal

    store.append(_readings(["M1"], "2020-01-01", 4))

    def crash(*args: object) -> None:
        raise KeyboardInterrupt("power cut after the commit point")

    monkeypatch.setattr(journal, "_apply", crash)
    with pytest.raises(KeyboardInterrupt):
        store.append(_readings(["M1"], "2020-01-01 01:00", 4, offset=100))
    monkeypatch.undo()
    assert list((store.path / JOURNAL).glob("*.commit.json"))
    ds = Store.open(store.path, secret=SECRET).dataset()
    np.testing.assert_array_equal(ds["A_plus"].to_numpy().ravel(), [0, 1, 2, 3, 100, 101, 102, 103])


_WRITER = textwrap.dedent(
    """
    import sys, numpy as np, pandas as pd
    from twin.timeseries.store import Store
    store = Store.open(sys.argv[1], secret="test-secret")
    meters = np.array([f"M{i}" for i in range(2000)], dtype=object)
    times = pd.date_range("2020-01-01", periods=200, freq="15min").to_numpy()
    base = pd.DataFrame({"device": np.tile(meters, len(times)), "parameter": "A+",
                         "time": np.repeat(times, len(meters)), "value": 0.0})
    step = np.timedelta64(3, "D")
    for batch in range(1000):  # almost all the time is spent inside store.append (frames are cheap to make)
        store.append(base.assign(time=base["time"].to_numpy() + batch * step, value=float(batch)))
        print(batch, flush=True)
    """
)


def test_killed_ingest_keeps_exactly_the_committed_batches(tmp_path: Path) -> None:
    path = tmp_path / "crash.zarr"
    Store.create(path, origin="2020-01-01", secret=SECRET, device_chunk=500, chunk_days=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = np.random.default_rng(1)
    killed_mid_batch = kills = 0
    while kills < 3 or (not killed_mid_batch and kills < 8):
        kills += 1
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # one batch done: the next ones are being written
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        killed_mid_batch += (path / JOURNAL).is_dir() and any((path / JOURNAL).iterdir())
        ds = Store.open(path, secret=SECRET).dataset()
        values = ds["A_plus"].to_numpy()
        filled = ~np.isnan(values)
        per_slot = np.where(filled, values, -1.0).max(axis=1)
        # every slot row is either complete (all 2,000 meters) or empty: no half-written batch
        assert set(filled.sum(axis=1).tolist()) <= {0, 2000}
        batches = set(np.unique(per_slot[per_slot >= 0]).astype(int).tolist())
        assert batches == set(range(len(batches)))  # exactly the first k batches
        assert not list((path / JOURNAL).glob("*/"))  # recovery left no staging folder behind
    assert killed_mid_batch  # the kills did hit a batch in flight (they all do on a 2-core machine)


def test_fsspec_url_store_appends_atomically(monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec

    from twin.timeseries import journal

    url = "memory://gridtwin-test/store.zarr"
    fs = fsspec.filesystem("memory")
    if fs.exists("/gridtwin-test"):
        fs.rm("/gridtwin-test", recursive=True)
    store = Store.create(url, origin="2020-01-01", secret=SECRET, device_chunk=4, chunk_days=1)
    first = _readings(["M1", "M2"], "2020-01-01", 8)
    assert store.append(first).stored == 16
    assert Store.open(url, secret=SECRET).append(first).duplicates == 16  # idempotent there too

    def crash(*args: object) -> None:
        raise KeyboardInterrupt("connection lost before the commit point")

    monkeypatch.setattr(journal.Location, "write_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        store.append(_readings(["M3"], "2020-01-02", 8))
    monkeypatch.undo()
    assert fs.find("/gridtwin-test/store.zarr/.journal")  # the staged batch is still lying there
    ds = Store.open(url, secret=SECRET).dataset()  # opening discards it
    assert ds.sizes["meter"] == 2
    assert int(ds["A_plus"].notnull().sum()) == 16
    assert not fs.find("/gridtwin-test/store.zarr/.journal")
    fs.rm("/gridtwin-test", recursive=True)


def test_rewriting_a_derived_group_is_atomic_and_quiet(store: Store) -> None:
    import xarray as xr

    times = pd.date_range("2020-01-01", periods=4, freq="15min")
    first = xr.Dataset({"p_mw": (("time", "load"), np.ones((4, 2)))}, coords={"time": times, "load": ["a", "b"]})
    store.write_dataset("loads", first)
    second = xr.Dataset(
        {"q_mvar": (("time", "load"), np.zeros((4, 3)))}, coords={"time": times, "load": ["a", "b", "c"]}
    )
    store.write_dataset("loads", second)  # replaces the group (pytest turns zarr's warnings into errors)
    ds = store.dataset("loads")
    assert list(ds.data_vars) == ["q_mvar"]
    assert ds.sizes["load"] == 3
