"""The liveness path on its own thread: a control loop blocked for many deadtimes costs no
heartbeat, no peer verdict and no serving lease; a control loop stuck for good ends the
agent (the watchdog); changes still reach the control plane's loop."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from nodeagent.heartbeat.service import ChangeEvent, HeartbeatService
from nodeagent.liveness import HeartbeatLiveness
from nodeagent.liveness_thread import LivenessThread
from nodeagent.loopwatch import LoopWatch

from .test_service_loopback import TIMING, services

pytestmark = pytest.mark.slow


class Recorder:
    """Every change a service announced, from its own thread."""

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: ChangeEvent) -> None:
        with self._lock:
            self.events.append(event)

    def bad(self) -> list[ChangeEvent]:
        with self._lock:
            return [
                e
                for e in self.events
                if (e.kind == "serving" and e.new == "false")
                or (e.kind == "peer" and e.new in ("warn", "dead"))
                or (e.kind == "lost" and e.new == "true")
                or (e.kind == "incarnation" and e.old)
            ]


async def start_three() -> tuple[list[LivenessThread], list[HeartbeatService], Recorder]:
    threads = [LivenessThread(TIMING.keepalive) for _ in range(3)]
    svcs = services()
    seen = Recorder()
    for thread, svc in zip(threads, svcs, strict=True):
        thread.start()
        svc.add_listener(seen)
        await thread.run(svc.start())
    return threads, svcs, seen


async def stop_all(threads: list[LivenessThread], svcs: list[HeartbeatService]) -> None:
    for thread, svc in zip(threads, svcs, strict=True):
        await thread.run(svc.stop())
        thread.stop()


async def test_a_blocked_control_loop_costs_no_heartbeat_and_no_lease(tmp_path: Path) -> None:
    threads, svcs, seen = await start_three()
    try:
        liveness = HeartbeatLiveness(svcs[0], tmp_path / "lease.json", threads[0])
        await liveness.start()
        woken = liveness.subscribe()
        deadline = time.monotonic() + 2.0
        while not liveness.serving():
            assert time.monotonic() < deadline, "the three services never formed a majority"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert seen.bad() == []
        # The control plane's loop (this test's) blocked for eight deadtimes, as a big
        # reconcile turn held the single loop before the liveness path had its own.
        time.sleep(8 * TIMING.deadtime)  # noqa: ASYNC251 - the blocked loop under test
        assert liveness.serving()
        assert seen.bad() == [], f"the blocked control loop cost the liveness path: {seen.bad()}"
        assert all(v.state == "up" and not v.lost for v in liveness.liveness().values())
        for thread in threads:
            assert thread.watch is not None and thread.watch.stalls == 0
        # Changes still reach this loop: a peer that stops is seen going dead here.
        woken.clear()
        await threads[2].run(svcs[2].stop())
        await asyncio.wait_for(woken.wait(), 2.0)
        deadline = time.monotonic() + 2.0
        while liveness.liveness()["c"].state != "dead":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await liveness.stop()
    finally:
        await stop_all(threads, svcs)


async def test_the_watchdog_ends_an_agent_whose_control_loop_is_stuck() -> None:
    stuck = threading.Event()
    thread = LivenessThread(TIMING.keepalive, control_deadline=0.6, on_stuck=stuck.set)
    thread.start()
    try:
        watch = LoopWatch(1.0, "control-plane event loop", on_tick=thread.beat)
        watch.start()
        await asyncio.sleep(1.5)  # ticking: not stuck
        assert not stuck.is_set()
        await watch.stop()
        # The control loop stops ticking (here: its watch ends; in an agent: a loop that
        # never yields again): the watchdog fires within its deadline and a tick.
        await asyncio.sleep(1.5)
        assert stuck.is_set()
    finally:
        thread.stop()
