"""Fixtures of the time-series tests: a private InfluxDB 1.x server for the whole session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from twin.timeseries.influx import InfluxServer


@pytest.fixture(scope="session")
def influx() -> Iterator[InfluxServer]:
    """A running ``influxd`` on a loopback port (skipped only when InfluxDB 1.x is not installed)."""
    if shutil.which("influxd") is None:
        pytest.skip("influxd is not installed (Debian/Ubuntu: apt-get install influxdb); CI installs it")
    with InfluxServer() as server:
        yield server
