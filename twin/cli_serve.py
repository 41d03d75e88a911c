"""CLI ``gridtwin serve`` (the control-room API and dashboard) and ``gridtwin token create|list|revoke``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["add_serve_parsers"]

# as twin.api.auth.Role and twin.api.app.DEFAULT_MAX_BODY (not imported: building the parser must not load FastAPI)
ROLES = ("viewer", "planner", "operator", "admin", "ingest")
DEFAULT_MAX_BODY = 16 * 2**20


def add_serve_parsers(sub: argparse._SubParsersAction, fill: Any) -> None:
    """Register ``serve`` and ``token`` on the ``gridtwin`` sub-parsers."""
    sv = sub.add_parser(
        "serve",
        help="serve the control-room REST API (OpenAPI docs at /docs), InfluxDB-compatible ingest and the dashboard",
        description=fill(
            "Serve STORE over HTTP with uvicorn: grid and topology, measurements, virtual sensors, overload "
            "predictions, alarms, shedding plans (request, approve, dispatch), scenario sets, ingest of line "
            "protocol at /write and /api/v2/write (Telegraf's influxdb outputs), and the dashboard at /. Every "
            "request but /healthz needs an API token ('gridtwin token create'); every state-changing request is "
            "written to STORE.service/audit.jsonl. The grid and comm layer default to those 'gridtwin demo' "
            "recorded in the store."
        ),
        epilog=(
            "examples:\n"
            "  gridtwin demo demo.zarr && gridtwin token create --role operator --name alice demo.zarr\n"
            "  gridtwin serve demo.zarr --port 8080\n"
            "  gridtwin serve s.zarr --grid 1-LV-rural1--2-sw --comm comm/ --broker mqtt://127.0.0.1:1883\n"
            "  gridtwin serve s.zarr --host 0.0.0.0 --certfile cert.pem --keyfile key.pem"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sv.add_argument("store", type=Path, metavar="STORE")
    sv.add_argument("--grid", metavar="CASE", help="the grid (default: the one the store records)")
    sv.add_argument("--comm", type=Path, metavar="DIR", help="communication layer folder (default: recorded)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    sv.add_argument("--broker", metavar="URL", help="dispatch plans to mqtt://HOST:PORT (default: simulated fleet)")
    sv.add_argument("--certfile", type=Path, metavar="PEM", help="TLS certificate (with --keyfile)")
    sv.add_argument("--keyfile", type=Path, metavar="PEM", help="TLS private key")
    sv.add_argument(
        "--cors-origin", action="append", default=[], metavar="URL", help="allow this browser origin (repeatable)"
    )
    sv.add_argument(
        "--max-body", type=int, default=DEFAULT_MAX_BODY, metavar="BYTES", help="largest request body (default 16 MiB)"
    )
    sv.set_defaults(handler=_run_serve)
    _add_token(sub, fill)


def _add_token(sub: argparse._SubParsersAction, fill: Any) -> None:
    tk = sub.add_parser(
        "token",
        help="API tokens of a service: create (shown once), list, revoke",
        description=fill(
            "Tokens live in STORE.service/tokens.json (mode 0600) as SHA-256 digests; the token text is printed "
            "once by 'create'. Roles: viewer (read), planner (read, scenarios), operator (read, alarms and plans, "
            "ingest), admin (everything, tokens, erasure, audit log), ingest (writing readings only)."
        ),
    )
    tk_sub = tk.add_subparsers(dest="token_command", required=True, metavar="SUBCOMMAND")
    create = tk_sub.add_parser("create", help="create a token and print it (once)")
    create.add_argument("store", type=Path, metavar="STORE")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True, help="who or what uses the token")
    create.add_argument("--json", action="store_true", help="print {id, name, role, token} as JSON")
    create.set_defaults(handler=_run_token_create)
    lst = tk_sub.add_parser("list", help="list the tokens (never their secrets)")
    lst.add_argument("store", type=Path, metavar="STORE")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=_run_token_list)
    rev = tk_sub.add_parser("revoke", help="revoke a token by id")
    rev.add_argument("store", type=Path, metavar="STORE")
    rev.add_argument("token_id", metavar="ID")
    rev.set_defaults(handler=_run_token_revoke)


def _tokens(store: Path) -> Any:
    from twin.api.auth import TokenStore
    from twin.api.site import service_dir

    if not (store / "zarr.json").exists():
        raise ValueError(f"{store} is not a gridtwin store; build one first (gridtwin demo {store})")
    return TokenStore(service_dir(store) / "tokens.json")


def _run_serve(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.api.server import serve
    from twin.api.site import open_site

    with err.status("opening the store, grid and comm layer ..."):
        site = open_site(args.store, grid=args.grid, comm=args.comm)
    if not site.tokens.list():
        err.print(f"no API tokens yet: create one with 'gridtwin token create --role admin --name NAME {args.store}'")
    scheme = "https" if args.certfile else "http"
    err.print(f"serving {args.store} at {scheme}://{args.host}:{args.port} (API docs: /docs)")
    serve(
        site,
        args.host,
        args.port,
        certfile=args.certfile,
        keyfile=args.keyfile,
        max_body=args.max_body,
        cors_origins=args.cors_origin,
        broker=args.broker,
    )
    return 0


def _run_token_create(args: argparse.Namespace, out: Console, err: Console) -> int:
    tokens = _tokens(args.store)
    text = tokens.create(args.role, args.name)
    token_id = text.split("_", 2)[1]
    if args.json:
        out.print_json(json.dumps({"id": token_id, "name": args.name, "role": args.role, "token": text}))
        return 0
    out.print(text, markup=False, highlight=False, soft_wrap=True)
    err.print(f"token {token_id} ({args.role}, {args.name}): shown once, only its SHA-256 digest is stored")
    return 0


def _run_token_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    rows = _tokens(args.store).list()
    if args.json:
        out.print_json(json.dumps(rows))
        return 0
    table = Table(title=f"API tokens of {args.store}")
    for col in ("id", "name", "role", "created", "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["name"], r["role"], r["created"], r["revoked"] or "")
    out.print(table)
    return 0


def _run_token_revoke(args: argparse.Namespace, out: Console, err: Console) -> int:
    entry = _tokens(args.store).revoke(args.token_id)
    out.print(f"token {entry['id']} ({entry['name']}) revoked at {entry['revoked']}")
    return 0
