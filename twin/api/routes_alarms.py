"""Alarms (the site's :class:`twin.alarms.AlarmBook`): list, acknowledge."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from twin.api.auth import Principal, require
from twin.api.models import AckRequest, jsonable, records

router = APIRouter(tags=["alarms"])


@router.get("/alarms", dependencies=[Depends(require("read"))])
async def alarms(
    request: Request, active: Annotated[bool, Query(description="only alarms not cleared yet")] = True
) -> dict[str, Any]:
    """Alarms with their state (``raised``, ``acknowledged``, ``cleared``); rules are evaluated on new data first."""
    site = request.app.state.site
    await run_in_threadpool(site.evaluate_alarms)
    table = site.book.active() if active else site.book.alarms()
    return {"rules": sorted(site.book.rules), "alarms": records(table)}


@router.post("/alarms/{alarm_id:path}/ack")
def acknowledge(
    request: Request,
    principal: Annotated[Principal, Depends(require("operate"))],
    alarm_id: Annotated[str, Path(min_length=1, max_length=300)],
    body: AckRequest | None = None,
) -> dict[str, Any]:
    """Acknowledge an open or cleared alarm (once); the token's name is recorded as who acknowledged it."""
    site = request.app.state.site
    request.state.audit_action, request.state.audit_target = "alarm.ack", alarm_id
    request.state.audit_detail = None if body is None else body.comment
    if not (site.book.events["alarm_id"] == alarm_id).any():
        raise LookupError(f"no alarm {alarm_id!r}; GET /api/v1/alarms?active=false lists them")
    with site.book_lock:
        site.book.acknowledge(alarm_id, principal.name, pd.Timestamp.now(tz="UTC").tz_localize(None))
    site.changed(())
    row = site.book.alarms().set_index("alarm_id").loc[alarm_id]
    return jsonable({"alarm_id": alarm_id, **row.to_dict()})
