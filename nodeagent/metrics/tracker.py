"""Counts what this agent sees change in its copy of the store (placements, the leader
record) and times failovers it completes. Every agent sees every change, so any agent's
counters answer "how often did groups move", not only the leader's.

Failover duration is measured on one clock, the node that recovers the group: from the
moment its liveness copy first says the old node is lost to the moment the group's last
resource started here, for a placement that names the lost node (`recoveredFrom`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.store import keys
from controller.store.base import KeyValue
from controller.store.informer import Informer
from controller.store.records import PlacementRecord
from nodeagent.liveness_link import LivenessLink
from nodeagent.metrics.instruments import (
    FAILOVER_DURATION,
    LEADER_CHANGES,
    PLACEMENT_CHANGES,
    forget_group,
)


class ChangeTracker:
    def __init__(
        self,
        node: str,
        informer: Informer,
        link: LivenessLink,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.informer = informer
        self.link = link
        self.clock = clock
        self.lost_at: dict[str, float] = {}
        """Peers lost, by when this agent first read that verdict."""
        self._placed: dict[str, str | None] = {}
        self._leader: tuple[str, int] | None = None
        self._timed: dict[str, int] = {}  # per group, the epoch of the last failover timed
        self._listing: list[KeyValue] | None = None  # the placements last looked at

    def start(self) -> None:
        self.link.add_listener(self.peers_changed)
        self.peers_changed()

    def stop(self) -> None:
        self.link.remove_listener(self.peers_changed)

    def peers_changed(self) -> None:
        """On every membership change (a listener of the liveness link: no delay)."""
        now = self.clock()
        for peer, state in self.link.state.peers.items():
            if state.lost:
                self.lost_at.setdefault(peer, now)
            else:
                self.lost_at.pop(peer, None)

    async def run(self) -> None:
        changed = self.informer.subscribe()
        while True:
            self.store_changed()
            await changed.wait()
            changed.clear()

    def store_changed(self) -> None:
        """After the informer's copy changed. The informer keeps its listing of a prefix
        until a key under it changes: while the placements are the same list, nothing is
        read (group statuses change far more often, and a cluster may have thousands)."""
        listing = self.informer.under(keys.PLACEMENT)
        if listing is not self._listing:
            self._listing = listing
            self._placements_changed()
        leader = self.informer.leader()
        now = (leader.node, leader.lease) if leader is not None else None
        if now is not None and now != self._leader:
            if self._leader is not None:
                LEADER_CHANGES.inc()
            self._leader = now

    def _placements_changed(self) -> None:
        placements = self.informer.placements()
        for group, record in placements.items():
            if group not in self._placed:
                # The series from the first sight, at 0: increase() over a window needs a
                # sample before the first change to count it.
                PLACEMENT_CHANGES.labels(group)
            elif self._placed[group] != record.node:
                PLACEMENT_CHANGES.labels(group).inc()
            self._placed[group] = record.node
        for group in [g for g in self._placed if g not in placements]:
            # Deleted: its series go too, or every group ever made would stay exported.
            del self._placed[group]
            forget_group(group)

    def group_started(self, group: str) -> None:
        """The group's last resource started on this node (the reconciler's hook)."""
        record: PlacementRecord | None = self.informer.placements().get(group)
        if record is None or record.node != self.node or not record.recovered_from:
            return
        lost = self.lost_at.get(record.recovered_from)
        if lost is None or self._timed.get(group) == record.epoch:
            return
        self._timed[group] = record.epoch
        FAILOVER_DURATION.observe(self.clock() - lost)
