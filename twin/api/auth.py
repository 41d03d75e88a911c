"""API tokens and roles: tokens hashed at rest, a role per token, and the FastAPI dependency :func:`require`.

Token text ``gt_<id>_<secret>`` (id: 8 hex digits, secret: 32 random bytes, URL-safe base64). ``tokens.json`` keeps
id, name, role, created, revoked and ``sha256(secret)``; the secret itself is shown once, by :meth:`TokenStore.create`.
A request carries the token as ``Authorization: Bearer <token>``, ``Authorization: Token <token>`` (InfluxDB 2
clients), HTTP Basic with the token as password, or ``?p=<token>`` on ``/write`` only (InfluxDB 1 clients).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPBearer

from twin.timeseries.journal import write_file_atomic

__all__ = ["PERMISSIONS", "ROLE_PERMISSIONS", "AuthError", "Principal", "Role", "TokenStore", "require"]


class Role(StrEnum):
    """Roles a token can have (see the permission table in ``docs/design/api.md``)."""

    VIEWER = "viewer"
    PLANNER = "planner"
    OPERATOR = "operator"
    ADMIN = "admin"
    INGEST = "ingest"


PERMISSIONS = ("read", "scenarios", "operate", "write", "admin")
ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.VIEWER: frozenset({"read"}),
    Role.PLANNER: frozenset({"read", "scenarios"}),
    Role.OPERATOR: frozenset({"read", "operate", "write"}),
    Role.ADMIN: frozenset(PERMISSIONS),
    Role.INGEST: frozenset({"write"}),
}


class AuthError(ValueError):
    """A token cannot be created, found or verified (the message says why)."""


@dataclass(frozen=True)
class Principal:
    """Who a verified token belongs to."""

    token_id: str
    name: str
    role: Role

    def can(self, permission: str) -> bool:
        """Whether the role grants ``permission``."""
        return permission in ROLE_PERMISSIONS[self.role]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Tokens in a JSON file (mode 0600, written atomically); only SHA-256 digests of the secrets are kept.

    Parameters
    ----------
    path : str or Path
        ``tokens.json``; created on the first :meth:`create`. Changes made by another process (``gridtwin token
        revoke`` while the service runs) are seen on the next request.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int], list[dict[str, Any]]] | None = None

    def _read(self) -> list[dict[str, Any]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        key = (st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != key:
            try:
                doc = json.loads(self.path.read_text())
            except json.JSONDecodeError as err:
                raise AuthError(
                    f"{self.path}: not valid JSON ({err}); restore it or delete it and create tokens"
                ) from err
            self._cache = (key, list(doc.get("tokens", [])))
        return [dict(t) for t in self._cache[1]]

    def _write(self, tokens: list[dict[str, Any]]) -> None:
        write_file_atomic(self.path, json.dumps({"tokens": tokens}, indent=2), mode=0o600)
        self._cache = None

    def create(self, role: str | Role, name: str) -> str:
        """Create a token; returns its text ``gt_<id>_<secret>`` (shown once: only its digest is stored)."""
        try:
            role = Role(role)
        except ValueError:
            raise AuthError(f"unknown role {role!r}; use one of {[r.value for r in Role]}") from None
        if not name or not name.strip():
            raise AuthError("give the token a name (who or what uses it, e.g. 'telegraf-substation-3')")
        with self._lock:
            tokens = self._read()
            ids = {t["id"] for t in tokens}
            token_id = secrets.token_hex(4)
            while token_id in ids:
                token_id = secrets.token_hex(4)
            secret = secrets.token_urlsafe(32)
            created = pd.Timestamp.now(tz="UTC").isoformat()
            tokens.append(
                {
                    "id": token_id,
                    "name": name.strip(),
                    "role": role.value,
                    "created": created,
                    "revoked": None,
                    "sha256": _digest(secret),
                }
            )
            self._write(tokens)
        return f"gt_{token_id}_{secret}"

    def list(self) -> list[dict[str, Any]]:
        """Tokens without their digests: id, name, role, created, revoked (None while valid)."""
        return [{k: v for k, v in t.items() if k != "sha256"} for t in self._read()]

    def revoke(self, token_id: str) -> dict[str, Any]:
        """Revoke a token by id (idempotent); returns its entry."""
        with self._lock:
            tokens = self._read()
            for t in tokens:
                if t["id"] == token_id:
                    if t["revoked"] is None:
                        t["revoked"] = pd.Timestamp.now(tz="UTC").isoformat()
                        self._write(tokens)
                    return {k: v for k, v in t.items() if k != "sha256"}
        raise AuthError(f"no token {token_id!r}; 'gridtwin token list STORE' shows the ids")

    def verify(self, text: str) -> Principal:
        """The principal of a token text; AuthError when malformed, unknown, revoked or wrong."""
        parts = text.split("_", 2)
        if len(parts) != 3 or parts[0] != "gt" or not parts[2]:
            raise AuthError("malformed token: expected gt_<id>_<secret> as printed by 'gridtwin token create'")
        digest = _digest(parts[2])
        for t in self._read():
            if t["id"] == parts[1]:
                if not hmac.compare_digest(digest, t["sha256"]):
                    break
                if t["revoked"] is not None:
                    raise AuthError(f"token {t['id']} was revoked at {t['revoked']}")
                return Principal(t["id"], t["name"], Role(t["role"]))
        raise AuthError("unknown or wrong token")


_bearer = HTTPBearer(auto_error=False, description="an API token: gt_<id>_<secret> (gridtwin token create)")
_BEARER = Security(_bearer)  # documents the scheme in OpenAPI; the token itself is read by token_text


def token_text(request: Request) -> str | None:
    """The token a request carries (Bearer, Token, Basic password, or ``?p=`` on /write), or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme in ("bearer", "token") and value.strip():
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    if request.url.path == "/write" and request.query_params.get("p"):
        return request.query_params["p"]
    return None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="gridtwin"'})


def authenticate(request: Request) -> Principal:
    """Verify the request's token (401 when missing or wrong); the principal is kept in ``request.state``."""
    text = token_text(request)
    if text is None:
        raise _unauthorized(
            "no API token: send 'Authorization: Bearer <token>' (create one with 'gridtwin token create --role viewer"
            " --name NAME STORE')"
        )
    try:
        principal = request.app.state.site.tokens.verify(text)
    except AuthError as err:
        raise _unauthorized(f"{err}; send a valid token as 'Authorization: Bearer <token>'") from None
    request.state.principal = principal
    return principal


def require(*permissions: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """FastAPI dependency: the caller's :class:`Principal`, when its role has one of ``permissions``.

    401 (with ``WWW-Authenticate``) without a valid token; 403 naming the roles that would be allowed.
    """
    unknown = set(permissions) - set(PERMISSIONS)
    if unknown or not permissions:
        raise ValueError(f"unknown permission(s) {sorted(unknown)}; use {PERMISSIONS}")

    async def dependency(request: Request, _credentials: Any = _BEARER) -> Principal:
        principal = authenticate(request)
        if not any(principal.can(p) for p in permissions):
            roles = sorted(r.value for r, perms in ROLE_PERMISSIONS.items() if perms & set(permissions))
            raise HTTPException(
                403,
                detail=f"role {principal.role.value!r} may not do this: it needs permission "
                f"{' or '.join(permissions)!r}, which roles {roles} have",
            )
        return principal

    return dependency
