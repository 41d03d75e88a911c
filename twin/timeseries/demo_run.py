"""The demo path end to end (``gridtwin demo``): synthetic head-end files → store → clean → loads → power flow →
virtual sensors, on a SimBench grid, with nothing downloaded. Each step is the public API a user would call.
"""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from twin.graph import MultiLayerGraph
from twin.timeseries import demo
from twin.timeseries.clean import Pipeline
from twin.timeseries.derive import clean_store, write_loads
from twin.timeseries.importer import import_files
from twin.timeseries.powerflow import run_pf_store
from twin.timeseries.sensors import VirtualSensors, losses_below, virtual_sensors
from twin.timeseries.store import Store, StoreError

# head-end export of the demo: Italian column names, decimal comma, local time
CSV_OPTIONS = {
    "device": "Dispositivo",
    "parameter": "Parametro",
    "time": "Data",
    "value": "Valore",
    "decimal": ",",
    "time_format": "%H:%M:%S %d/%m/%Y",
    "tz": demo.TZ_FILES,
}
ENERGY_PIPELINE = Pipeline("energy", [("deaccumulate", {"gaps": "spread"}), ("clip", {"lo": 0.0})])


def branch_areas(graph: MultiLayerGraph) -> pd.Series:
    """Line id → the transformer that supplies it (the supplying transformer of its from-bus); "" when none."""
    trafo_of_bus = graph.supply_tree()["trafo"]
    line = graph.grid.line
    return pd.Series(trafo_of_bus.reindex(line["from_bus"]).to_numpy(), index=line.index).fillna("")


def run_demo(
    path: str | Path,
    *,
    days: int = 14,
    seed: int = 0,
    code: str = demo.DEFAULT,
    console: Console | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build the demo store at ``path`` and return the steps' figures and a text summary.

    ``path`` must not exist, unless ``overwrite`` and it is a gridtwin store (then it and its ``.files`` folder
    are replaced).
    """
    from twin.cli_store import is_store

    path = Path(path)
    if path.exists():
        if not (overwrite and is_store(path)):
            raise StoreError(
                f"{path} exists; the demo builds a new store: give another path"
                + (" (or --overwrite to replace this demo store)" if is_store(path) else "")
            )
        shutil.rmtree(path)
        shutil.rmtree(path.with_name(path.name + ".files"), ignore_errors=True)
    console = console or Console(stderr=True)
    timings: dict[str, float] = {}

    def step(name: str) -> Any:
        timings[name] = time.perf_counter()
        return console.status(f"{name} ...")

    with step("synthesising meters"):
        data = demo.synthesise(code, days=days, seed=seed)
        files = demo.write_demo_files(data, path.with_name(path.name + ".files"))
    start = pd.Timestamp(data.readings["time"].min()).floor("D")
    store = Store.create(path, origin=str(start.date()), freq="15min")
    with step("ingesting meter readings"):
        meters = data.meters
        ingest = import_files(store, [files["readings"]], format="long_csv", meters=meters, **CSV_OPTIONS)
    with step("ingesting transformer metering"):
        sensors_report = import_files(
            store, [files["sensors"]], format="line_protocol", group="sensors", device_tag="sensor"
        )
    with step("cleaning registers into interval energy"):
        clean_store(store, ENERGY_PIPELINE, source="A_plus", target="energy_kwh", units="kWh")
    grid = data.grid.copy()
    grid.sgen["p_mw"] = 0.0  # the demo's meters register import only: no PV output in its world (see demo.py)
    with step("per-load series"):
        write_loads(store, grid, "energy_kwh")
    with step("time-series power flow over the store"):
        pf = run_pf_store(store, grid)
    with step("virtual sensors"):
        graph = MultiLayerGraph.from_grid(grid)
        losses = losses_below(store.dataset("results").load(), branch_areas(graph))
        vs = virtual_sensors(store, losses_kw=losses)
    timings["end"] = time.perf_counter()
    names = list(timings)
    seconds = {a: round(timings[b] - timings[a], 2) for a, b in itertools.pairwise(names)}
    return {
        "ingest": ingest.as_dict(),
        "sensors_ingest": sensors_report.as_dict(),
        "pf": pf,
        "virtual_sensors": vs,
        "truth": data.truth,
        "grid": grid,
        "seconds": seconds,
        "files": files,
        "text": _text(ingest.as_dict(), pf, vs, data, seconds),
    }


def _text(ingest: dict[str, Any], pf: Any, vs: VirtualSensors, data: Any, seconds: dict[str, float]) -> str:
    s = vs.summary
    flagged = sorted(str(t) for t in s.index[s["ntl_suspected"]])
    injected = sorted(data.truth["ntl"]["trafo"].unique())
    lines = [
        f"meters: {len(data.meters):,} below {len(s)} metered transformers of {data.meta.get('code', '')}",
        f"ingest: {ingest['rows_read']:,} rows, {ingest['readings_stored']:,} stored, "
        f"{ingest['duplicates']} duplicates, "
        f"{ingest['conflicts']} conflicts, {ingest['rejected']} rejected, "
        f"{ingest['gaps'].get('missing_slots', 0)} missing slots",
        f"power flow: {pf.steps} steps, {pf.not_converged} not converged, min vm {pf.min_vm_pu:.4f} pu, "
        f"max loading {pf.max_loading_pct:.1f} %",
        f"virtual sensors: median |rel. error| {s['median_rel_error'].abs().median():.2%}; "
        f"NTL suspected at {flagged} (injected: {injected})",
        "seconds: " + ", ".join(f"{k} {v}" for k, v in seconds.items()),
    ]
    return "\n".join(lines)
