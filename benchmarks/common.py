"""What the benchmark scripts share: one timing rule, so every table measures the same way."""

from __future__ import annotations

import time

import numpy as np


def timed(function, repeats=20, warmup=3):
    """Median seconds of ``function()`` over ``repeats`` runs, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
