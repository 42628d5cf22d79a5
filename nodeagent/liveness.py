"""The controller's view of membership, from this node's heartbeat service.

It also carries the serving lease across an agent restart. CLOCK_MONOTONIC is the
machine's, not the process's: a restarted agent reads the expiry its previous
incarnation last held (from a file on tmpfs) and keeps serving until then, so a quick
restart neither stops its resources (the group does not move) nor runs them past the
lease the rest of the cluster counts on (docs/safety.md, "Agent restarts").

The heartbeat service and the lease recorder run on the liveness thread
(nodeagent/liveness_thread.py); this class is the control plane's side of it: it reads
the membership under the service's lock and relays changes to its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from controller.api.liveness import Liveness
from nodeagent.fastpath import LeaseRecorder, read_recorded_lease
from nodeagent.heartbeat.membership import Membership
from nodeagent.heartbeat.service import ChangeEvent, HeartbeatService
from nodeagent.liveness_thread import LivenessThread

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
        self,
        service: HeartbeatService,
        lease_file: Path,
        thread: LivenessThread,
        recorder: LeaseRecorder | None = None,
    ) -> None:
        self.service = service
        self.thread = thread
        self.lease_file = lease_file
        now = time.monotonic()
        self.inherited = read_inherited_lease(lease_file, now)
        self.recorder = recorder or LeaseRecorder(service, lease_file)
        self._listeners: list[asyncio.Event] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        if self.inherited > now:
            log.info(
                "inherited a serving lease of %.3f s from the previous agent",
                self.inherited - now,
            )

    @property
    def node(self) -> str:
        return self.service.config.node

    def serving(self) -> bool:
        serving, margin = self.service.read(lambda m, now: (m.serving(now), m.timing.stop_margin))
        if serving:
            # Whoever acts on this answer may start a resource: the lease enforcer must
            # know of this lease first, or it would stop what was just started.
            self.persist()
            return True
        return time.monotonic() < self.inherited - margin

    def liveness(self) -> dict[str, Liveness]:
        return self.service.read(_liveness_view)

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    def _fire(self) -> None:
        for event in self._listeners:
            event.set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.service.add_listener(self._relay)
        await self.thread.call(self.recorder.start)
        end = self.inherited - self.service.read(lambda m, _now: m.timing.stop_margin)
        if end > time.monotonic():
            # When the inherited lease ends, serving() may turn false with no packet to
            # say so: wake the listeners then.
            self._loop.call_later(end - time.monotonic() + 0.001, self._fire)

    async def stop(self) -> None:
        self.service.remove_listener(self._relay)
        await self.thread.run(self.recorder.stop())

    def _relay(self, _event: ChangeEvent) -> None:
        """On the liveness thread: wake this side's listeners on its own loop."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                self._loop.call_soon_threadsafe(self._fire)

    def persist(self) -> None:
        self.recorder.persist()


def _liveness_view(m: Membership, now: float) -> dict[str, Liveness]:
    view = {
        peer: Liveness(status.state, m.lost(peer, now), _hex(status.incarnation))
        for peer, status in m.peer_status(now).items()
    }
    view[m.self_name] = Liveness("up", False, _hex(m.incarnation))
    return view
