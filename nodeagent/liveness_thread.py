"""The liveness path's own thread: heartbeats, acknowledgements and the serving lease run
on an event loop that no control-plane work shares.

With one loop for everything, a big apply (hundreds of groups to observe, decide and
report) held the loop for up to 0.8 s: heartbeats stopped, every node lost its serving
lease, and the safety mechanism stopped every service. Here the heartbeat service, the
lease recorder and a loop watch of their own run in a thread at real-time priority
(SCHED_RR, as corosync), while the control plane runs at nice -10. The two share the
interpreter, but a busy control plane hands the GIL over at least every switch interval
(5 ms): the liveness loop waits milliseconds, never the length of a reconcile turn.

The control plane talks to it through HeartbeatService.read() and add_listener(), and
starts or stops things on it with `run()`.

A control plane stuck for good would keep heartbeating while nothing tends its
resources. The watchdog here ends the process when the control loop has not ticked for
CONTROL_DEADLINE: systemd restarts the agent, and the lease enforcer stops the resources
at the lease's end unless the new agent is heard in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from nodeagent.loopwatch import LoopWatch
from nodeagent.realtime import make_realtime

log = logging.getLogger(__name__)
T = TypeVar("T")

CONTROL_DEADLINE = 30.0
WATCHDOG_TICK = 0.5
EXIT_CONTROL_STUCK = 70  # EX_SOFTWARE


class ControlWatchdog:
    """Whether the control loop is stuck: not ticked for `deadline`, while this thread
    ran. Armed by the first tick. If this thread was frozen as well (SIGSTOP, a suspended
    machine), the control loop gets a fresh allowance: both were stopped, neither is stuck."""

    def __init__(self, deadline: float, tick: float = WATCHDOG_TICK) -> None:
        self.deadline = deadline
        self.tick = tick
        self.last_beat: float | None = None
        self.last_check: float | None = None

    def beat(self, now: float) -> None:
        self.last_beat = now

    def stuck(self, now: float) -> bool:
        frozen = self.last_check is not None and now - self.last_check > self.tick + 1.0
        self.last_check = now
        if self.last_beat is None:
            return False
        if frozen:
            self.last_beat = now
            return False
        return now - self.last_beat > self.deadline


class LivenessThread:
    def __init__(
        self,
        keepalive: float,
        *,
        control_deadline: float = CONTROL_DEADLINE,
        on_stuck: Callable[[], None] | None = None,
    ) -> None:
        self.keepalive = keepalive
        self.watchdog = ControlWatchdog(control_deadline)
        self.on_stuck = on_stuck or (lambda: _exit_stuck(control_deadline))
        self.scheduling = ""
        self.watch: LoopWatch | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "start() the liveness thread first"
        return self._loop

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="liveness", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        self.scheduling = make_realtime()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        # Stalls longer than a keepalive delay heartbeats.
        self.watch = LoopWatch(self.keepalive, "liveness loop")
        loop.call_soon(self.watch.start)
        watchdog = loop.create_task(self._watchdog(), name="control-watchdog")
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            watchdog.cancel()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog.tick)
            if self.watchdog.stuck(time.monotonic()):
                self.on_stuck()
                return

    def beat(self) -> None:
        """The control loop is alive (its LoopWatch calls this every tick)."""
        self.watchdog.beat(time.monotonic())

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the liveness loop and wait for its result from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def call(self, fn: Callable[[], T]) -> T:
        """Call `fn` on the liveness loop (what creates tasks there must run there)."""

        async def call_it() -> T:
            return fn()

        return await self.run(call_it())

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._thread = None


def _exit_stuck(deadline: float) -> None:
    log.critical(
        "the control plane's event loop has not run for %.0f s: exiting so that the agent is "
        "restarted (heartbeats stop; resources stop at the lease's end unless the new agent "
        "is heard in time)",
        deadline,
    )
    logging.shutdown()
    os._exit(EXIT_CONTROL_STUCK)
