"""Reports event-loop stalls: a blocked loop sends no heartbeats and extends no lease.

Heartbeats, the serving lease and the reconciler share one asyncio loop. Anything that
holds it (a synchronous import, a big decode, a blocking call that slipped in) delays
heartbeats; past deadtime the peers declare the node lost and the enforcer stops its
resources. This task measures how late its own wake-ups are and logs every stall longer
than the threshold, so such a regression names itself in the agent's log instead of
showing up as an unexplained failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

log = logging.getLogger(__name__)

TICK = 0.05


class LoopWatch:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.stalls = 0
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loop-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def observe(self, late: float) -> None:
        self.longest = max(self.longest, late)
        if late > self.threshold:
            self.stalls += 1
            log.warning(
                "event loop blocked for %.3f s (heartbeats and the serving lease waited); "
                "%d such stalls so far",
                late,
                self.stalls,
            )

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            self.observe(time.monotonic() - before - TICK)
