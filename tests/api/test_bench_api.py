"""``gridtwin bench api`` on a copy of the demo site: a short run, no errors, no lost readings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks import api
from twin.timeseries.store import Store


def _copy_site(site_store: Path, dest: Path) -> Path:
    for item in site_store.parent.iterdir():
        if item.name.startswith(site_store.name):
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            copy(item, dest / item.name)
    return dest / site_store.name


def test_bench_api_short_run_loses_nothing(site_store: Path, tmp_path: Path) -> None:
    site = _copy_site(site_store, tmp_path)
    out = tmp_path / "api.json"
    status = api.main(["--clients", "6", "--duration", "4", "--site", str(site), "--out", str(out)])
    report = json.loads(out.read_text())
    assert status == 0
    assert report["errors"] == 0, report["error_samples"]
    assert report["readings_acknowledged"] == report["readings_sent"] > 0
    assert report["lost"] == 0
    # count independently of the bench: every acknowledged reading is in the store, in its own slot
    values = Store.open(site, mode="r").dataset("measurements")[api.PARAMETER]
    assert int(values.notnull().sum()) == report["readings_acknowledged"]
    assert set(report["latency_ms"]) >= {"read", "ingest", "all"}
    assert report["latency_ms"]["all"]["n"] == report["requests"]
