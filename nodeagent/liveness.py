"""The controller's view of membership, from this node's liveness process.

It also carries the serving lease across an agent restart. CLOCK_MONOTONIC is the
machine's, not the process's: a restarted agent reads the expiry its previous
incarnation last held (from a file on tmpfs) and keeps serving until then, so a quick
restart neither stops its resources (the group does not move) nor runs them past the
lease the rest of the cluster counts on (docs/safety.md, "Agent restarts").

The heartbeats and the lease recorder run in the liveness process
(nodeagent/liveness_process.py); this class reads the copy of the membership it
publishes (nodeagent/liveness_link.py) and wakes the control plane's listeners.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from controller.api.liveness import Liveness
from nodeagent.fastpath import read_recorded_lease
from nodeagent.liveness_link import LivenessLink, MembershipState

log = logging.getLogger(__name__)


def read_inherited_lease(path: Path, now: float) -> float:
    expiry = read_recorded_lease(path)
    # A file from before a reboot would hold a time of another clock epoch: a reboot
    # empties /run, and an expiry far beyond any lease is refused as well.
    return expiry if expiry - now < 3600 else float("-inf")


class HeartbeatLiveness:
    """Implements controller.api.liveness.LivenessSource."""

    def __init__(self, link: LivenessLink, lease_file: Path, node: str) -> None:
        self.link = link
        self.lease_file = lease_file
        self.node = node
        now = time.monotonic()
        self.inherited = read_inherited_lease(lease_file, now)
        self._listeners: list[asyncio.Event] = []
        if self.inherited > now:
            log.info(
                "inherited a serving lease of %.3f s from the previous agent",
                self.inherited - now,
            )

    def serving(self) -> bool:
        # The liveness process recorded this lease for the enforcer before telling it.
        state = self.link.read()
        now = time.monotonic()
        return state.serving(now) or now < self.inherited - self._margin(state)

    def _margin(self, state: MembershipState) -> float:
        if state.margin:
            return state.margin
        config = self.link.config
        return config.timing.stop_margin if config is not None else 0.0

    def liveness(self) -> dict[str, Liveness]:
        state = self.link.read()
        view = {peer: Liveness(p.state, p.lost, p.incarnation) for peer, p in state.peers.items()}
        view[self.node] = Liveness("up", False, state.incarnation)
        return view

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    def _fire(self) -> None:
        for event in self._listeners:
            event.set()

    def start(self) -> None:
        self.link.add_listener(self._fire)
        end = self.inherited - self._margin(self.link.read())
        if end > time.monotonic():
            # When the inherited lease ends, serving() may turn false with no message to
            # say so: wake the listeners then.
            asyncio.get_running_loop().call_later(end - time.monotonic() + 0.001, self._fire)

    def stop(self) -> None:
        self.link.remove_listener(self._fire)
