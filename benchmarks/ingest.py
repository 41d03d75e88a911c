"""``bench ingest``: meter readings into the store, side by side with a pandas baseline and InfluxDB, in one run.

Data: ``n_meters`` meters × enough 15-minute slots for ``n_rows`` readings of one parameter (cumulative register,
kWh, 3 decimals), written once as a long CSV (``device,parameter,time,value``, ISO times, sorted by time as
head-end exports are) and as InfluxDB line protocol (``meter,device=M00001 A+=123.456 <ns>``). Each tool starts
from the same file and ends with every reading durable:

- gridtwin: ``import_files`` into a fresh store (journal batches, fsync before each commit);
- pandas baselines: ``pd.read_csv`` (C engine) → pivot to (time, meter) → ``xarray.Dataset.to_zarr`` (zarr v3),
  once with ``parse_dates`` (the usual notebook path) and once tuned (dates parsed with an explicit ISO 8601
  format after reading); no fsync, no duplicate check, no flags, clear ids (all counted in its favour);
- InfluxDB 1.x (the Debian ``influxd``, started here on loopback, default WAL fsync): the same readings sent to
  ``/write`` as line protocol by 4 concurrent writers in batches of 5,000 points; parsing the CSV is not timed.

rows/s = readings / wall time; ratio = gridtwin rows/s ÷ peer rows/s (> 1: gridtwin faster).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

START = pd.Timestamp("2024-01-01")


def make_readings(n_rows: int, n_meters: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Register readings of ``n_meters`` meters at 15-minute slots, time-major, ``n_rows`` in all (rounded up)."""
    rng = np.random.default_rng(seed)
    n_slots = -(-n_rows // n_meters)
    start = rng.uniform(100, 20_000, n_meters)
    steps = rng.gamma(2.0, 0.05, (n_slots, n_meters))
    values = np.round(start + np.cumsum(steps, axis=0), 3).ravel()[:n_rows]
    meters = np.array([f"M{i:06d}" for i in range(n_meters)], dtype=object)
    times = START + pd.to_timedelta(np.arange(n_slots) * 15, unit="min")
    return pd.DataFrame(
        {
            "device": np.tile(meters, n_slots)[:n_rows],
            "parameter": "A+",
            "time": np.repeat(times.to_numpy(), n_meters)[:n_rows],
            "value": values,
        }
    )


def write_csv(readings: pd.DataFrame, path: Path) -> None:
    """Long CSV with ISO times."""
    table = pa.Table.from_pandas(
        readings.assign(time=readings["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")), preserve_index=False
    )
    pacsv.write_csv(table, path)


def write_line_protocol(readings: pd.DataFrame, path: Path) -> None:
    """InfluxDB line protocol, one point per reading (nanosecond timestamps)."""
    ns = readings["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(str)
    lines = "meter,device=" + readings["device"].astype(str) + " A+=" + readings["value"].map("{:.3f}".format) + " "
    with path.open("w") as fh:
        for chunk in range(0, len(readings), 1_000_000):
            part = lines.iloc[chunk : chunk + 1_000_000].to_numpy() + ns[chunk : chunk + 1_000_000]
            fh.write("\n".join(part))
            fh.write("\n")


def _gridtwin(path: Path, folder: Path, fmt: str) -> dict[str, Any]:
    from twin.timeseries.importer import import_files
    from twin.timeseries.store import Store

    target = folder / f"gridtwin-{fmt}.zarr"
    shutil.rmtree(target, ignore_errors=True)
    t0 = time.perf_counter()
    store = Store.create(target, origin=str(START.date()), secret="bench")
    report = import_files(store, [path], format=fmt)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": report.store.stored, "rejected": len(report.rejected)}


def _pandas(path: Path, folder: Path, *, tuned: bool = False) -> dict[str, Any]:
    """read_csv → pivot → to_zarr. ``tuned``: dates parsed after reading with an explicit ISO 8601 format (4× faster
    than ``parse_dates`` on "…Z" timestamps with pandas 2.3), the way a careful user writes it."""
    import xarray as xr

    target = folder / "pandas.zarr"
    shutil.rmtree(target, ignore_errors=True)
    t0 = time.perf_counter()
    if tuned:
        df = pd.read_csv(path)
        df["time"] = pd.to_datetime(df["time"], format="ISO8601")
    else:
        df = pd.read_csv(path, parse_dates=["time"])
    cube = df.pivot(index="time", columns="device", values="value")
    xr.Dataset(
        {"A_plus": (("time", "meter"), cube.to_numpy())},
        coords={"time": cube.index.tz_localize(None).to_numpy(), "meter": cube.columns.to_numpy(dtype=object)},
    ).to_zarr(target, mode="w", zarr_format=3, consolidated=False)
    return {"seconds": time.perf_counter() - t0, "rows": int(cube.notna().to_numpy().sum())}


def _influx(readings: pd.DataFrame, writers: int) -> dict[str, Any]:
    from twin.timeseries.influx import InfluxServer, write_points

    with InfluxServer() as server:
        t0 = time.perf_counter()
        n = write_points(server.url, "bench", readings, measurement="meter", writers=writers)
        return {"seconds": time.perf_counter() - t0, "rows": n}


def run_ingest_bench(
    n_rows: int = 10_000_000, *, n_meters: int = 10_000, writers: int = 4, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Time every tool on the same readings; one dict per (tool, format) with rows/s and ratio."""
    folder = Path(tempfile.mkdtemp(prefix="gridtwin-bench-ingest-"))
    try:
        log(f"[bench] generating {n_rows:,} readings of {n_meters:,} meters")
        readings = make_readings(n_rows, n_meters)
        csv, lp = folder / "readings.csv", folder / "readings.lp"
        write_csv(readings, csv)
        write_line_protocol(readings, lp)
        small = readings.iloc[: min(len(readings), 20_000)]
        write_csv(small, folder / "warm.csv")
        write_line_protocol(small, folder / "warm.lp")
        log("[bench] warm-up (imports, numba caches) on 20,000 readings, untimed")
        _gridtwin(folder / "warm.csv", folder, "long_csv")
        _gridtwin(folder / "warm.lp", folder, "line_protocol")
        _pandas(folder / "warm.csv", folder)
        rows: list[dict[str, Any]] = []
        for tool, fmt, fn in (
            ("gridtwin", "long_csv", lambda: _gridtwin(csv, folder, "long_csv")),
            ("gridtwin", "line_protocol", lambda: _gridtwin(lp, folder, "line_protocol")),
            ("pandas read_csv(parse_dates)+pivot+to_zarr", "long_csv", lambda: _pandas(csv, folder)),
            (
                "pandas read_csv+to_datetime(ISO8601)+pivot+to_zarr",
                "long_csv",
                lambda: _pandas(csv, folder, tuned=True),
            ),
            (f"InfluxDB /write, {writers} writers", "line_protocol", lambda: _influx(readings, writers)),
        ):
            log(f"[bench] ingest: {tool} ({fmt})")
            try:
                result = fn()
                rows.append(
                    {
                        "tool": tool,
                        "format": fmt,
                        "status": "ok",
                        **result,
                        "rows_per_s": result["rows"] / result["seconds"],
                    }
                )
            except (FileNotFoundError, RuntimeError, OSError) as exc:
                rows.append({"tool": tool, "format": fmt, "status": f"failed: {exc}"})
        ours = {r["format"]: r["rows_per_s"] for r in rows if r["tool"] == "gridtwin" and r["status"] == "ok"}
        for r in rows:
            if r["tool"] != "gridtwin" and r["status"] == "ok" and r["format"] in ours:
                r["ratio"] = ours[r["format"]] / r["rows_per_s"]
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scale_worker(n_meters: int = 10_000, days: int = 365, folder: str | None = None) -> dict[str, Any]:
    """A year of 15-minute registers of ``n_meters`` meters: ingest → clean → sum per transformer, in this process.

    Meant for a fresh subprocess (``ru_maxrss`` is the process's peak). Returns seconds per step and peak RSS (MiB).
    """
    import resource

    from twin.timeseries import demo
    from twin.timeseries.clean import Pipeline
    from twin.timeseries.derive import clean_store, sum_by
    from twin.timeseries.importer import import_batches
    from twin.timeseries.store import Store

    target = Path(folder or tempfile.mkdtemp(prefix="gridtwin-scale-")) / "scale.zarr"
    shutil.rmtree(target, ignore_errors=True)
    meters = demo.synthetic_meters(n_meters)
    store = Store.create(target, origin="2016-01-01", secret="bench")
    out: dict[str, Any] = {"n_meters": n_meters, "days": days}
    t0 = time.perf_counter()

    class _Batch:
        def __init__(self, frame: pd.DataFrame) -> None:
            self.readings, self.rejected, self.rows_read, self.source = frame, pd.DataFrame(), len(frame), "synthetic"

    batches = (_Batch(f) for f in demo.iter_readings(meters, start="2016-01-01", days=days, batch_days=7))
    report = import_batches(store, batches, meters=meters, batch_rows=7 * 96 * n_meters)
    out["values"] = report.store.stored
    out["ingest_s"] = time.perf_counter() - t0
    out["peak_rss_after_ingest_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t1 = time.perf_counter()
    clean_store(
        store,
        Pipeline("energy", [("deaccumulate", {}), ("clip", {"lo": 0.0})]),
        source="A_plus",
        target="energy_kwh",
        units="kWh",
    )
    out["clean_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    sums = sum_by(store, "energy_kwh", "trafo")
    out["aggregate_s"] = time.perf_counter() - t2
    out["trafos"] = int(sums.sizes["trafo"])
    out["store_mib"] = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 1024**2
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shutil.rmtree(target.parent, ignore_errors=True)
    return out


def pf_store_year_worker(code: str = "1-MV-urban--0-sw") -> dict[str, Any]:
    """A SimBench year as out-of-core time-series power flow over a store (profiles written first); peak RSS."""
    import resource

    import twin
    from twin.timeseries.powerflow import run_pf_store, write_profiles
    from twin.timeseries.store import Store

    folder = Path(tempfile.mkdtemp(prefix="gridtwin-pfstore-"))
    try:
        store = Store.create(folder / "year.zarr", origin="2016-01-01", secret="bench")
        write_profiles(store, twin.read_simbench_profiles(code))
        grid = twin.load(code)
        t0 = time.perf_counter()
        report = run_pf_store(store, grid)
        return {
            "code": code,
            "steps": report.steps,
            "not_converged": report.not_converged,
            "seconds": time.perf_counter() - t0,
            "solve_s": report.solve_s,
            "io_s": report.io_s,
            "results_mib": sum(p.stat().st_size for p in (folder / "year.zarr" / "results").rglob("*")) / 1024**2,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
