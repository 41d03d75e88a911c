"""Administration: API tokens (create, list, revoke), customer erasure, the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from twin.api.auth import require
from twin.api.locking import run_waiting
from twin.api.models import TokenRequest

router = APIRouter(tags=["admin"], dependencies=[Depends(require("admin"))])


@router.post("/tokens", status_code=201)
def create_token(request: Request, body: TokenRequest) -> dict[str, Any]:
    """Create a token; the response holds its text, which is not shown again."""
    site = request.app.state.site
    text = site.tokens.create(body.role, body.name)
    token_id = text.split("_", 2)[1]
    request.state.audit_action, request.state.audit_target = "token.create", token_id
    request.state.audit_detail = f"{body.role.value} {body.name}"
    return {"id": token_id, "name": body.name.strip(), "role": body.role.value, "token": text}


@router.get("/tokens")
def list_tokens(request: Request) -> dict[str, Any]:
    """Tokens (id, name, role, created, revoked); never their secrets."""
    return {"tokens": request.app.state.site.tokens.list()}


@router.delete("/tokens/{token_id}")
def revoke_token(request: Request, token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{8}$")]) -> dict[str, Any]:
    """Revoke a token (it stops working at once)."""
    request.state.audit_action, request.state.audit_target = "token.revoke", token_id
    from twin.api.auth import AuthError

    try:
        return request.app.state.site.tokens.revoke(token_id)
    except AuthError as err:
        raise LookupError(str(err)) from None


def _erase(site: Any, customer_id: str) -> dict[str, int]:
    from twin.timeseries.privacy import erase_customer

    with site.write_lock:
        counts = erase_customer(site.store, customer_id)
        site.changed()
    return counts


@router.post("/customers/{customer_id}/erase")
async def erase(request: Request, customer_id: Annotated[str, Path(min_length=1, max_length=200)]) -> dict[str, Any]:
    """Right to be forgotten: clear every value and label of the customer's meters (clear customer id)."""
    request.state.audit_action = "customer.erase"
    request.state.audit_target = "customer (id not logged)"  # the audit log must not keep the id either
    counts = await run_waiting(_erase, request.app.state.site, customer_id)
    return {"erased": counts}


@router.get("/audit")
def audit(
    request: Request, limit: Annotated[int, Query(ge=1, le=10_000, description="last entries")] = 100
) -> dict[str, Any]:
    """The last ``limit`` audit entries, oldest first, and whether the hash chain is intact."""
    from twin.api.audit import AuditError

    log = request.app.state.site.audit
    try:
        n, intact, problem = log.verify(), True, None
    except AuditError as err:
        n, intact, problem = None, False, str(err)
    return {"entries": log.read(limit), "total": n, "chain_intact": intact, "problem": problem}
