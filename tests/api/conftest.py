"""Fixtures of the API tests: one demo site built per session, tokens of every role, and a running service.

``site_store`` runs the closed loop (:func:`twin.loop.run_loop`, 35 days of history, in-process dispatch: ~15 s on
2 cores) once; the store holds measurements, sensors, loads, PV/storage telemetry, forecasts and the overload
prediction, and records its grid and comm layer (``grid_file``, ``comm_dir``). ``live_server`` is ``gridtwin
serve`` on it in a subprocess (:class:`twin.api.server.ServiceProcess`); tests talk to it with httpx.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from twin.api.auth import Role, TokenStore
from twin.api.server import ServiceProcess
from twin.api.site import service_dir


@dataclass
class LiveServer:
    """A running service: its base URL, a token per role (``tokens["admin"]`` ...) and the store it serves."""

    url: str
    tokens: dict[str, str]
    store: Path
    process: ServiceProcess

    def headers(self, role: str) -> dict[str, str]:
        """``Authorization`` header of the role's token."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture(scope="session")
def site_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo store (closed loop on 1-LV-rural1--2-sw, issue day 2016-06-01, 35 days of history)."""
    from twin.loop import run_loop

    path = tmp_path_factory.mktemp("site") / "demo.zarr"
    run_loop(path, history_days=35, dispatch="in-process", console=Console(file=io.StringIO()))
    return path


@pytest.fixture(scope="session")
def tokens(site_store: Path) -> dict[str, str]:
    """Token text per role (``viewer``, ``planner``, ``operator``, ``admin``, ``ingest``) of ``site_store``."""
    store = TokenStore(service_dir(site_store) / "tokens.json")
    return {role.value: store.create(role, f"test-{role.value}") for role in Role}


@pytest.fixture(scope="session")
def live_server(site_store: Path, tokens: dict[str, str]) -> Iterator[LiveServer]:
    """``gridtwin serve site_store`` on a free loopback port for the whole session."""
    with ServiceProcess(site_store) as proc:
        yield LiveServer(proc.url, tokens, site_store, proc)
