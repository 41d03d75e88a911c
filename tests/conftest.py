"""Shared pytest options: ``--run-slow`` enables tests marked ``slow`` (xarray's convention)."""

from __future__ import annotations

import os

import pytest

# scikit-learn's OpenMP threads next to numba's on 2 cores: oversubscribed fits crawl; one thread each is faster
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
