"""The benchmarks' shared measures: a percentile by nearest rank, and /proc readings."""

from __future__ import annotations

import os

import pytest

from tests.bench.procstat import cpu_seconds, percentile, rss_mb


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([3.0, 1.0, 2.0, 5.0, 4.0], 0.5, 3.0),
        ([3.0, 1.0, 2.0, 5.0, 4.0], 0.95, 5.0),
        ([3.0, 1.0, 2.0, 5.0, 4.0], 0.0, 1.0),
        ([float(i) for i in range(1, 101)], 0.95, 95.0),
        ([7.0], 0.99, 7.0),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_this_process_is_measured() -> None:
    before = cpu_seconds([os.getpid()])
    sum(i * i for i in range(2_000_000))  # CPU the reading must see
    assert cpu_seconds([os.getpid()]) > before
    assert rss_mb([os.getpid()]) > 10
    # Two processes add up (a forked liveness process is counted beside its agent).
    assert rss_mb([os.getpid(), os.getpid()]) == pytest.approx(2 * rss_mb([os.getpid()]), rel=0.1)
