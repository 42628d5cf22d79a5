"""Reports event-loop stalls: how late a loop's own wake-ups are.

The agent runs two loops: the liveness loop (heartbeats, the serving lease; its own
process) and the control plane's (store, reconciler, leader). Each has a watch. A stall of
the liveness loop delays heartbeats, and past deadtime the peers declare the node lost: it
must never happen, and its log line names it. A stall of the control plane's loop delays
decisions and actions only; its line gives the control plane's own latency (a big apply,
a blocking call that slipped in). The control watch also ticks the liveness process's
watchdog (`on_tick`), which ends an agent whose control loop is stuck for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)

TICK = 0.05


class LoopWatch:
    def __init__(
        self,
        threshold: float,
        label: str = "event loop",
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.label = label
        self.on_tick = on_tick
        self.stalls = 0
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"loop-watch ({self.label})")

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
                "%s blocked for %.3f s; %d such stalls so far", self.label, late, self.stalls
            )

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            self.observe(time.monotonic() - before - TICK)
            if self.on_tick is not None:
                self.on_tick()


class GcWatch:
    """Logs garbage collections long enough to stall the agent's loops.

    A full collection holds the interpreter lock throughout: the control plane's loop
    waits (the liveness process has its own interpreter and a small heap). Thousands of
    groups make a heap big enough for that to matter; this names it when it happens.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.longest = 0.0
        self.slow = 0
        self._began = 0.0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        if os.environ.get("VIGIL_GC_TYPES"):
            # Diagnosis: keep what each collection finds, to name its types below.
            gc.set_debug(gc.DEBUG_SAVEALL)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.monotonic()
            return
        took = time.monotonic() - self._began
        self.longest = max(self.longest, took)
        if gc.garbage:
            kinds = Counter(type(o).__qualname__ for o in gc.garbage).most_common(8)
            gc.garbage.clear()
            log.warning("garbage collection found: %s", kinds)
        if took > self.threshold:
            self.slow += 1
            log.warning(
                "garbage collection of generation %d held every thread for %.3f s "
                "(%d objects collected)",
                info.get("generation", -1),
                took,
                info.get("collected", 0),
            )
