"""Two-node mode: the survivor fences its peer, then carries the store on alone.

With two servers the store (etcd) has no majority once either is gone, so the controller's
leader, which fences through the store, cannot act. Heartbeat and Pacemaker answer with
STONITH from the survivor itself, and so does this: when this node's own heartbeat view
loses the peer, it powers the peer off through the peer's FenceDevices (read from the copy
of the specs kept on disk), and only once that is verified restarts its etcd member as a
one-member cluster (`--force-new-cluster`, its data kept) and records the fence in the
store. From then on the leader, elected in that one-member store, recovers the peer's
groups as for any fenced node.

A cut cable makes both nodes survivors. The FenceDevice that targets the preferred node
carries a `delay`: the preferred node shoots at once, the other waits, and is powered off
before its wait ends. Exactly one survives; the groups of the other start only after it
is off. A node that boots alone (its peer never heard within initdead) fences the peer the
same way before it starts anything (Heartbeat's initdead, DRBD's wfc-timeout): the peer
may be running everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from controller.api.cluster import Cluster
from controller.api.fencing import FenceAction, FenceDevice
from controller.api.liveness import LivenessSource
from controller.leader.fencer import Result
from controller.leader.fencing_plan import device_levels, retry_delay
from controller.store import keys
from controller.store.base import Put, Store
from controller.store.errors import ConflictError, StoreError
from controller.store.fence_record import FenceRecord
from controller.store.informer import Informer, wait_any
from controller.store.objects import ObjectStore, make_event

log = logging.getLogger(__name__)

FenceLevels = Callable[[list[list[FenceDevice]], str, FenceAction], Awaitable[Result]]
RECORD_ATTEMPT = 2.0


def two_node_peer(cluster: Cluster | None, node: str) -> str | None:
    """The other server, when the cluster runs in two-node mode."""
    if cluster is None or cluster.spec.quorum.mode != "two-node":
        return None
    others = [m.name for m in cluster.spec.nodes if m.name != node and m.role == "server"]
    return others[0] if len(others) == 1 else None


class TwoNodeSurvivor:
    """Fences the lost peer of a two-node cluster, then keeps the store going alone."""

    def __init__(
        self,
        node: str,
        store: Store,
        informer: Informer,
        liveness: LivenessSource,
        fence: FenceLevels,
        force_new_cluster: Callable[[], Awaitable[None]],
    ) -> None:
        self.node = node
        self.store = store
        self.informer = informer
        self.liveness = liveness
        self.fence = fence
        self.force_new_cluster = force_new_cluster
        self.objects = ObjectStore(store)
        # The peer incarnation this node fenced last, in a tuple: a peer never heard since
        # this agent started has incarnation None, and that one must be fenced too.
        self.fenced: tuple[str | None] | None = None
        self.attempts = 0
        self._retry_at = 0.0

    async def run(self) -> None:
        changed = self.liveness.subscribe()
        while True:
            await self.tend()
            await wait_any([changed], 1.0)

    async def tend(self) -> None:
        view = self.informer.view()
        peer = two_node_peer(view.cluster, self.node)
        if peer is None or view.cluster is None:
            return
        seen = self.liveness.liveness().get(peer)
        if seen is None or not seen.lost:
            self.attempts = 0
            return
        record = view.fencing.get(peer)
        if self.fenced == (seen.incarnation,) or (
            record is not None and record.covers(seen.incarnation)
        ):
            return
        if time.monotonic() < self._retry_at:
            return
        self.attempts += 1
        levels = device_levels(view.fences, peer)
        action = view.cluster.spec.fencing.action
        log.warning(
            "two-node: %s is lost; fencing it (%s, attempt %d) before taking over",
            peer,
            action,
            self.attempts,
        )
        began = time.monotonic()
        result = await self.fence(levels, peer, action)
        took = time.monotonic() - began
        if not result.ok:
            pause = retry_delay(self.attempts)
            self._retry_at = time.monotonic() + pause
            log.error(
                "two-node: fencing %s failed after %.2f s: %s; its groups stay where they "
                "were; next attempt in %g s. Repair the device, or power %s off yourself and "
                "run `ha fence --confirm %s`",
                peer, took, result.message, pause, peer, peer,
            )  # fmt: skip
            return
        log.warning("two-node: %s fenced in %.2f s (%s)", peer, took, result.message)
        self.fenced = (seen.incarnation,)
        await self.force_new_cluster()
        log.warning("two-node: the store now runs on %s alone", self.node)
        await self._record(
            FenceRecord(
                peer,
                "fenced",
                incarnation=seen.incarnation,
                reason=f"lost: two-node mode, {self.node} survives",
                requested_by=f"two-node survivor {self.node}",
                requested_at=time.time() - took,
                attempts=self.attempts,
                leader=self.node,
                message=result.message,
                fenced_at=time.time(),
                fenced_by=result.fenced_by,
                outcomes=result.outcomes,
            )
        )
        self.attempts = 0

    async def _record(self, record: FenceRecord) -> None:
        """Written with a compare-and-swap on the current record, until the store takes
        it: the leader recovers the peer's groups only once it reads it."""
        key = keys.fencing_key(record.node)
        events = [
            make_event(
                "Node",
                record.node,
                "FenceVerified",
                f"{record.node} is powered off ({record.message}); {self.node} carries on "
                "alone (two-node mode) and the store with it",
                component="agent",
                node=self.node,
            )
        ]
        while True:
            try:
                current = await self.store.get(key)
                expect = current.mod_revision if current else 0
                await self.objects.commit_with_events(
                    [Put(key, record.to_dict(), expect_revision=expect)],
                    events,
                    timeout=RECORD_ATTEMPT,
                )
                return
            except ConflictError:
                continue
            except StoreError as exc:
                log.warning("two-node: recording the fence of %s: %s; retrying", record.node, exc)
                await asyncio.sleep(0.2)
