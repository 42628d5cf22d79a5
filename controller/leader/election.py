"""Choosing the one controller that writes placements: an etcd key on a lease.

Only a node that holds its serving lease campaigns, so a node cut off from the majority
never leads. A leader that loses its etcd lease or its serving lease stops leading at
once, and so does one whose node must be fenced (a stop failed there, fencing is on): the
controller does not fence its own node, so it leaves the lead to one that can
(`fencing_plan.must_not_lead`), and does not campaign while that holds. When the
heartbeat view declares the current leader lost, any node revokes the leader's etcd lease
instead of waiting for it to expire (an expiry that etcd sees late and postpones across
its own leader changes), so a new leader adds little to a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from controller.api.cluster import Cluster
from controller.api.group import ResourceGroup, ResourceGroupStatus
from controller.api.liveness import LivenessSource
from controller.leader.fencing_plan import must_not_lead
from controller.store import keys
from controller.store.base import Lease, Put, Store
from controller.store.errors import ConflictError, StoreError
from controller.store.informer import Informer, wait_any
from controller.store.lease_keeper import LeaseKeeper
from controller.store.objects import ObjectStore, make_event
from controller.store.records import LeaderRecord

log = logging.getLogger(__name__)

LEADER_TTL = 2  # seconds; etcd refuses less than 1.5 x its election timeout
# Seconds; a healthy etcd answers in milliseconds, and revoking is idempotent: the first
# attempt after the etcd leader died is dropped, so the next one should come early.
REVOKE_ATTEMPT = 0.15
REVOKE_PAUSE = 0.02
# Seconds for one request of a campaign. Campaigns follow failures, often etcd's own: a
# request sent to an etcd leader that just died would wait out the store's whole timeout.
CAMPAIGN_ATTEMPT = 0.5
# Seconds for the LeaderElected event: it is written beside the new term, not before it.
RECORD_TIMEOUT = 2.0

Lead = Callable[[], Coroutine[Any, Any, None]]


class Election:
    def __init__(
        self, store: Store, informer: Informer, node: str, liveness: LivenessSource
    ) -> None:
        self.store = store
        self.informer = informer
        self.node = node
        self.liveness = liveness
        self.leading = False
        self._store_changed = informer.subscribe()
        self._objects = ObjectStore(store)
        self.previous: str | None = None  # the last leader this node saw, for LeaderElected
        self._recording: asyncio.Task[None] | None = None

    def current_leader(self) -> str | None:
        record = self.informer.leader()
        return record.node if record else None

    async def _unseat_lost_leader(self) -> None:
        kv = self.informer.get(keys.LEADER)
        if kv is None:
            return
        holder = LeaderRecord.from_dict(kv.value)
        seen = self.liveness.liveness().get(holder.node)
        if holder.node == self.node or seen is None or not seen.lost:
            return
        log.warning("leader %s is lost by the heartbeat view: revoking its lease", holder.node)
        # Short attempts, repeated: when the lost node also led etcd, a request sent around
        # its death can be dropped, and etcd answers only after its own ~5 s timeout.
        deadline = time.monotonic() + LEADER_TTL
        while time.monotonic() < deadline:
            try:
                await self.store.revoke_lease(holder.lease, REVOKE_ATTEMPT)
                return
            except StoreError as exc:
                log.info("revoking the lost leader's lease: %s; trying again", exc)
                await asyncio.sleep(REVOKE_PAUSE)  # a refusal comes at once: do not spin
            current = self.informer.get(keys.LEADER)
            if current is None or current.mod_revision != kv.mod_revision:
                return

    def _unfit(self) -> str | None:
        # Not informer.view(): this runs on every store change and every half second.
        clusters = self.informer.objects(Cluster.KIND).values()
        cluster = next((c for c in clusters if isinstance(c, Cluster)), None)
        statuses = self.informer.statuses
        return must_not_lead(
            cluster, lambda: statuses(ResourceGroup.KIND, ResourceGroupStatus), self.node
        )

    async def run(self, lead: Lead) -> None:
        changed = [self._store_changed, self.liveness.subscribe()]
        said = None
        while True:
            if not self.liveness.serving() or not self.informer.connected:
                await wait_any(changed, 1.0)
                continue
            unfit = self._unfit()
            if unfit is not None:
                if unfit != said:
                    log.warning("not campaigning: %s", unfit)
                said = unfit
                await wait_any(changed, 1.0)
                continue
            said = None
            if (holder := self.informer.get(keys.LEADER)) is not None:
                self.previous = LeaderRecord.from_dict(holder.value).node
                await self._unseat_lost_leader()
                await wait_any(changed, 1.0)
                continue
            try:
                await self._term(lead)
            except StoreError as exc:
                log.warning("leader election: %s", exc)
                await asyncio.sleep(0.2)

    async def _claim(self) -> tuple[Lease, int] | None:
        """A lease of ours that holds the leader key and the revision that wrote it, or
        None when another node holds it."""
        lease = await self.store.grant_lease(LEADER_TTL, CAMPAIGN_ATTEMPT)
        record = LeaderRecord(self.node, lease.id, os.getpid(), datetime.now(UTC).isoformat())
        claim = Put(keys.LEADER, record.to_dict(), expect_revision=0, lease=lease.id)
        deadline = time.monotonic() + LEADER_TTL / 2
        unanswered = False
        while time.monotonic() < deadline:
            try:
                return lease, await self.store.commit([claim], CAMPAIGN_ATTEMPT)
            except ConflictError:
                # A claim whose answer was lost may have been applied: then the key that
                # conflicts is our own, and waiting for it to expire would stall a failover.
                if unanswered and (revision := await self._holds(lease.id)) is not None:
                    return lease, revision
                break
            except StoreError as exc:
                unanswered = True
                log.info("claiming the controller lead: %s; trying again", exc)
                await asyncio.sleep(REVOKE_PAUSE)
        with contextlib.suppress(StoreError):
            await self.store.revoke_lease(lease.id, CAMPAIGN_ATTEMPT)  # else it expires
        return None

    async def _holds(self, lease_id: int) -> int | None:
        """The revision of the leader key if, once the watch has delivered it, it is on
        ``lease_id``; None otherwise."""
        deadline = time.monotonic() + CAMPAIGN_ATTEMPT
        while (kv := self.informer.get(keys.LEADER)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await wait_any([self._store_changed], remaining)
        return kv.mod_revision if LeaderRecord.from_dict(kv.value).lease == lease_id else None

    async def _record_elected(self, lease: Lease, term: int, previous: str | None) -> None:
        """LeaderElected, right after the claim rather than in its transaction: the claim
        is on the failover's path and retries a lost answer, and the event's own lease
        grant would add a round trip to it."""
        clusters = self.informer.objects(Cluster.KIND).values()
        cluster = next((c for c in clusters if isinstance(c, Cluster)), None)
        if cluster is None:
            return  # no Cluster spec, no object to record it on (tests of the loop alone)
        event = make_event(
            Cluster.KIND,
            cluster.name,
            "LeaderElected",
            elected_message(self.node, previous, term, lease.id),
            component="controller",
            node=self.node,
        )
        try:
            await self._objects.commit_with_events([], [event], RECORD_TIMEOUT)
        except StoreError as exc:
            log.warning("cannot record LeaderElected: %s", exc)

    async def _term(self, lead: Lead) -> None:
        claimed = await self._claim()
        if claimed is None:
            return
        lease, term = claimed
        keeper = LeaseKeeper(lease, LEADER_TTL / 4)
        keeper.start()
        log.info("%s leads the controller (term %d)", self.node, term)
        self._recording = asyncio.create_task(self._record_elected(lease, term, self.previous))
        self.previous = self.node
        self.leading = True
        task = asyncio.create_task(lead(), name="controller")
        watch = self.liveness.subscribe()
        unfit = None
        try:
            while not task.done() and not keeper.lost.is_set() and self.liveness.serving():
                await wait_any([watch, keeper.lost, self._store_changed], 0.5)
                if (unfit := self._unfit()) is not None:
                    log.warning("stepping down: %s", unfit)
                    break
        finally:
            self.leading = False
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await task
            with contextlib.suppress(StoreError):
                await keeper.stop(revoke=True)
            why = keeper.lost_reason or unfit or "stepped down"
            log.info("%s stopped leading (%s)", self.node, why)


def elected_message(node: str, previous: str | None, term: int, lease: int) -> str:
    """LeaderElected's message; `term` is the revision that wrote the leader key, which
    only grows, so two elections compare."""
    if previous is None:
        before = "no previous leader seen by this node"
    elif previous == node:
        before = "it led before"
    else:
        before = f"previous leader {previous}"
    return f"{node} leads the controller: term {term}, lease {lease:x}; {before}"
