"""Tokens hashed at rest, roles and permissions, and the audit log's hash chain (no server needed)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from twin.api.audit import AuditError, AuditLog
from twin.api.auth import ROLE_PERMISSIONS, AuthError, Role, TokenStore

# the permission table of docs/design/api.md, written out independently of twin.api.auth
CONTRACT = {
    "viewer": {"read"},
    "planner": {"read", "scenarios"},
    "operator": {"read", "operate", "write"},
    "admin": {"read", "scenarios", "operate", "write", "admin"},
    "ingest": {"write"},
}


def test_roles_match_the_contract() -> None:
    assert {r.value: set(p) for r, p in ROLE_PERMISSIONS.items()} == CONTRACT


def test_token_is_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "svc" / "tokens.json")
    text = store.create("operator", "alice")
    prefix, token_id, secret = text.split("_", 2)
    assert prefix == "gt"
    assert len(token_id) == 8
    assert len(secret) >= 40
    raw = (tmp_path / "svc" / "tokens.json").read_text()
    assert secret not in raw
    assert text not in raw
    entry = json.loads(raw)["tokens"][0]
    assert entry["id"] == token_id
    assert entry["role"] == "operator"
    assert len(entry["sha256"]) == 64
    assert stat.S_IMODE((tmp_path / "svc" / "tokens.json").stat().st_mode) == 0o600
    principal = store.verify(text)
    assert (principal.token_id, principal.name, principal.role) == (token_id, "alice", Role.OPERATOR)
    assert "sha256" not in store.list()[0]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "gt_00000000_" + t.split("_", 2)[2],  # unknown id
        lambda t: t.replace("gt_", "xx_"),  # malformed
        lambda t: "gt_" + t.split("_", 2)[1] + "_",  # empty secret
    ],
)
def test_wrong_tokens_are_refused(tmp_path: Path, mangle: object) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    text = store.create("viewer", "v")
    with pytest.raises(AuthError):
        store.verify(mangle(text))  # type: ignore[operator]


def test_revoked_token_is_refused_also_by_another_instance(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    server_side, cli_side = TokenStore(path), TokenStore(path)
    text = server_side.create("admin", "root")
    assert server_side.verify(text).role is Role.ADMIN
    cli_side.revoke(text.split("_", 2)[1])
    with pytest.raises(AuthError, match="revoked"):
        server_side.verify(text)
    with pytest.raises(AuthError, match="no token"):
        cli_side.revoke("ffffffff")


def test_token_needs_a_known_role_and_a_name(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with pytest.raises(AuthError, match="unknown role 'root'"):
        store.create("root", "x")
    with pytest.raises(AuthError, match="name"):
        store.create("viewer", "  ")


def test_audit_chain_verifies_and_detects_tampering(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(5):
        log.append(method="POST", path=f"/x/{i}", status=200, name="alice")
    assert log.verify() == 5
    reopened = AuditLog(tmp_path / "audit.jsonl")  # continues the chain after a restart
    reopened.append(method="DELETE", path="/y", status=403)
    assert reopened.verify() == 6
    assert [e["seq"] for e in reopened.read()] == [1, 2, 3, 4, 5, 6]
    assert reopened.read(2)[0]["seq"] == 5
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace('"status":200', '"status":500')
    (tmp_path / "audit.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(AuditError, match="seq 4"):  # entry 3 was edited: entry 4's prev no longer matches
        AuditLog(tmp_path / "audit.jsonl").verify()


def test_audit_detects_a_removed_entry(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(3):
        log.append(method="POST", path=f"/x/{i}", status=201)
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    (tmp_path / "audit.jsonl").write_text("\n".join([lines[0], lines[2]]) + "\n")
    with pytest.raises(AuditError, match="seq 3"):
        log.verify()


def test_audit_refuses_unknown_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown audit fields"):
        AuditLog(tmp_path / "a.jsonl").append(who="x")


def test_audit_writers_in_several_processes_keep_one_chain(tmp_path: Path) -> None:
    service, cli = AuditLog(tmp_path / "audit.jsonl"), AuditLog(tmp_path / "audit.jsonl")
    for i in range(6):
        (service if i % 2 else cli).append(method="POST", path=f"/{i}", status=200)
    assert service.verify() == 6
    assert [e["path"] for e in cli.read()] == [f"/{i}" for i in range(6)]
