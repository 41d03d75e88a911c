"""Shedding plans: request (``shed_store`` in a worker thread), approve / reject, dispatch, execution status.

Each plan is ``<STORE>.plans/<plan_id>.json`` (as ``gridtwin shed`` writes it) plus ``<plan_id>.state.json``:
``status`` and the history of transitions (who, role, when, comment). Allowed transitions::

    proposed → approved → dispatched → executed | partially executed | failed
    proposed → rejected

Dispatch sends the commands to ``serve --broker`` over MQTT, or else to an in-process simulated gateway fleet;
runs are appended to ``<STORE>.plans/execution.json`` (:class:`twin.dispatch.ExecutionState`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path as FsPath
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Request

from twin.api.auth import Principal, require
from twin.api.locking import run_waiting
from twin.api.models import DecisionRequest, PlanRequest, jsonable, records
from twin.timeseries.journal import write_file_atomic

router = APIRouter(tags=["plans"])

TRANSITIONS = {
    "approve": ({"proposed"}, "approved"),
    "reject": ({"proposed"}, "rejected"),
    "dispatch": ({"approved"}, "dispatched"),
}
_PLAN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
PlanId = Annotated[str, Path(pattern=_PLAN_ID.pattern, description="a plan id, e.g. plan-20160601T0015-1a2b3c4d")]


def _state_path(site: Any, plan_id: str) -> FsPath:
    return site.plans_dir / f"{plan_id}.state.json"


def _write_json(path: FsPath, doc: dict[str, Any]) -> None:
    write_file_atomic(path, json.dumps(jsonable(doc), indent=1))


def _read_state(site: Any, plan_id: str) -> dict[str, Any]:
    if plan_id == "execution" or plan_id.endswith(".state"):  # the dispatch ledger and state files are no plans
        raise LookupError(f"no plan {plan_id!r}; GET /api/v1/plans lists them")
    path = _state_path(site, plan_id)
    if path.exists():
        return json.loads(path.read_text())
    if (site.plans_dir / f"{plan_id}.json").exists():  # written by 'gridtwin shed': proposed, nobody decided yet
        return {"plan_id": plan_id, "status": "proposed", "request": None, "history": []}
    raise LookupError(f"no plan {plan_id!r}; GET /api/v1/plans lists them")


def _transition(state: dict[str, Any], to: str, principal: Principal | None, comment: str | None = None) -> None:
    state["status"] = to
    state["history"].append(
        {
            "status": to,
            "time": pd.Timestamp.now(tz="UTC").isoformat(),
            "by": None if principal is None else principal.name,
            "role": None if principal is None else principal.role.value,
            "comment": comment,
        }
    )


def _plan_doc(site: Any, plan_id: str, state: dict[str, Any]) -> dict[str, Any]:
    from solvers.shedding import ControlPlan

    plan = ControlPlan.from_json(site.plans_dir / f"{plan_id}.json")
    commands = plan.commands.rename(columns={"kw": "kW", "element_kind": "kind"})
    return {
        "plan_id": plan_id,
        "status": state["status"],
        "history": state["history"],
        "request": state.get("request"),
        "feasible": plan.is_feasible,
        "solver_status": plan.status,
        "objective": plan.objective,
        "reason": plan.reason,
        "commands": records(commands),
        "totals": records(plan.totals.reset_index()),
        "residual": records(plan.residual.reset_index()) if len(plan.residual) else [],
    }


def _compute(site: Any, body: PlanRequest, principal: Principal) -> dict[str, Any]:
    from twin.timeseries.shed import forecast_member, shed_store

    grid = site.require_grid()
    with site.read_lock:  # read the forecast member, then plan without holding the store
        profiles = forecast_member(
            site.store,
            horizon=body.horizon.replace(" ", ""),
            load_quantile=body.load_quantile,
            gen_quantile=body.gen_quantile,
        ).load()
    result = shed_store(
        site.store,
        grid,
        comm=site.comm if site.comm is not None else "all",
        assets=body.assets,
        horizon=body.horizon.replace(" ", ""),
        load_quantile=body.load_quantile,
        gen_quantile=body.gen_quantile,
        margin=body.margin,
        write=False,
        profiles=profiles,
    )
    with site.plans_lock:
        plan_id, n = result.plan_id, 1
        while _state_path(site, plan_id).exists() and _read_state(site, plan_id)["status"] != "proposed":
            n += 1
            plan_id = f"{result.plan_id}-{n}"  # the same request after a decision: a new plan
        issued = str(result.profiles.attrs.get("issued", ""))
        with site.write_lock:
            site.store.write_dataset("plan", result.plan.to_dataset().assign_attrs(plan_id=plan_id, issued=issued))
            site.changed(["plan"])
        result.plan.to_json(site.plans_dir / f"{plan_id}.json")
        state = {"plan_id": plan_id, "status": "proposed", "request": body.model_dump(), "history": []}
        _transition(state, "proposed", principal)
        _write_json(_state_path(site, plan_id), state)
    return _plan_doc(site, plan_id, state)


@router.post("/plans", status_code=201)
async def request_plan(
    request: Request, body: PlanRequest, principal: Annotated[Principal, Depends(require("operate"))]
) -> dict[str, Any]:
    """Compute a shedding plan for the stored forecasts (Pyomo + HiGHS, AC re-check); it starts ``proposed``."""
    request.state.audit_action = "plan.request"
    request.state.audit_detail = json.dumps(body.model_dump())
    doc = await run_waiting(_compute, request.app.state.site, body, principal)
    request.state.audit_target = doc["plan_id"]
    return jsonable(doc)


@router.get("/plans", dependencies=[Depends(require("read"))])
def list_plans(request: Request) -> dict[str, Any]:
    """Every plan with its status, newest first."""
    site = request.app.state.site
    rows = []
    for path in sorted(site.plans_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        if path.name.endswith(".state.json") or path.name == "execution.json" or path.name.startswith("."):
            continue
        state = _read_state(site, path.stem)
        last = state["history"][-1] if state["history"] else {}
        rows.append(
            {"plan_id": path.stem, "status": state["status"], "updated": last.get("time"), "by": last.get("by")}
        )
    return {"plans": rows}


@router.get("/plans/{plan_id}", dependencies=[Depends(require("read"))])
def get_plan(request: Request, plan_id: PlanId) -> dict[str, Any]:
    """One plan: commands (element, kind, gateway, start, end, kW), totals, objective, residual, status history."""
    site = request.app.state.site
    return jsonable(_plan_doc(site, plan_id, _read_state(site, plan_id)))


def _decide(request: Request, plan_id: str, action: str, principal: Principal, comment: str | None) -> dict[str, Any]:
    site = request.app.state.site
    request.state.audit_action, request.state.audit_target = f"plan.{action}", plan_id
    request.state.audit_detail = comment
    allowed, to = TRANSITIONS[action]
    with site.plans_lock:
        state = _read_state(site, plan_id)
        if state["status"] not in allowed:
            raise HTTPException(
                409,
                detail=f"plan {plan_id} is {state['status']}; only a plan that is "
                f"{' or '.join(sorted(allowed))} can be {to}",
            )
        _transition(state, to, principal, comment)
        _write_json(_state_path(site, plan_id), state)
    site.changed(())
    return state


@router.post("/plans/{plan_id}/approve")
def approve(
    request: Request,
    plan_id: PlanId,
    principal: Annotated[Principal, Depends(require("operate"))],
    body: DecisionRequest | None = None,
) -> dict[str, Any]:
    """Approve a proposed plan (409 otherwise)."""
    return jsonable(_decide(request, plan_id, "approve", principal, None if body is None else body.comment))


@router.post("/plans/{plan_id}/reject")
def reject(
    request: Request,
    plan_id: PlanId,
    principal: Annotated[Principal, Depends(require("operate"))],
    body: DecisionRequest | None = None,
) -> dict[str, Any]:
    """Reject a proposed plan (409 otherwise)."""
    return jsonable(_decide(request, plan_id, "reject", principal, None if body is None else body.comment))


def _gateways(site: Any, commands: pd.DataFrame) -> list[str]:
    ids = set(commands["gateway"].astype(str)) if "gateway" in commands else set()
    if site.comm is not None:
        dev = site.comm.devices
        ids |= set(dev.index[dev["kind"].isin(["gateway", "controller"]).to_numpy()])
    return sorted(i for i in ids if i)


def _dispatch(site: Any, broker: str | None, plan_id: str, principal: Principal) -> dict[str, Any]:
    """Mark the plan dispatched (under the lock: one dispatch per plan), send it, record the outcome."""
    from solvers.shedding import ControlPlan
    from twin.dispatch import BrokerUnavailableError, ExecutionState, GatewayFleet, dispatch_in_process, dispatch_plan

    with site.plans_lock:
        state = _read_state(site, plan_id)
        if state["status"] != "approved":
            raise HTTPException(
                409,
                detail=f"plan {plan_id} is {state['status']}; approve it first (only approved plans are dispatched)",
            )
        _transition(state, "dispatched", principal, "via " + (broker or "in-process"))
        _write_json(_state_path(site, plan_id), state)
    plan = ControlPlan.from_json(site.plans_dir / f"{plan_id}.json")
    ledger = ExecutionState(site.plans_dir / "execution.json")
    try:
        if broker is not None:
            report = dispatch_plan(plan.commands, broker, plan_id=plan_id, state=ledger)
        else:
            fleet = GatewayFleet(_gateways(site, plan.commands))
            report = dispatch_in_process(plan.commands, fleet, plan_id=plan_id, state=ledger)
    except (BrokerUnavailableError, ValueError) as err:
        with site.plans_lock:
            _transition(state, "approved", None, f"dispatch failed: {err}")
            _write_json(_state_path(site, plan_id), state)
        raise ValueError(f"{err}; the plan stays approved: dispatch it again once this is fixed") from err
    with site.plans_lock:
        _transition(state, report.state, None, f"{report.counts}")
        _write_json(_state_path(site, plan_id), state)
    site.changed(())
    return {"plan_id": plan_id, "status": state["status"], "counts": report.counts, "execution": report.to_dict()}


@router.post("/plans/{plan_id}/dispatch")
async def dispatch(
    request: Request, plan_id: PlanId, principal: Annotated[Principal, Depends(require("operate"))]
) -> dict[str, Any]:
    """Send an approved plan's commands to their gateways (``serve --broker`` over MQTT, else a simulated fleet in
    process); returns the execution report. 409 unless the plan is approved."""
    site = request.app.state.site
    request.state.audit_action, request.state.audit_target = "plan.dispatch", plan_id
    doc = await run_waiting(_dispatch, site, request.app.state.broker, plan_id, principal)
    request.state.audit_detail = f"{doc['status']} {doc['counts']}"
    return jsonable(doc)


@router.get("/plans/{plan_id}/execution", dependencies=[Depends(require("read"))])
def execution(request: Request, plan_id: PlanId) -> dict[str, Any]:
    """Per-command status of the plan's last dispatch run, counts per status, and the plan's state."""
    from twin.dispatch import ExecutionState

    site = request.app.state.site
    state = _read_state(site, plan_id)
    ledger = ExecutionState(site.plans_dir / "execution.json")
    if plan_id not in ledger:
        return {"plan_id": plan_id, "status": state["status"], "counts": None, "commands": [], "runs": 0}
    report = ledger.load(plan_id)
    doc = report.to_dict()
    return jsonable(
        {
            "plan_id": plan_id,
            "status": state["status"],
            "counts": report.counts,
            "commands": doc["commands"],
            "runs": len(ledger.history(plan_id)),
            "broker": report.broker,
        }
    )
