"""Scenario sets: submit a set as JSON (the YAML files' schema, :class:`scenarios.spec.ScenarioSet`), follow it, read
its comparison table.

A set runs in a background thread (``run_set(..., scheduler="sync")``; one set at a time, the others queue) into
``<STORE>.service/scenarios/<set_id>/results.zarr``; ``spec.json`` and ``status.json`` lie beside it. The base grid
must be a built-in case or SimBench code (no server file paths), and a set may expand to at most
:data:`MAX_SCENARIOS` scenarios.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from pathlib import Path as FsPath
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Path, Request

from scenarios.spec import ScenarioSet
from twin.api.auth import Principal, require
from twin.api.models import jsonable, records

router = APIRouter(tags=["scenarios"])

MAX_SCENARIOS = 200
_RUN_ONE_AT_A_TIME = threading.Lock()
_SET_ID = r"^set-[0-9a-f]{12}$"


def _write_status(folder: FsPath, **doc: Any) -> None:
    path = folder / "status.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(jsonable(doc))
    tmp = folder / ".status.json.tmp"
    tmp.write_text(json.dumps(current))
    tmp.replace(path)


def _run(folder: FsPath, spec: ScenarioSet) -> None:
    """Run the set (background thread); failures are written to status.json, never raised."""
    from scenarios import run_scenario
    from scenarios.runner import run_set

    with _RUN_ONE_AT_A_TIME:
        _write_status(folder, state="running", started=pd.Timestamp.now(tz="UTC"))
        try:
            items = [(s.name, s) for s in spec.expand()]
            fn = functools.partial(run_scenario, base=spec.base, shed=False)
            report = run_set(items, fn, folder / "results.zarr", scheduler="sync", progress=False)
            _write_status(folder, state="done", failed=list(report.failed), finished=pd.Timestamp.now(tz="UTC"))
        except Exception as err:
            _write_status(
                folder, state="failed", error=f"{type(err).__name__}: {err}", finished=pd.Timestamp.now(tz="UTC")
            )


def _check(spec: ScenarioSet) -> int:
    grid = spec.base.grid
    if "/" in grid or "\\" in grid or grid.startswith(".") or re.search(r"\.(json|m|mat|p|zarr|zip|xml)$", grid):
        raise ValueError(f"base.grid {grid!r}: give a built-in case name or SimBench code (no file paths over the API)")
    if spec.base.store is not None:
        raise ValueError("base.store is not accepted over the API (server paths); leave it out")
    n = len(spec.expand())
    if n > MAX_SCENARIOS:
        raise ValueError(f"the set expands to {n} scenarios; at most {MAX_SCENARIOS} per submission: split it")
    return n


@router.post("/scenarios", status_code=202)
def submit(
    request: Request, spec: ScenarioSet, principal: Annotated[Principal, Depends(require("scenarios"))]
) -> dict[str, Any]:
    """Submit a scenario set; it runs in the background. Returns ``{set_id, scenarios, state}``."""
    site = request.app.state.site
    request.state.audit_action = "scenarios.submit"
    n = _check(spec)
    set_id = f"set-{uuid.uuid4().hex[:12]}"
    request.state.audit_target = set_id
    folder = site.scenarios_dir / set_id
    folder.mkdir()
    (folder / "spec.json").write_text(spec.model_dump_json(indent=1))
    _write_status(
        folder, set_id=set_id, state="queued", scenarios=n, submitted=pd.Timestamp.now(tz="UTC"), by=principal.name
    )
    threading.Thread(target=_run, args=(folder, spec), name=f"scenarios-{set_id}", daemon=True).start()
    return {"set_id": set_id, "scenarios": n, "state": "queued"}


@router.get("/scenarios", dependencies=[Depends(require("read"))])
def list_sets(request: Request) -> dict[str, Any]:
    """Submitted sets with their state, newest first."""
    folders = sorted(request.app.state.site.scenarios_dir.glob("set-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return {"sets": [json.loads((f / "status.json").read_text()) for f in folders if (f / "status.json").exists()]}


@router.get("/scenarios/{set_id}", dependencies=[Depends(require("read"))])
def get_set(request: Request, set_id: Annotated[str, Path(pattern=_SET_ID)]) -> dict[str, Any]:
    """A set's state, the status of each finished scenario, and the comparison table once it is done."""
    from scenarios.runner import open_results, read_status

    folder = request.app.state.site.scenarios_dir / set_id
    if not (folder / "status.json").exists():
        raise LookupError(f"no scenario set {set_id!r}; GET /api/v1/scenarios lists them")
    doc = json.loads((folder / "status.json").read_text())
    results = folder / "results.zarr"
    doc["scenario_status"] = read_status(results) if results.exists() else {}
    doc["table"] = None
    if doc.get("state") == "done" and any(s == "ok" for s in doc["scenario_status"].values()):
        from scenarios.report import compare_table

        doc["table"] = records(compare_table(open_results(results)).reset_index())
    return jsonable(doc)
