"""InfluxDB-compatible ingest: ``POST /write`` (1.x) and ``POST /api/v2/write`` (2.x), line protocol → ``measurements``.

Each line's ``device`` tag is the meter id, each field a parameter (``meter,device=m1 p_kw=1.5 1464739200000000000``).
Lines are parsed with :func:`twin.timeseries.lineprotocol.read_line_protocol` and appended with
:meth:`twin.timeseries.store.Store.append` through the site's group commit (``twin/api/ingest_queue.py``: the
readings of all requests waiting at once are appended as one journal transaction; a request is answered once its
readings are committed). 204 when every reading was
stored (duplicates count as stored: resending a batch is harmless); 400 listing the rejected lines (line number,
reason, text) while the accepted ones are kept. ``Content-Encoding: gzip`` bodies (Telegraf's default) are inflated
up to 8 × the body limit.
"""

from __future__ import annotations

import zlib
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from twin.api.auth import require
from twin.api.locking import run_waiting

router = APIRouter(tags=["ingest"])

PRECISIONS = {"n": "ns", "ns": "ns", "u": "us", "us": "us", "ms": "ms", "s": "s"}
MAX_LISTED = 100
_PRECISION = Query(description="timestamp unit: ns (default), u/us, ms or s")
_BODY = {"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}, "required": False}}


def _body_text(body: bytes, encoding: str, limit: int) -> str:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as err:
            raise ValueError(f"Content-Encoding gzip, but the body is not valid gzip ({err})") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise ValueError(f"the gzip body inflates to more than {limit} bytes; send smaller batches")
    elif encoding not in ("", "identity"):
        raise ValueError(f"Content-Encoding {encoding!r} is not supported; send plain or gzip line protocol")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"the body is not UTF-8 text (byte {err.start}); line protocol is UTF-8") from None


def _ingest(site: Any, text: str, precision: str) -> dict[str, Any]:
    from twin.timeseries.lineprotocol import read_line_protocol

    lines = text.splitlines()
    readings, rejected = [], []
    for batch in read_line_protocol(lines, device_tag="device", precision=precision):  # type: ignore[arg-type]
        if len(batch.readings):
            readings.append(batch.readings)
        if len(batch.rejected):
            rejected.append(batch.rejected)
    rej = pd.concat(rejected, ignore_index=True) if rejected else pd.DataFrame(columns=["line", "reason", "raw"])
    stored, store_rejected, store_rejected_n = 0, [], 0
    if readings:
        result = site.ingest(pd.concat(readings, ignore_index=True) if len(readings) > 1 else readings[0])
        stored, store_rejected_n = result.stored, len(result.rejected)
        store_rejected = [
            {"device": str(r["device"]), "time": str(r["time"]), "reason": str(r["reason"])}
            for _, r in result.rejected.head(MAX_LISTED).iterrows()
        ]
    return {
        "lines": len(lines),
        "readings": sum(len(r) for r in readings),
        "stored": stored,
        "rejected_lines": rej,
        "store_rejected": store_rejected,
        "store_rejected_n": store_rejected_n,
    }


def _answer(result: dict[str, Any]) -> Response:
    rej: pd.DataFrame = result["rejected_lines"]
    n_store = result["store_rejected_n"]
    if not len(rej) and not n_store:
        return Response(status_code=204)
    listed = [
        {"line": int(r["line"]), "reason": str(r["reason"]), "raw": str(r["raw"])}
        for _, r in rej.head(MAX_LISTED).iterrows()
    ]
    parts = [f"line {x['line']}: {x['reason']}" for x in listed[:10]]
    parts += [f"{x['device']} at {x['time']}: {x['reason']}" for x in result["store_rejected"][:10]]
    message = (
        f"{len(rej)} of {result['lines']} lines and {n_store} readings were rejected; the other "
        f"{result['stored']} readings were stored (resend only the rejected lines once fixed): " + "; ".join(parts)
    )
    body = {
        "detail": message,
        "error": message,
        "rejected_lines": listed,
        "rejected_readings": result["store_rejected"],
        "stored": result["stored"],
    }
    return JSONResponse(body, status_code=400)


async def _write(request: Request, precision: str) -> Response:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; use one of ns, u (us), ms, s")
    request.state.audit_action = "ingest.write"
    body = await request.body()
    limit = 8 * getattr(request.app.state, "max_body", 16 * 2**20)
    text = _body_text(body, request.headers.get("content-encoding", ""), limit)
    result = await run_waiting(_ingest, request.app.state.site, text, PRECISIONS[precision])
    request.state.audit_detail = f"{result['lines']} lines, {result['stored']} readings stored"
    return _answer(result)


@router.post("/write", status_code=204, dependencies=[Depends(require("write"))], openapi_extra=_BODY)
async def write_v1(
    request: Request,
    db: Annotated[str | None, Query(description="database (accepted, not used: one store)")] = None,
    rp: Annotated[str | None, Query(description="retention policy (accepted, not used)")] = None,
    precision: Annotated[str, _PRECISION] = "ns",
) -> Response:
    """InfluxDB 1.x write: line protocol body (optionally gzip), token as Bearer/Token/Basic password or ``?p=``."""
    return await _write(request, precision)


@router.post("/api/v2/write", status_code=204, dependencies=[Depends(require("write"))], openapi_extra=_BODY)
async def write_v2(
    request: Request,
    bucket: Annotated[str | None, Query(description="bucket (accepted, not used: one store)")] = None,
    org: Annotated[str | None, Query(description="organisation (accepted, not used)")] = None,
    precision: Annotated[str, _PRECISION] = "ns",
) -> Response:
    """InfluxDB 2.x write: line protocol body (optionally gzip), ``Authorization: Token <token>``."""
    return await _write(request, precision)
