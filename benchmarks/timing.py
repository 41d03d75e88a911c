"""Timing helper shared by the suites: one untimed warm-up call, then the median of repeated calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["timed"]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Call ``fn`` once untimed (warm-up), then ``repeats`` times; return median seconds, all seconds, last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out
