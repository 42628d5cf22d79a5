"""LoopWatch names a blocked event loop; an idle loop is not reported."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from nodeagent.loopwatch import TICK, LoopWatch


async def test_a_blocking_call_is_reported_with_its_length(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = LoopWatch(threshold=0.1)
    watch.start()
    try:
        await asyncio.sleep(3 * TICK)
        assert watch.stalls == 0
        with caplog.at_level(logging.WARNING, logger="nodeagent.loopwatch"):
            time.sleep(0.3)  # noqa: ASYNC251 - the blocking call under test
            await asyncio.sleep(2 * TICK)
    finally:
        await watch.stop()
    assert watch.stalls == 1
    assert 0.25 <= watch.longest < 1.0
    assert (
        "event loop blocked for 0.2" in caplog.text or "event loop blocked for 0.3" in caplog.text
    )


def test_short_lateness_is_not_a_stall() -> None:
    watch = LoopWatch(threshold=0.2)
    watch.observe(0.19)
    watch.observe(0.01)
    assert watch.stalls == 0 and watch.longest == 0.19
    watch.observe(0.5)
    assert watch.stalls == 1 and watch.longest == 0.5
