"""The dashboard of ``gridtwin serve``: pages, local static files (BokehJS from the installed bokeh), plot endpoints.

Pages need no token and carry no data: ``GET /`` (login: paste a token; the page keeps it in ``sessionStorage``
and checks it with ``/api/v1/whoami``) and ``GET /dashboard`` (the shell). Everything shown comes from endpoints
that need the ``read`` permission, called by the page's JS with ``Authorization: Bearer``:

- ``GET /api/v1/dashboard/version``: ``{"version": int, ...}``, changes when the store, the alarms or the plans
  change (the page polls it and reloads its plots and tables: the live update);
- ``GET /api/v1/dashboard/network?source=latest|predicted``: Bokeh ``json_item`` of the network plot;
- ``GET /api/v1/dashboard/transformer/{trafo_id}?days=2``: ``json_item`` of a transformer's time series;
- ``GET /api/v1/dashboard/transformers``: the transformers (id, name, rating, buses) for the page's selector.

Alarms and plans come from the API core (``/api/v1/alarms``, ``/api/v1/plans``). BokehJS is served from the
``bokeh`` package (``/static/bokeh/<file>``), the page's own files from ``twin/api/static`` (``/static/<file>``):
no CDN, nothing from the internet. Plots are cached per data version. Design: ``docs/design/dashboard.md``.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from twin.api.auth import require

if TYPE_CHECKING:
    from twin.api.site import Site

__all__ = ["PAGE_CSP", "STATIC_DIR", "bokeh_js_dir", "dashboard_router", "data_version"]

STATIC_DIR = Path(__file__).with_name("static")
_STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.(html|js|css|svg|png|ico)$")
_BOKEH_NAME = re.compile(r"^bokeh(-[a-z]+)?(\.min)?\.js$")
_MEDIA = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_CACHE_SIZE = 16
# pages load scripts, styles and data from this server only; BokehJS compiles CustomJS callbacks (unsafe-eval) and
# sets inline styles; no framing (the token lives in the page)
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def bokeh_js_dir() -> Path:
    """The folder of the BokehJS files shipped in the installed ``bokeh`` package."""
    import bokeh

    return Path(bokeh.__file__).parent / "server" / "static" / "js"


def _mtimes(folder: Path, depth: int) -> list[int]:
    """``st_mtime_ns`` of ``folder``, its ``zarr.json`` and those of its subfolders, ``depth`` levels down."""
    out = []
    try:
        out.append(folder.stat().st_mtime_ns)
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name == "zarr.json" or (entry.name.endswith(".json") and depth == 0):
                    out.append(entry.stat().st_mtime_ns)
                elif entry.is_dir() and depth > 0:
                    out += _mtimes(Path(entry.path), depth - 1)
    except FileNotFoundError:
        out.append(-1)
    return out


def data_version(site: Site) -> int:
    """A number that changes when the store, the alarm book or the plans change.

    Combines :attr:`Site.version` (raised by every change made through the API) with the modification times of the
    store's groups and arrays (``zarr.json``, rewritten by every append), its journal, the plans folder and the
    alarm book folder, so changes made by another process (``gridtwin ingest``, ``gridtwin shed``) are seen too.
    """
    parts = [site.version, *_mtimes(site.store_path, 2), *_mtimes(site.store_path / ".journal", 0)]
    parts += _mtimes(site.plans_dir, 0) + _mtimes(site.book.folder, 0)
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:6], "big")  # 48 bits: exact as a JavaScript number


class _PlotCache:
    """The last plots rendered, keyed by (what, arguments, data version)."""

    def __init__(self) -> None:
        self._items: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], make: Any) -> dict[str, Any]:
        with self._lock:
            if key in self._items:
                return self._items[key]
        item = make()
        with self._lock:
            self._items[key] = item
            while len(self._items) > _CACHE_SIZE:
                self._items.pop(next(iter(self._items)))
        return item


def _static_file(folder: Path, name: str, pattern: re.Pattern[str]) -> FileResponse:
    path = folder / name
    if not pattern.match(name) or not path.is_file():
        raise LookupError(f"no static file {name!r}")
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if path.suffix == ".html":
        headers |= {"Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
    return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"), headers=headers)


def _add_pages(router: APIRouter) -> None:
    @router.get("/", include_in_schema=False)
    async def login_page() -> FileResponse:
        """The login page (static; no data)."""
        return _static_file(STATIC_DIR, "login.html", _STATIC_NAME)

    @router.get("/dashboard", include_in_schema=False)
    async def dashboard_page() -> FileResponse:
        """The dashboard shell (static; its JS fetches the data with the token)."""
        return _static_file(STATIC_DIR, "dashboard.html", _STATIC_NAME)

    @router.get("/static/bokeh/{name}", include_in_schema=False)
    async def bokeh_js(name: str) -> FileResponse:
        """BokehJS files of the installed bokeh package (``bokeh.min.js``, ``bokeh-widgets.min.js``, ...)."""
        return _static_file(bokeh_js_dir(), name, _BOKEH_NAME)

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        """The dashboard's own JS, CSS and HTML files."""
        return _static_file(STATIC_DIR, name, _STATIC_NAME)


def _transformers(site: Site) -> list[dict[str, Any]]:
    trafo = site.require_grid().tables["trafo"]
    return [
        {
            "id": str(t),
            "name": str(row["name"]),
            "sn_mva": float(row["sn_mva"]),
            "hv_bus": str(row["hv_bus"]),
            "lv_bus": str(row["lv_bus"]),
        }
        for t, row in trafo.iterrows()
    ]


def dashboard_router(site: Site) -> APIRouter:
    """The dashboard's pages, static files and plot endpoints (see the module docstring).

    Parameters
    ----------
    site : Site
        The site the application serves (plots are cached per :func:`data_version` of it).
    """
    from twin.api import dashboard_plots

    router = APIRouter()
    _add_pages(router)
    api = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"], dependencies=[Depends(require("read"))])
    cache = _PlotCache()

    @api.get("/version")
    async def version(request: Request) -> dict[str, Any]:
        """``{"version": int, "time": ...}``: the version changes when data, alarms or plans change (poll it)."""
        await run_in_threadpool(site.evaluate_alarms)
        number = await run_in_threadpool(data_version, site)
        return {"version": number, "time": pd.Timestamp.now(tz="UTC").isoformat()}

    @api.get("/transformers")
    def transformers() -> dict[str, Any]:
        """The grid's transformers: id, name, rated power (MVA), HV and LV bus."""
        return {"transformers": _transformers(site)}

    @api.get("/network")
    def network(
        source: Annotated[
            Literal["latest", "predicted"],
            Query(description="colour branches by the latest power flow or the predicted expected loading"),
        ] = "latest",
    ) -> JSONResponse:
        """Bokeh ``json_item`` of the physical network coloured by loading (%); transformers can be clicked."""
        key = ("network", source, data_version(site))
        return JSONResponse(cache.get(key, lambda: dashboard_plots.network_item(site, source)))

    @api.get("/transformer/{trafo_id:path}")
    def transformer(
        trafo_id: Annotated[str, PathParam(min_length=1, max_length=200, description="a transformer id")],
        days: Annotated[float, Query(gt=0, le=60, description="days of history before the last slot")] = 2.0,
    ) -> JSONResponse:
        """Bokeh ``json_item`` of a transformer: metering, virtual sensor, forecast P10–P90 and P50, loading."""
        key = ("transformer", trafo_id, days, data_version(site))
        return JSONResponse(cache.get(key, lambda: dashboard_plots.transformer_item(site, trafo_id, days)))

    router.include_router(api)
    return router
