"""One writer at a time across processes (``twin/timeseries/journal.py`` ``WriterLock``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.timeseries.journal import JOURNAL, StoreBusyError
from twin.timeseries.store import Store

SECRET = "test-secret"

# holds a batch open (new meters staged) for argv[2] seconds, then commits
_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time, numpy as np, pandas as pd
    from twin.timeseries.store import Store
    store = Store.open(sys.argv[1], secret="test-secret")
    frame = pd.DataFrame({"device": ["W1"] * 4 + ["W2"] * 4, "parameter": "A+",
                          "time": np.tile(pd.date_range("2020-01-01", periods=4, freq="15min"), 2), "value": 7.0})
    app = store.appender()
    app.add(frame)
    print("open", flush=True)
    time.sleep(float(sys.argv[2]))
    app.commit("slow writer")
    print("committed", flush=True)
    """
)


def _frame(meters: list[str]) -> pd.DataFrame:
    times = pd.date_range("2020-01-01", periods=4, freq="15min")
    return pd.DataFrame(
        {
            "device": np.repeat(np.array(meters, dtype=object), 4),
            "parameter": "A+",
            "time": np.tile(times.to_numpy(), len(meters)),
            "value": 1.0,
        }
    )


def _start_writer(path: Path, hold_s: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(path), str(hold_s)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open", "the writer did not open its batch"
    return proc


@pytest.fixture
def path(tmp_path: Path) -> Path:
    Store.create(tmp_path / "s.zarr", origin="2020-01-01", secret=SECRET, device_chunk=4, chunk_days=1)
    return tmp_path / "s.zarr"


def test_a_second_process_waits_and_never_discards_a_live_batch(path: Path) -> None:
    writer = _start_writer(path, hold_s=1.5)
    staged = [p for p in (path / JOURNAL).iterdir() if p.is_dir()]
    assert staged, "the writer's batch is staged in the journal"
    # opening for writing runs recovery: it must leave the live writer's entry alone ...
    store = Store.open(path, secret=SECRET)
    assert all(p.exists() for p in staged)
    # ... and our own append waits for the writer's commit instead of interleaving with it
    t0 = time.monotonic()
    report = store.append(_frame(["M1", "M2", "M3"]))
    waited = time.monotonic() - t0
    out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0
    assert out.strip() == "committed"
    assert waited > 0.5, f"the append did not wait for the other writer ({waited:.2f} s)"
    assert report.stored == 12
    ds = Store.open(path, secret=SECRET, mode="r").dataset()
    # both batches are there, each meter in its own column (the writer's new meters were not overwritten)
    assert ds.sizes["meter"] == 5
    assert int(ds["A_plus"].notnull().sum()) == 8 + 12
    assert sorted(np.unique(ds["A_plus"].to_numpy()[~np.isnan(ds["A_plus"].to_numpy())])) == [1.0, 7.0]


def test_a_writer_that_waits_too_long_is_told_who_holds_the_store(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = _start_writer(path, hold_s=3.0)
    monkeypatch.setenv("GRIDTWIN_WRITER_WAIT_S", "0.3")
    store = Store.open(path, secret=SECRET)
    with pytest.raises(StoreBusyError, match=rf"written by process {writer.pid} .*one writer at a time"):
        store.append(_frame(["M1"]))
    writer.communicate(timeout=30)
    assert writer.returncode == 0
    monkeypatch.delenv("GRIDTWIN_WRITER_WAIT_S")
    assert store.append(_frame(["M1"])).stored == 4, "the store is free again once the writer committed"
