"""The API with a running server: roles allowed and refused per endpoint, malformed payloads, the audit log, body
size limit, CORS, the plan workflow and scenario sets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer
from twin.api.audit import AuditLog
from twin.api.server import ServiceProcess
from twin.api.site import service_dir

ROLES = ("viewer", "planner", "operator", "admin", "ingest")
# the permission table of docs/design/api.md (written out here, not imported)
GRANTS = {
    "read": {"viewer", "planner", "operator", "admin"},
    "scenarios": {"planner", "admin"},
    "operate": {"operator", "admin"},
    "write": {"operator", "admin", "ingest"},
    "admin": {"admin"},
    "read or write": {"viewer", "planner", "operator", "admin", "ingest"},
}
# (method, path, permission, json body): requests that do no harm when allowed (unknown ids, invalid bodies)
ENDPOINTS = [
    ("GET", "/api/v1/whoami", "read or write", None),
    ("GET", "/api/v1/grid", "read", None),
    ("GET", "/api/v1/grid/topology?layer=physical&format=geojson", "read", None),
    ("GET", "/api/v1/measurements/latest?group=sensors", "read", None),
    ("GET", "/api/v1/timeseries/sensors/p_kw", "read", None),
    ("GET", "/api/v1/sensors", "read", None),
    ("GET", "/api/v1/predictions", "read", None),
    ("GET", "/api/v1/alarms?active=false", "read", None),
    ("POST", "/api/v1/alarms/no-such-alarm/ack", "operate", {"comment": "x"}),
    ("POST", "/api/v1/plans", "operate", {"horizon": "not a duration"}),
    ("GET", "/api/v1/plans", "read", None),
    ("GET", "/api/v1/plans/plan-none", "read", None),
    ("POST", "/api/v1/plans/plan-none/approve", "operate", None),
    ("POST", "/api/v1/plans/plan-none/reject", "operate", None),
    ("POST", "/api/v1/plans/plan-none/dispatch", "operate", None),
    ("GET", "/api/v1/plans/plan-none/execution", "read", None),
    ("POST", "/api/v1/scenarios", "scenarios", {"base": {}}),
    ("GET", "/api/v1/scenarios", "read", None),
    ("GET", "/api/v1/scenarios/set-000000000000", "read", None),
    ("POST", "/write", "write", None),
    ("POST", "/api/v2/write", "write", None),
    ("POST", "/api/v1/tokens", "admin", {"role": "nobody", "name": "x"}),
    ("GET", "/api/v1/tokens", "admin", None),
    ("DELETE", "/api/v1/tokens/ffffffff", "admin", None),
    ("POST", "/api/v1/customers/no-such-customer/erase", "admin", None),
    ("GET", "/api/v1/audit?limit=5", "admin", None),
]


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        yield c


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "permission", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS]
)
def test_role_is_allowed_or_refused(
    client: httpx.Client, live_server: LiveServer, role: str, method: str, path: str, permission: str, body: Any
) -> None:
    r = client.request(method, path, json=body, headers=live_server.headers(role))
    if role in GRANTS[permission]:
        assert r.status_code not in (401, 403), r.text
        assert r.status_code < 500, r.text
    else:
        assert r.status_code == 403, r.text
        assert f"role {role!r} may not do this" in r.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "permission", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS]
)
@pytest.mark.parametrize("auth", [None, "Bearer gt_00000000_nope", "Bearer garbage", "Basic !!!"])
def test_no_anonymous_access(
    client: httpx.Client, method: str, path: str, permission: str, body: Any, auth: Any
) -> None:
    r = client.request(method, path, json=body, headers={} if auth is None else {"Authorization": auth})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "token" in r.json()["detail"]


def test_healthz_needs_no_token_and_shows_no_data(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_token_schemes(client: httpx.Client, live_server: LiveServer) -> None:
    token = live_server.tokens["viewer"]
    for headers in ({"Authorization": f"Token {token}"}, {"Authorization": f"Bearer {token}"}):
        assert client.get("/api/v1/whoami", headers=headers).json()["role"] == "viewer"
    r = client.get("/api/v1/whoami", auth=("anyone", token))
    assert r.status_code == 200
    assert r.json()["name"] == "test-viewer"
    assert client.get(f"/api/v1/whoami?p={token}").status_code == 401  # ?p= only on /write


def test_revoked_token_stops_working(client: httpx.Client, live_server: LiveServer) -> None:
    admin = live_server.headers("admin")
    created = client.post("/api/v1/tokens", json={"role": "viewer", "name": "short-lived"}, headers=admin)
    assert created.status_code == 201
    doc = created.json()
    listed = client.get("/api/v1/tokens", headers=admin).json()["tokens"]
    assert doc["id"] in {t["id"] for t in listed}
    assert all("sha256" not in t and "token" not in t for t in listed)
    viewer = {"Authorization": f"Bearer {doc['token']}"}
    assert client.get("/api/v1/grid", headers=viewer).status_code == 200
    assert client.delete(f"/api/v1/tokens/{doc['id']}", headers=admin).status_code == 200
    r = client.get("/api/v1/grid", headers=viewer)
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/api/v1/plans", {"horizon": "forever"}, ["body.horizon", "pattern"]),
        ("/api/v1/plans", {"margin": 3}, ["body.margin", "less than or equal to 0.5"]),
        ("/api/v1/plans", {"load_quantile": 0.5, "colour": "red"}, ["body.colour", "Extra inputs are not permitted"]),
        ("/api/v1/plans", {"assets": "trafo/0"}, ["body.assets", "valid list"]),
        ("/api/v1/plans", [1, 2], ["body", "dictionary"]),
        ("/api/v1/scenarios", {"scenarios": [{"name": "a"}]}, ["body.base", "Field required"]),
        ("/api/v1/scenarios", {"base": {"grid": "case9"}}, ["give 'scenarios', 'sets' or 'monte_carlo'"]),
        ("/api/v1/tokens", {"role": "root", "name": "x"}, ["body.role", "viewer"]),
        ("/api/v1/alarms/x/ack", {"comment": 5}, ["body.comment", "string"]),
    ],
)
def test_malformed_payloads_are_rejected_with_a_message(
    client: httpx.Client, live_server: LiveServer, path: str, body: Any, words: list[str]
) -> None:
    r = client.post(path, json=body, headers=live_server.headers("admin"))
    assert r.status_code == 422, r.text
    for word in words:
        assert word in r.json()["detail"]


def test_not_json_and_bad_queries(client: httpx.Client, live_server: LiveServer) -> None:
    admin = live_server.headers("admin")
    r = client.post("/api/v1/plans", content=b"{not json", headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert "JSON" in r.json()["detail"]
    r = client.get("/api/v1/timeseries/sensors/p_kw?start=2016-01-01&end=2016-12-31", headers=admin)
    assert r.status_code == 400
    assert "at most 10000" in r.json()["detail"]
    ids = ",".join(f"m{i}" for i in range(101))
    r = client.get(f"/api/v1/timeseries/measurements/energy_kwh?ids={ids}", headers=admin)
    assert r.status_code == 400
    assert "at most 100" in r.json()["detail"]
    r = client.get("/api/v1/timeseries/measurements/energy_kwh", headers=admin)  # 73 meters: allowed
    assert r.status_code == 200
    assert len(r.json()["series"]) == 73
    r = client.get("/api/v1/timeseries/sensors/nope", headers=admin)
    assert r.status_code == 404
    assert "no variable 'nope'" in r.json()["detail"]
    r = client.get("/api/v1/timeseries/sensors/p_kw?ids=trafo/9", headers=admin)
    assert r.status_code == 404
    assert "trafo/9" in r.json()["detail"]
    r = client.get("/api/v1/timeseries/sensors/p_kw?start=2016-05-02&end=2016-05-01", headers=admin)
    assert r.status_code == 400
    assert "after end" in r.json()["detail"]


def test_read_endpoints_return_the_site(client: httpx.Client, live_server: LiveServer) -> None:
    h = live_server.headers("viewer")
    grid = client.get("/api/v1/grid", headers=h).json()
    assert grid["name"] == "1-LV-rural1--2-sw"
    assert grid["counts"]["trafo"] == 1
    assert grid["counts"]["load"] == 28
    topo = client.get("/api/v1/grid/topology", headers=h).json()
    layers = {n["layer"] for n in topo["nodes"]}
    assert layers == {"physical", "comm"}
    assert topo["cross"]
    assert all("customer" not in n for n in topo["nodes"])
    geo = client.get("/api/v1/grid/topology?format=geojson&layer=physical", headers=h).json()
    kinds = {f["geometry"]["type"] for f in geo["features"]}
    assert geo["type"] == "FeatureCollection"
    assert kinds == {"Point", "LineString"}
    latest = client.get("/api/v1/measurements/latest?group=sensors", headers=h).json()
    assert latest["variables"]["p_kw"]["trafo/0"]["time"] == "2016-06-01T00:00:00"
    window = client.get(
        "/api/v1/timeseries/loads/p_mw?ids=load/0,load/1&start=2016-05-01T00:00:00Z&end=2016-05-01T23:45:00Z", headers=h
    ).json()
    assert len(window["time"]) == 96
    assert set(window["series"]) == {"load/0", "load/1"}
    sensors = client.get("/api/v1/sensors", headers=h).json()["sensors"]
    assert sensors[0]["trafo"] == "trafo/0"
    assert sensors[0]["measured_p_kw"] is not None
    pred = client.get("/api/v1/predictions", headers=h).json()
    assert pred["issued"].startswith("2016-06-01")
    assert pred["assets"][0]["asset"] == "trafo/0"
    assert pred["assets"][0]["at_risk"]
    assert pred["assets"][0]["lead_time"] is not None


def test_plan_request_approve_dispatch_execute(client: httpx.Client, live_server: LiveServer) -> None:
    op = live_server.headers("operator")
    r = client.post("/api/v1/plans", json={"assets": ["trafo/0"], "horizon": "24h", "margin": 0.05}, headers=op)
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["status"] == "proposed"
    assert plan["commands"]
    assert plan["feasible"]
    assert {"element", "kind", "gateway", "start", "end", "kW"} <= set(plan["commands"][0])
    pid = plan["plan_id"]
    assert client.post(f"/api/v1/plans/{pid}/dispatch", headers=op).status_code == 409  # not approved yet
    r = client.post(f"/api/v1/plans/{pid}/approve", json={"comment": "checked"}, headers=op)
    assert r.status_code == 200
    assert r.json()["status"] == "approved"
    r = client.post(f"/api/v1/plans/{pid}/dispatch", headers=op)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "executed"
    assert r.json()["counts"]["applied"] == len(plan["commands"])
    ex = client.get(f"/api/v1/plans/{pid}/execution", headers=live_server.headers("viewer")).json()
    assert ex["status"] == "executed"
    assert {c["status"] for c in ex["commands"]} == {"applied"}
    history = client.get(f"/api/v1/plans/{pid}", headers=op).json()["history"]
    assert [h["status"] for h in history] == ["proposed", "approved", "dispatched", "executed"]
    assert history[1]["by"] == "test-operator"
    assert history[1]["comment"] == "checked"
    r = client.post(f"/api/v1/plans/{pid}/reject", headers=op)
    assert r.status_code == 409
    assert "executed" in r.json()["detail"]
    listed = client.get("/api/v1/plans", headers=op).json()["plans"]
    assert {"plan_id": pid, "status": "executed"}.items() <= next(p for p in listed if p["plan_id"] == pid).items()


def test_plan_reject_and_bad_requests(client: httpx.Client, live_server: LiveServer) -> None:
    op = live_server.headers("operator")
    r = client.post("/api/v1/plans", json={"assets": ["trafo/0"], "load_quantile": 0.9}, headers=op)
    assert r.status_code == 201, r.text
    pid = r.json()["plan_id"]
    assert client.post(f"/api/v1/plans/{pid}/reject", json={"comment": "no"}, headers=op).json()["status"] == "rejected"
    assert client.post(f"/api/v1/plans/{pid}/approve", headers=op).status_code == 409
    r = client.post("/api/v1/plans", json={"load_quantile": 0.3}, headers=op)
    assert r.status_code == 400
    assert "quantiles" in r.json()["detail"]


def test_alarm_acknowledge(client: httpx.Client, live_server: LiveServer) -> None:
    alarms = client.get("/api/v1/alarms?active=false", headers=live_server.headers("viewer")).json()["alarms"]
    open_ = [a for a in alarms if a["acknowledged"] is None]
    assert open_, "the demo site raises alarms (overload risk, sensor mismatch)"
    alarm_id = open_[0]["alarm_id"]
    op = live_server.headers("operator")
    r = client.post(f"/api/v1/alarms/{alarm_id}/ack", json={"comment": "seen"}, headers=op)
    assert r.status_code == 200
    assert r.json()["acknowledged_by"] == "test-operator"
    r = client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=op)
    assert r.status_code == 400
    assert "already acknowledged" in r.json()["detail"]


def test_scenario_set_runs_in_the_background(client: httpx.Client, live_server: LiveServer) -> None:
    spec = {"base": {"grid": "1-LV-rural1--2-sw", "start": "2016-06-01", "days": 1}, "scenarios": [{"name": "today"}]}
    r = client.post("/api/v1/scenarios", json=spec, headers=live_server.headers("planner"))
    assert r.status_code == 202, r.text
    set_id = r.json()["set_id"]
    deadline = time.monotonic() + 60
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        doc = client.get(f"/api/v1/scenarios/{set_id}", headers=live_server.headers("viewer")).json()
        if doc["state"] in ("done", "failed"):
            break
        time.sleep(0.3)
    assert doc["state"] == "done", doc
    assert doc["scenario_status"] == {"today": "ok"}
    assert doc["table"][0]["scenario"] == "today"
    bad = {"base": {"grid": "/etc/passwd"}, "scenarios": [{"name": "x"}]}
    r = client.post("/api/v1/scenarios", json=bad, headers=live_server.headers("planner"))
    assert r.status_code == 400
    assert "no file paths" in r.json()["detail"]


def test_customer_erasure(client: httpx.Client, live_server: LiveServer) -> None:
    from twin.comm import read_comm

    devices = read_comm(live_server.store.with_name(live_server.store.name + ".comm")).devices
    customer = sorted(c for c in devices["customer"].dropna().unique() if c)[-1]
    r = client.post(f"/api/v1/customers/{customer}/erase", headers=live_server.headers("admin"))
    assert r.status_code == 200
    assert r.json()["erased"]["meters"] >= 1
    r = client.post(f"/api/v1/customers/{customer}/erase", headers=live_server.headers("admin"))
    assert r.status_code == 404
    assert "no meter of customer" in r.json()["detail"]
    log = AuditLog(service_dir(live_server.store) / "audit.jsonl").read()
    assert not any(customer in str(e) for e in log)  # the audit log keeps no customer id


def test_audit_log_records_every_change(client: httpx.Client, live_server: LiveServer) -> None:
    path = service_dir(live_server.store) / "audit.jsonl"
    before = AuditLog(path).verify()
    changes = [
        ("POST", "/api/v1/alarms/none/ack", "operator", 404),
        ("POST", "/api/v1/plans/plan-none/approve", "viewer", 403),
        ("POST", "/api/v1/plans", "operator", 422),
        ("DELETE", "/api/v1/tokens/ffffffff", "admin", 404),
        ("POST", "/write", "ingest", 204),
        ("POST", "/api/v1/tokens", "planner", 403),
    ]
    for method, url, role, status in changes:
        body = {"horizon": 5} if url == "/api/v1/plans" else None
        assert client.request(method, url, json=body, headers=live_server.headers(role)).status_code == status
    client.post("/api/v1/plans", json={})  # refused without a token: recorded too
    client.get("/api/v1/grid", headers=live_server.headers("viewer"))  # reads are not recorded
    log = AuditLog(path)
    assert log.verify() == before + len(changes) + 1
    new = log.read()[before:]
    got = [(e["method"], e["path"], e["role"], e["status"]) for e in new]
    want = [(m, u, r, s) for m, u, r, s in changes] + [("POST", "/api/v1/plans", None, 401)]
    assert got == want
    assert new[0]["name"] == "test-operator"
    assert new[0]["action"] == "alarm.ack"
    assert new[0]["target"] == "none"
    served = client.get("/api/v1/audit?limit=3", headers=live_server.headers("admin")).json()
    assert served["chain_intact"]
    assert [e["seq"] for e in served["entries"]][-1] >= before + len(changes) + 1


def test_request_size_limit(client: httpx.Client, live_server: LiveServer) -> None:
    h = live_server.headers("ingest")
    big = b"x" * (16 * 2**20 + 1)
    r = client.post("/write", content=big, headers=h)
    assert r.status_code == 413
    assert "--max-body" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for _ in range(17):
            yield b"y" * 2**20

    r = client.post("/write", content=chunks(), headers=h)  # no Content-Length: chunked
    assert r.status_code == 413


def test_cors_closed_by_default(client: httpx.Client, live_server: LiveServer) -> None:
    origin = {"Origin": "https://evil.example"}
    r = client.get("/api/v1/grid", headers={**origin, **live_server.headers("viewer")})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/api/v1/plans", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_origin_and_body_limit_options(site_store: Any, tokens: dict[str, str]) -> None:
    args = ["--cors-origin", "https://control.example", "--max-body", "1000"]
    with ServiceProcess(site_store, extra_args=args) as proc, httpx.Client(base_url=proc.url) as c:
        h = {"Authorization": f"Bearer {tokens['viewer']}"}
        r = c.get("/api/v1/grid", headers={"Origin": "https://control.example", **h})
        assert r.headers["access-control-allow-origin"] == "https://control.example"
        r = c.get("/api/v1/grid", headers={"Origin": "https://evil.example", **h})
        assert "access-control-allow-origin" not in r.headers
        r = c.post("/write", content=b"z" * 1001, headers={"Authorization": f"Bearer {tokens['ingest']}"})
        assert r.status_code == 413


def test_unexpected_errors_answer_500_with_a_detail_and_are_audited(site_store: Any, tokens: dict[str, str]) -> None:
    import asyncio

    from twin.api.app import create_app
    from twin.api.site import open_site

    site = open_site(site_store)
    app = create_app(site)

    @app.post("/boom")
    def boom() -> None:
        raise RuntimeError("the kettle is on fire")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://site") as c:
            return await c.post("/boom", headers={"Authorization": f"Bearer {tokens['operator']}"})

    r = asyncio.run(call())
    assert r.status_code == 500
    assert "RuntimeError" in r.json()["detail"]
    last = site.audit.read(1)[0]
    assert (last["path"], last["status"], last["name"]) == ("/boom", 500, "test-operator")
    assert site.audit.verify() == last["seq"]


def test_demo_store_records_its_grid_and_comm_layer(site_store: Any) -> None:
    from twin.timeseries.store import Store

    attrs = Store.open(site_store, mode="r").attrs
    assert attrs["grid_file"] == "demo.zarr.grid.json"
    assert attrs["comm_dir"] == "demo.zarr.comm"
    assert (site_store.parent / attrs["grid_file"]).is_file()
    assert (site_store.parent / attrs["comm_dir"] / "comm.json").is_file()


def _has_mosquitto() -> bool:
    import shutil

    return (
        shutil.which("mosquitto") is not None or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin") is not None
    )


@pytest.mark.skipif(not _has_mosquitto(), reason="needs the mosquitto broker (apt-get install mosquitto)")
def test_dispatch_over_mqtt_to_a_gateway_fleet(site_store: Any, tokens: dict[str, str]) -> None:
    from twin.comm import read_comm
    from twin.dispatch import GatewayFleet, MosquittoBroker

    devices = read_comm(site_store.with_name(site_store.name + ".comm")).devices
    gateways = sorted(devices.index[devices["kind"].isin(["gateway", "controller"]).to_numpy()])
    op = {"Authorization": f"Bearer {tokens['operator']}"}
    with MosquittoBroker() as broker, GatewayFleet(gateways, broker=broker.url) as fleet:
        with (
            ServiceProcess(site_store, extra_args=["--broker", broker.url]) as proc,
            httpx.Client(base_url=proc.url, timeout=60) as c,
        ):
            body = {"assets": ["trafo/0"], "load_quantile": 0.1, "gen_quantile": 0.9}
            plan = c.post("/api/v1/plans", json=body, headers=op).json()
            assert plan["commands"]
            assert c.post(f"/api/v1/plans/{plan['plan_id']}/approve", headers=op).status_code == 200
            r = c.post(f"/api/v1/plans/{plan['plan_id']}/dispatch", headers=op)
            assert r.status_code == 200, r.text
        assert r.json()["status"] == "executed"
        assert r.json()["execution"]["broker"].startswith("mqtt://")
        assert len(fleet.applied) == len(plan["commands"])
