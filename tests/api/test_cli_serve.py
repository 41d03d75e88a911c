"""``gridtwin serve`` and ``gridtwin token`` command lines, and serving over TLS."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from twin.api.server import ServiceProcess, main
from twin.cli_serve import add_serve_parsers
from twin.timeseries.store import Store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridtwin")
    add_serve_parsers(parser.add_subparsers(dest="command", required=True), lambda *p: " ".join(p))
    return parser


def _run(argv: list[str]) -> tuple[int, str, str]:
    args = _parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = args.handler(args, Console(file=out, width=200), Console(file=err, width=200))
    return code, out.getvalue(), err.getvalue()


def test_parser_constants_match_the_service() -> None:
    from twin.api.app import DEFAULT_MAX_BODY
    from twin.api.auth import Role
    from twin.cli_serve import DEFAULT_MAX_BODY as CLI_MAX_BODY
    from twin.cli_serve import ROLES

    assert CLI_MAX_BODY == DEFAULT_MAX_BODY
    assert tuple(r.value for r in Role) == ROLES


def test_serve_options_parse() -> None:
    args = _parser().parse_args(
        [
            "serve",
            "s.zarr",
            "--port",
            "9000",
            "--cors-origin",
            "https://a",
            "--cors-origin",
            "https://b",
            "--max-body",
            "1024",
            "--broker",
            "mqtt://127.0.0.1:1883",
            "--grid",
            "case9",
        ]
    )
    assert (args.store, args.port, args.host, args.max_body) == (Path("s.zarr"), 9000, "127.0.0.1", 1024)
    assert args.cors_origin == ["https://a", "https://b"]
    assert args.broker == "mqtt://127.0.0.1:1883"
    defaults = _parser().parse_args(["serve", "s.zarr"])
    assert (defaults.port, defaults.max_body, defaults.cors_origin, defaults.certfile) == (8080, 16 * 2**20, [], None)
    with pytest.raises(SystemExit):
        _parser().parse_args(["token", "create", "s.zarr", "--role", "root", "--name", "x"])


def test_token_create_list_revoke(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    Store.create(store)
    code, out, err = _run(["token", "create", str(store), "--role", "operator", "--name", "alice"])
    assert code == 0
    assert out.strip().startswith("gt_")
    assert "shown once" in err
    token_id = out.strip().split("_", 2)[1]
    code, out, _ = _run(["token", "create", str(store), "--role", "ingest", "--name", "telegraf", "--json"])
    doc = json.loads(out)
    assert doc["role"] == "ingest"
    assert doc["token"].startswith(f"gt_{doc['id']}_")
    code, out, _ = _run(["token", "list", str(store), "--json"])
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["alice", "telegraf"]
    assert all("sha256" not in r for r in rows)
    code, out, _ = _run(["token", "revoke", str(store), token_id])
    assert code == 0
    assert "revoked" in out
    code, out, _ = _run(["token", "list", str(store)])
    assert "alice" in out
    assert "telegraf" in out
    with pytest.raises(ValueError, match="not a gridtwin store"):
        _run(["token", "list", str(tmp_path / "nothing")])


def test_module_entry_point_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "missing.zarr"), "--port", "1"]) == 2
    assert "not a gridtwin store" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
def test_serves_https_with_a_certificate(site_store: Path, tokens: dict[str, str], tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    args = ["--certfile", str(cert), "--keyfile", str(key)]
    with ServiceProcess(site_store, extra_args=args) as proc:
        assert proc.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=proc.url, verify=context) as c:
            r = c.get("/api/v1/whoami", headers={"Authorization": f"Bearer {tokens['viewer']}"})
            assert r.status_code == 200
            assert r.json()["role"] == "viewer"
        with pytest.raises(httpx.HTTPError), httpx.Client(base_url=proc.url.replace("https", "http")) as plain:
            plain.get("/healthz")


def test_gridtwin_command_has_token_and_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from twin.cli import main as gridtwin

    store = tmp_path / "s.zarr"
    Store.create(store)
    assert gridtwin(["token", "create", str(store), "--role", "viewer", "--name", "wall-screen", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["role"] == "viewer"
    assert gridtwin(["token", "revoke", str(store), doc["id"]]) == 0
    assert "revoked" in capsys.readouterr().out
    assert gridtwin(["token", "list", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked"] is not None
    assert gridtwin(["serve", str(tmp_path / "missing.zarr")]) == 2
