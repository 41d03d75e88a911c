"""The control-room service of ``gridtwin serve``: REST API, tokens and roles, audit log, dashboard.

See ``docs/design/api.md``. :func:`twin.api.app.create_app` builds the FastAPI application for a
:class:`twin.api.site.Site` (:func:`twin.api.site.open_site`); :func:`twin.api.server.serve` runs it under uvicorn.
"""

__all__ = ["app", "audit", "auth", "models", "server", "site"]
