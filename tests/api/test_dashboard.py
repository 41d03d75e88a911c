"""The dashboard's pages, local BokehJS and plot endpoints (``twin/api/dashboard.py``, ``dashboard_plots.py``).

Against the running service (``live_server``): pages without data and without a token, BokehJS served from the
installed bokeh package, every data endpoint refused without a token, and the plots checked as Bokeh documents whose
data match the store. The live-update version is checked in process on a copy of the store, so that the changes it
makes (a plan file, a new store group, an API change) do not reach the shared service.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import xarray as xr
from bokeh.document import Document
from bokeh.models import ColumnDataSource, GlyphRenderer, HoverTool, TapTool

from tests.api.conftest import LiveServer
from twin.api.dashboard import bokeh_js_dir, data_version
from twin.api.server import ServiceProcess
from twin.api.site import open_site
from twin.timeseries.store import Store

DATA_ENDPOINTS = [
    "/api/v1/dashboard/version",
    "/api/v1/dashboard/transformers",
    "/api/v1/dashboard/network",
    "/api/v1/dashboard/network?source=predicted",
    "/api/v1/dashboard/transformer/trafo/0",
]


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        yield c


def _document(item: dict[str, Any]) -> Document:
    """The Bokeh document of a ``json_item`` (raises when it is not one BokehJS can build)."""
    assert set(item) >= {"target_id", "root_id", "doc", "version"}
    doc = Document.from_json(item["doc"])
    assert [r.id for r in doc.roots] == [item["root_id"]]
    return doc


def _sources(doc: Document) -> list[dict[str, Any]]:
    return [dict(s.data) for s in doc.select({"type": ColumnDataSource})]


def test_pages_are_static_and_need_no_token(client: httpx.Client, live_server: LiveServer) -> None:
    for path, marker in (("/", 'id="token"'), ("/dashboard", 'id="network-plot"')):
        r = client.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        assert marker in r.text
        assert "1-LV-rural1" not in r.text  # no data in the pages: the grid name comes from the API with a token
        assert "://" not in r.text  # nothing loaded from elsewhere (no CDN)
        assert "default-src 'self'" in r.headers["content-security-policy"]
    for name in ("login.js", "dashboard.js", "dashboard.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200, name
        assert "://" not in r.text
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/static/..%2Fauth.py").status_code == 404
    assert client.get("/static/bokeh/..%2F..%2F..%2F__init__.py").status_code == 404


def test_bokehjs_is_served_from_the_installed_package(client: httpx.Client) -> None:
    r = client.get("/static/bokeh/bokeh.min.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.content == (bokeh_js_dir() / "bokeh.min.js").read_bytes()
    page = client.get("/dashboard").text
    assert '<script src="/static/bokeh/bokeh.min.js"></script>' in page
    assert client.get("/static/bokeh/compiler.js").status_code == 404  # only the BokehJS bundles


@pytest.mark.parametrize("path", DATA_ENDPOINTS)
def test_data_endpoints_need_a_read_token(client: httpx.Client, live_server: LiveServer, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 401
    assert "API token" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get(path, headers={"Authorization": "Bearer gt_00000000_wrong"}).status_code == 401
    assert client.get(path, headers=live_server.headers("ingest")).status_code == 403
    assert client.get(path, headers=live_server.headers("viewer")).status_code == 200


def test_network_plot_is_a_bokeh_document_coloured_by_the_latest_loading(
    client: httpx.Client, live_server: LiveServer
) -> None:
    r = client.get("/api/v1/dashboard/network", headers=live_server.headers("viewer"))
    assert r.status_code == 200, r.text
    doc = _document(r.json())
    branches = next(s for s in _sources(doc) if "branch_id" in s)
    results = Store.open(live_server.store).dataset("results")["loading_pct"]
    last = results.isel(time=-1).to_series()
    assert sorted(branches["branch_id"]) == sorted(last.index)
    expected = last.reindex(branches["branch_id"]).to_numpy()
    np.testing.assert_allclose(np.asarray(branches["loading_pct"], dtype=float), expected)
    assert branches["x0"] is not None
    # buses at their coordinates: every bus has a finite position
    buses = next(s for s in _sources(doc) if "bus_id" in s)
    assert np.isfinite(np.asarray(buses["x"], dtype=float)).all()
    # the transformer markers are the tap tool's only target and select through the page's callback
    (renderer,) = [r for r in doc.select({"type": GlyphRenderer}) if r.name == "gridtwin-trafos"]
    assert list(renderer.data_source.data["trafo_id"]) == ["trafo/0"]
    (tap,) = doc.select({"type": TapTool})
    assert tap.renderers == [renderer]
    callbacks = renderer.data_source.selected.js_property_callbacks["change:indices"]
    assert "gridtwinSelectTrafo" in callbacks[0].code
    hover_fields = {field for tool in doc.select({"type": HoverTool}) for _, field in tool.tooltips}
    assert {"@{branch_id}", "@{trafo_id}", "@{bus_id}", "@{loading_pct}{0.0}"} <= hover_fields


def test_network_plot_predicted_loading_and_bad_source(client: httpx.Client, live_server: LiveServer) -> None:
    headers = live_server.headers("viewer")
    r = client.get("/api/v1/dashboard/network?source=predicted", headers=headers)
    assert r.status_code == 200, r.text
    branches = next(s for s in _sources(_document(r.json())) if "branch_id" in s)
    overload = Store.open(live_server.store).dataset("overload")
    expected = overload["expected_loading_pct"].max("time").to_series().reindex(branches["branch_id"])
    np.testing.assert_allclose(np.asarray(branches["loading_pct"], dtype=float), expected.to_numpy())
    risk = overload["p_exceed"].max("time").to_series().reindex(branches["branch_id"])
    np.testing.assert_allclose(np.asarray(branches["risk"], dtype=float), risk.to_numpy())
    r = client.get("/api/v1/dashboard/network?source=tomorrow", headers=headers)
    assert r.status_code == 422
    assert "source" in r.json()["detail"]


def test_transformer_plot_has_metering_virtual_sensor_and_forecast_band(
    client: httpx.Client, live_server: LiveServer
) -> None:
    r = client.get("/api/v1/dashboard/transformer/trafo/0", headers=live_server.headers("viewer"))
    assert r.status_code == 200, r.text
    text = r.text
    labels = ("load forecast P10–P90", "load forecast, expected", "metering", "virtual sensor", "expected (prediction)")
    for label in labels:
        assert label in text, label
    sources = _sources(_document(r.json()))
    # the centre curve is the sum of the loads' expected values, 0.3 P10 + 0.4 P50 + 0.3 P90 (means add up; medians
    # of zero-inflated household loads do not), over the loads below the transformer (all loads here)
    forecasts = Store.open(live_server.store).dataset("forecasts")["load_p_mw"]
    p50 = forecasts.sel(quantile=0.5).sum("load").to_numpy() * 1000.0
    p10 = forecasts.sel(quantile=0.1).sum("load").to_numpy() * 1000.0
    p90 = forecasts.sel(quantile=0.9).sum("load").to_numpy() * 1000.0
    (band,) = [np.asarray(s["y"], dtype=float) for s in sources if "y" in s]  # the area: P90 out, P10 back
    np.testing.assert_allclose(band, np.concatenate([p90, p10[::-1]]))
    expected = 0.3 * p10 + 0.4 * p50 + 0.3 * p90
    assert any(len(s.get("p_kw", ())) == len(expected) and np.allclose(s["p_kw"], expected) for s in sources)
    assert (p10 <= p50 + 1e-9).all()
    # the metering curve holds the last two days of the transformer's own metering
    metering = Store.open(live_server.store).dataset("sensors")["p_kw"].sel(sensor="trafo/0")
    last = metering.isel(time=slice(-2 * 96, None)).to_numpy()
    assert any(len(s.get("p_kw", ())) == len(last) and np.allclose(s["p_kw"], last, equal_nan=True) for s in sources)


def test_transformer_plot_errors(client: httpx.Client, live_server: LiveServer) -> None:
    headers = live_server.headers("viewer")
    r = client.get("/api/v1/dashboard/transformer/trafo/99", headers=headers)
    assert r.status_code == 404
    assert "no transformer 'trafo/99'" in r.json()["detail"]
    assert "trafo/0" in r.json()["detail"]
    assert client.get("/api/v1/dashboard/transformer/trafo/0?days=0", headers=headers).status_code == 422
    assert client.get("/api/v1/dashboard/transformer/trafo/0?days=nan", headers=headers).status_code == 422
    r = client.get("/api/v1/dashboard/transformers", headers=headers)
    assert r.json()["transformers"][0]["id"] == "trafo/0"


@pytest.fixture
def site_copy(site_store: Path, tmp_path: Path) -> Path:
    """A copy of the demo store with its grid and comm layer, without the service's state."""
    for path in site_store.parent.iterdir():
        if path.name.endswith((".service", ".plans")) or not path.name.startswith(site_store.name):
            continue
        if path.is_dir():
            shutil.copytree(path, tmp_path / path.name)
        else:
            shutil.copy2(path, tmp_path / path.name)
    return tmp_path / site_store.name


def test_version_changes_with_plans_store_and_api_changes(site_copy: Path) -> None:
    site = open_site(site_copy)
    token = site.tokens.create("viewer", "version-test")
    with ServiceProcess(site_copy) as proc, httpx.Client(base_url=proc.url, timeout=60) as c:

        def version() -> int:
            r = c.get("/api/v1/dashboard/version", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            assert isinstance(r.json()["version"], int)
            assert 0 <= r.json()["version"] < 2**53  # exact as a JavaScript number
            return int(r.json()["version"])

        seen = [version()]
        assert version() == seen[-1]  # nothing changed: same version
        (site.plans_dir / "plan-external.json").write_text("{}")  # as 'gridtwin shed' writes a plan
        seen.append(version())
        Store.open(site_copy).write_dataset("extra", xr.Dataset({"v": ("time", np.zeros(2))}))  # another process
        seen.append(version())
        assert len(set(seen)) == len(seen), seen
    before = data_version(site)
    site.changed()  # what every changing route calls
    assert data_version(site) != before
