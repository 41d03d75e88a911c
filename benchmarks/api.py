"""``gridtwin bench api``: concurrent clients against a running ``gridtwin serve`` on loopback.

The service runs in its own process (``twin.api.server.ServiceProcess``: ``gridtwin serve`` on a free loopback port)
on the demo site (``gridtwin demo``'s control-loop store: 1-LV-rural1--2-sw, meters, virtual sensors, a prediction).
``--clients`` asyncio clients (httpx, one connection pool each) send requests back to back for ``--duration``
seconds, each request drawn at random with the ``--mix`` weights:

- ``read``: one of grid summary, alarms, predictions, latest sensor values, plans, a one-day time-series window of
  the virtual sensors, the dashboard's version poll (viewer token);
- ``ingest``: ``POST /write`` (InfluxDB 1.x line protocol, 96 readings: one device, one day of 15-minute slots;
  ingest token); every reading goes to a slot no other request writes, so the store must end up holding exactly the
  readings that were acknowledged with 204;
- ``plan``: ``POST /api/v1/plans`` for the transformer (Pyomo + HiGHS plan with AC re-check; operator token).

Reported: requests per second, p50/p99 latency per kind and overall, errors (any status other than the expected one,
or a transport error; target: none), readings sent vs readings in the store after the service stopped (target:
equal). Run: ``python -m benchmarks.api [--clients 50] [--duration 60] [--site DIR]`` or ``gridtwin bench api``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ApiBenchReport", "build_site", "format_report", "main", "run_api_bench"]

PARAMETER = "bench_kw"
SLOTS_PER_WRITE = 96
DEVICES_PER_CLIENT = 8
DEFAULT_MIX = {"read": 0.78, "ingest": 0.2, "plan": 0.02}


@dataclass
class ApiBenchReport:
    """What one run measured (latencies in milliseconds)."""

    clients: int
    duration_s: float
    requests: int
    requests_per_s: float
    errors: int
    error_samples: list[str]
    latency_ms: dict[str, dict[str, float]]
    readings_sent: int
    readings_acknowledged: int
    readings_in_store: int
    lost: int
    server: str
    mix: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_site(path: Path, history_days: int = 35) -> Path:
    """Build the demo control-loop site at ``path`` (store, grid, comm layer; about 15 s)."""
    from rich.console import Console

    from twin.loop import run_loop

    run_loop(path, history_days=history_days, dispatch="in-process", console=Console(stderr=True, quiet=True))
    return path


def _tokens(store: Path) -> dict[str, str]:
    from twin.api.auth import TokenStore

    tokens = TokenStore(Path(str(store) + ".service") / "tokens.json")
    return {role: tokens.create(role, f"bench-{role}") for role in ("viewer", "operator", "ingest")}


def _store_window(store: Path) -> tuple[int, int]:
    """(origin in epoch seconds, step in seconds) of the store's time axis."""
    from twin.timeseries.store import Store

    st = Store.open(store, mode="r")
    return int(st.origin.timestamp()), int(st.freq.total_seconds())


def _read_targets(sensor_var: str | None, day: str) -> list[str]:
    paths = [
        "/api/v1/grid",
        "/api/v1/alarms",
        "/api/v1/predictions",
        "/api/v1/measurements/latest?group=sensors",
        "/api/v1/plans",
        "/api/v1/dashboard/version",
    ]
    if sensor_var:
        paths.append(f"/api/v1/timeseries/sensors/{sensor_var}?start={day}&end={day}T23:45")
    return paths


@dataclass
class _Shared:
    url: str
    tokens: dict[str, str]
    origin_s: int
    step_s: int
    reads: list[str]
    plan_body: dict[str, Any]
    mix: dict[str, float]
    deadline: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    acknowledged: int = 0


def _lines(client: int, write: int, origin_s: int, step_s: int) -> str:
    device = f"bench-{client:03d}-{write % DEVICES_PER_CLIENT}"
    first = origin_s + (write // DEVICES_PER_CLIENT) * SLOTS_PER_WRITE * step_s
    return "\n".join(
        f"bench,device={device} {PARAMETER}={(client + 0.01 * k):.3f} {first + k * step_s}"
        for k in range(SLOTS_PER_WRITE)
    )


def _fail(sh: _Shared, kind: str, r: Any) -> int:
    sh.errors.append(f"{kind} {r.request.method} {r.request.url.path}: HTTP {r.status_code} {r.text[:160]}")
    return r.status_code


async def _one(http: Any, sh: _Shared, kind: str, client: int, write: int, rng: random.Random) -> int:
    if kind == "read":
        r = await http.get(rng.choice(sh.reads), headers={"Authorization": f"Bearer {sh.tokens['viewer']}"})
        return 0 if r.status_code == 200 else _fail(sh, kind, r)
    if kind == "ingest":
        body = _lines(client, write, sh.origin_s, sh.step_s)
        sh.sent += SLOTS_PER_WRITE
        r = await http.post(
            "/write?precision=s", content=body, headers={"Authorization": f"Token {sh.tokens['ingest']}"}
        )
        if r.status_code == 204:
            sh.acknowledged += SLOTS_PER_WRITE
            return 0
        return _fail(sh, kind, r)
    auth = {"Authorization": f"Bearer {sh.tokens['operator']}"}
    r = await http.post("/api/v1/plans", json=sh.plan_body, headers=auth)
    return 0 if r.status_code in (200, 201) else _fail(sh, kind, r)


async def _client(sh: _Shared, client: int, seed: int) -> None:
    import httpx

    rng = random.Random(seed * 1000 + client)
    kinds, weights = list(sh.mix), list(sh.mix.values())
    write = 0
    async with httpx.AsyncClient(base_url=sh.url, timeout=120.0) as http:
        while time.perf_counter() < sh.deadline:
            kind = rng.choices(kinds, weights)[0]
            t0 = time.perf_counter()
            try:
                await _one(http, sh, kind, client, write, rng)
            except httpx.HTTPError as error:
                sh.errors.append(f"{kind}: {type(error).__name__}: {error}")
            sh.latencies[kind].append(time.perf_counter() - t0)
            write += kind == "ingest"


def _percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def _count_in_store(store: Path) -> int:
    from twin.timeseries.store import Store

    ds = Store.open(store, mode="r").dataset("measurements")
    return int(ds[PARAMETER].notnull().sum()) if PARAMETER in ds else 0


def _discover(url: str, token: str) -> tuple[str | None, str]:
    """A virtual-sensor variable and the last day of sensor data, asked from the running service."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    summary = httpx.get(f"{url}/api/v1/grid", headers=headers, timeout=30).json()
    latest = httpx.get(f"{url}/api/v1/measurements/latest?group=sensors", headers=headers, timeout=30).json()
    end = summary.get("store", {}).get("groups", {}).get("sensors", {}).get("end") or "2016-05-31"
    day = (np.datetime64(end[:10]) - np.timedelta64(1, "D")).astype(str)
    variables = sorted(latest.get("variables", {}))
    return (variables[0] if variables else None), day


def run_api_bench(
    *,
    clients: int = 50,
    duration_s: float = 60.0,
    site: Path | None = None,
    mix: dict[str, float] | None = None,
    seed: int = 0,
) -> ApiBenchReport:
    """Run the load test (see the module docstring) and return what it measured."""
    from twin.api.server import ServiceProcess

    mix = dict(DEFAULT_MIX if mix is None else mix)
    if clients < 1 or duration_s <= 0 or not mix or min(mix.values()) < 0 or set(mix) - set(DEFAULT_MIX):
        raise ValueError(
            f"clients={clients}, duration={duration_s}, mix={mix}: need ≥ 1 client, > 0 s and weights ≥ 0 for kinds "
            f"in {list(DEFAULT_MIX)}"
        )
    with tempfile.TemporaryDirectory(prefix="gridtwin-bench-api-") as tmp:
        store = site if site is not None else build_site(Path(tmp) / "site.zarr")
        tokens = _tokens(store)
        origin_s, step_s = _store_window(store)
        origin_s += 400 * 86400  # after the site's own data: the bench's slots are new, never conflicts
        with ServiceProcess(store) as service:
            sensor_var, day = _discover(service.url, tokens["viewer"])
            sh = _Shared(
                url=service.url, tokens=tokens, origin_s=origin_s, step_s=step_s, reads=_read_targets(sensor_var, day),
                plan_body={"horizon": "24h", "margin": 0.05}, mix=mix, deadline=0.0,
            )  # fmt: skip
            t0 = time.perf_counter()
            sh.deadline = t0 + duration_s
            asyncio.run(_gather(sh, clients, seed))
            wall = time.perf_counter() - t0
        in_store = _count_in_store(store)
    every = [v for values in sh.latencies.values() for v in values]
    latency = {kind: _percentiles(v) for kind, v in sorted(sh.latencies.items())}
    latency["all"] = _percentiles(every)
    return ApiBenchReport(
        clients=clients, duration_s=round(wall, 2), requests=len(every), requests_per_s=round(len(every) / wall, 1),
        errors=len(sh.errors), error_samples=sorted(set(sh.errors))[:10], latency_ms=latency,
        readings_sent=sh.sent, readings_acknowledged=sh.acknowledged, readings_in_store=in_store,
        lost=sh.acknowledged - in_store, server="gridtwin serve (uvicorn, 1 process) on loopback", mix=mix,
    )  # fmt: skip


async def _gather(sh: _Shared, clients: int, seed: int) -> None:
    await asyncio.gather(*(_client(sh, c, seed) for c in range(clients)))


def format_report(r: ApiBenchReport) -> str:
    """Markdown table of a report."""
    lines = [
        f"## bench api: {r.clients} clients, {r.duration_s:.0f} s, {r.requests} requests ({r.requests_per_s}/s)",
        "",
        "| kind | requests | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, p in r.latency_ms.items():
        lines.append(f"| {kind} | {p['n']:.0f} | {p['p50']:.1f} | {p['p99']:.1f} | {p['max']:.1f} |")
    lines += [
        "",
        f"errors: {r.errors}" + (f" ({'; '.join(r.error_samples)})" if r.errors else ""),
        f"readings: sent {r.readings_sent}, acknowledged {r.readings_acknowledged}, in the store {r.readings_in_store}"
        f", lost {r.lost}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridtwin bench api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--site", type=Path, help="an existing site store (default: build the demo site, ~15 s)")
    parser.add_argument("--mix", help='request mix as JSON, e.g. \'{"read": 0.78, "ingest": 0.2, "plan": 0.02}\'')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run_api_bench(
        clients=args.clients,
        duration_s=args.duration,
        site=args.site,
        mix=json.loads(args.mix) if args.mix else None,
        seed=args.seed,
    )
    if args.out:
        args.out.write_text(json.dumps(report.to_dict(), indent=2))
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.errors == 0 and report.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
