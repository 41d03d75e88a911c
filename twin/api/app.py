"""The FastAPI application of ``gridtwin serve``: middlewares, error handlers and the routers.

Middlewares, outermost first: CORS (only when origins are given; closed otherwise), the audit log (every POST, PUT,
PATCH and DELETE, allowed or refused, one entry written once the status is known and before the response goes
out), the body size limit (413 past ``max_body`` bytes, also for chunked bodies, which are read up to the limit
before the route sees them), and the store's read lock around GET requests (``twin/api/locking.py``). Errors are
``{"detail": ...}``: validation errors list each field with what is wrong, the project's ``ValueError`` subclasses
give 400 with their message, lookups of unknown ids 404.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twin.api.auth import AuthError, token_text
from twin.api.locking import ReadLockMiddleware
from twin.api.site import Site

__all__ = ["API_PREFIX", "DEFAULT_MAX_BODY", "create_app"]

API_PREFIX = "/api/v1"
DEFAULT_MAX_BODY = 16 * 2**20
_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PRIVATE_PATH = re.compile(r"(/customers/)[^/]+(/|$)")  # customer ids never reach the audit log


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_body`` bytes with 413 (by Content-Length, or while reading a chunked body)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body:
                await self._too_large(scope, receive, send)
                return
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = (
            f"request body larger than {self.max_body} bytes (gridtwin serve --max-body); split the batch into "
            "smaller requests (Telegraf: lower metric_batch_size)"
        )
        await JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})(scope, receive, send)


class AuditMiddleware:
    """One audit entry per state-changing request (see the module docstring)."""

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app, self.site = app, site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _CHANGING:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        started = False

        async def audited_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self._record(scope, state, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not started:  # the server error middleware answers 500 outside this one: record it here
                self._record(scope, state, 500)
            raise

    def _record(self, scope: Scope, state: dict[str, Any], status: int) -> None:
        principal = state.get("principal")
        if principal is None:  # refused before authentication ran (413, 422 of the path): name the token if valid
            try:
                text = token_text(Request(scope))
                principal = self.site.tokens.verify(text) if text else None
            except AuthError:
                principal = None
        self.site.audit.append(
            token_id=getattr(principal, "token_id", None),
            name=getattr(principal, "name", None),
            role=getattr(getattr(principal, "role", None), "value", None),
            method=scope["method"],
            path=_PRIVATE_PATH.sub(r"\1<redacted>\2", scope["path"]),
            status=status,
            action=state.get("audit_action"),
            target=state.get("audit_target"),
            detail=state.get("audit_detail"),
        )


def _validation_message(errors: Sequence[Any]) -> str:
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = json.loads(json.dumps(exc.errors(), default=str))
        for e in errors:
            e.pop("ctx", None)
            e.pop("input", None) if isinstance(e.get("input"), dict | list) else None
        return JSONResponse({"detail": _validation_message(errors), "errors": errors}, status_code=422)

    @app.exception_handler(LookupError)
    async def _missing(request: Request, exc: LookupError) -> JSONResponse:
        message = exc.args[0] if exc.args else str(exc)
        return JSONResponse({"detail": str(message)}, status_code=404)

    @app.exception_handler(ValueError)
    async def _bad(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        detail = f"internal error ({type(exc).__name__}): {exc}; the service log has the traceback, please report it"
        return JSONResponse({"detail": detail}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(
    site: Site,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    cors_origins: Sequence[str] = (),
    broker: str | None = None,
) -> FastAPI:
    """Build the service's FastAPI application for ``site``.

    Parameters
    ----------
    site : Site
        What to serve (:func:`twin.api.site.open_site`).
    max_body : int
        Largest request body accepted, bytes (413 beyond).
    cors_origins : sequence of str
        Origins allowed by CORS (none by default: browsers refuse cross-origin calls).
    broker : str, optional
        ``mqtt://host:port`` plans are dispatched to; None dispatches to an in-process simulated gateway fleet.

    Returns
    -------
    FastAPI
    """
    from twin.api import (
        routes_admin,
        routes_alarms,
        routes_data,
        routes_grid,
        routes_ingest,
        routes_plans,
        routes_scenarios,
    )
    from twin.api.dashboard import dashboard_router

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        site.close()  # writes what ingest has queued

    app = FastAPI(
        lifespan=lifespan,
        title="gridtwin control-room API",
        version="1",
        description="Grid twin: topology, measurements, virtual sensors, overload predictions, alarms, shedding "
        "plans, scenarios and InfluxDB-compatible ingest. Every endpoint but /healthz needs an API token.",
    )
    app.state.site = site
    app.state.broker = broker
    app.state.max_body = max_body
    _add_error_handlers(app)

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        """Liveness: ``{"status": "ok"}`` (no data, no token needed)."""
        return {"status": "ok"}

    for module in (routes_grid, routes_data, routes_alarms, routes_plans, routes_scenarios, routes_admin):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(routes_ingest.router)
    app.include_router(dashboard_router(site))
    app.add_middleware(ReadLockMiddleware, lock=site.lock)  # innermost: held only while a reading handler runs
    app.add_middleware(BodyLimitMiddleware, max_body=max_body)
    app.add_middleware(AuditMiddleware, site=site)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        )
    return app
