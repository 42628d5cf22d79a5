"""The controller's view of membership, from this node's heartbeat service.

It also carries the serving lease across an agent restart. CLOCK_MONOTONIC is the
machine's, not the process's: a restarted agent reads the expiry its previous
incarnation last held (from a file on tmpfs) and keeps serving until then, so a quick
restart neither stops its resources (the group does not move) nor runs them past the
lease the rest of the cluster counts on (docs/safety.md, "Agent restarts").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from controller.api.liveness import Liveness
from nodeagent.fastpath import LeaseRecorder, read_recorded_lease
from nodeagent.heartbeat.service import HeartbeatService

log = logging.getLogger(__name__)


def read_inherited_lease(path: Path, now: float) -> float:
    expiry = read_recorded_lease(path)
    # A file from before a reboot would hold a time of another clock epoch: a reboot
    # empties /run, and an expiry far beyond any lease is refused as well.
    return expiry if expiry - now < 3600 else float("-inf")


def _hex(incarnation: int | None) -> str | None:
    return None if incarnation is None else f"{incarnation:016x}"


class HeartbeatLiveness:
    """Implements controller.api.liveness.LivenessSource."""

    def __init__(
        self, service: HeartbeatService, lease_file: Path, recorder: LeaseRecorder | None = None
    ) -> None:
        self.service = service
        self.lease_file = lease_file
        now = time.monotonic()
        self.inherited = read_inherited_lease(lease_file, now)
        self.recorder = recorder or LeaseRecorder(service, lease_file)
        self._listeners: list[asyncio.Event] = []
        self._tasks: list[asyncio.Task[None]] = []
        if self.inherited > now:
            log.info(
                "inherited a serving lease of %.3f s from the previous agent",
                self.inherited - now,
            )

    @property
    def node(self) -> str:
        return self.service.membership.self_name

    def serving(self) -> bool:
        now = time.monotonic()
        m = self.service.membership
        if m.serving(now):
            # Whoever acts on this answer may start a resource: the lease enforcer must
            # know of this lease first, or it would stop what was just started.
            self.persist()
            return True
        return now < self.inherited - m.timing.stop_margin

    def liveness(self) -> dict[str, Liveness]:
        now = time.monotonic()
        m = self.service.membership
        view = {
            peer: Liveness(status.state, m.lost(peer, now), _hex(status.incarnation))
            for peer, status in m.peer_status(now).items()
        }
        view[self.node] = Liveness("up", False, _hex(m.incarnation))
        return view

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    def _fire(self) -> None:
        for event in self._listeners:
            event.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._relay(), name="liveness-relay"),
        ]
        self.recorder.start()
        m = self.service.membership
        end = self.inherited - m.timing.stop_margin
        if end > time.monotonic():
            # When the inherited lease ends, serving() may turn false with no packet to
            # say so: wake the listeners then.
            loop = asyncio.get_running_loop()
            loop.call_later(end - time.monotonic() + 0.001, self._fire)

    async def stop(self) -> None:
        await self.recorder.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _relay(self) -> None:
        async for _event in self.service.watch():
            self._fire()

    def persist(self) -> None:
        self.recorder.persist()
