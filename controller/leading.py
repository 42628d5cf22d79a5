"""The leader's loop: turn the cluster's state into placement writes, level-triggered.

Woken by any store change or liveness change, and every RESYNC seconds regardless. Each
turn reads the informer's copy (no round trip), decides (controller/decide.py, pure) and
writes each placement with a compare-and-swap on the revision it read.
"""

from __future__ import annotations

import asyncio
import logging
import time

from controller.aio import wait_any
from controller.api.cluster import Cluster
from controller.api.group import ResourceGroup, ResourceGroupStatus
from controller.api.node import Node
from controller.decide import Outcome, Snapshot, decide
from controller.informer import Informer
from controller.liveness import LivenessSource
from controller.objectstore import ObjectStore, make_event
from controller.placement import PlacementRecord
from controller.store import keys
from controller.store.base import Op, Put, Store
from controller.store.errors import ConflictError, StoreError

log = logging.getLogger(__name__)

RESYNC = 2.0
# A placement write is on the failover's critical path. When the node that died also led
# etcd, a write sent around its death can be dropped and etcd answers only after its own
# ~5 s timeout: give up sooner and decide again (the write has a compare-and-swap, so one
# that was applied after all makes the next attempt conflict, never apply twice).
WRITE_ATTEMPT = 0.5
RETRY = 0.1


def snapshot_from(informer: Informer, liveness: LivenessSource, now: float) -> Snapshot:
    clusters = informer.objects("Cluster")
    groups = {
        n: g for n, g in informer.objects("ResourceGroup").items() if isinstance(g, ResourceGroup)
    }
    nodes = {n: o for n, o in informer.objects("Node").items() if isinstance(o, Node)}
    cluster = next((c for c in clusters.values() if isinstance(c, Cluster)), None)
    return Snapshot(
        cluster=cluster,
        groups=groups,
        nodes=nodes,
        liveness=liveness.liveness(),
        placements=informer.placements(),
        statuses=informer.statuses("ResourceGroup", ResourceGroupStatus),
        failures=informer.failures(),
        now=now,
    )


class Leader:
    def __init__(
        self, store: Store, informer: Informer, node: str, liveness: LivenessSource
    ) -> None:
        self.store = store
        self.informer = informer
        self.node = node
        self.liveness = liveness
        self.objects = ObjectStore(store)
        self._last_notes: list[str] = []
        self._node_phases: dict[str, str] = {}

    async def run(self) -> None:
        wakes = [self.informer.subscribe(), self.liveness.subscribe()]
        retry = RETRY
        while True:
            try:
                await self.turn()
            except ConflictError as exc:
                log.info("placement changed under the controller, deciding again: %s", exc)
                continue
            except StoreError as exc:
                log.warning("controller: store: %s; deciding again in %.1f s", exc, retry)
                await asyncio.sleep(retry)
                retry = min(2 * retry, RESYNC)
                continue
            retry = RETRY
            await wait_any(wakes, RESYNC)

    async def turn(self) -> Outcome:
        snapshot = snapshot_from(self.informer, self.liveness, time.time())
        outcome = decide(snapshot, self.node)
        for record in outcome.writes:
            await self._write(record)
        for group in outcome.deletes:
            kv = self.informer.get(keys.placement_key(group))
            await self.store.delete(
                keys.placement_key(group), expect_revision=kv.mod_revision if kv else None
            )
        await self._publish_node_phases(snapshot)
        if outcome.notes != self._last_notes:
            for note in outcome.notes:
                log.info("controller: %s", note)
            self._last_notes = outcome.notes
        return outcome

    async def _publish_node_phases(self, snapshot: Snapshot) -> None:
        """Node status as the leader's heartbeat view sees each member, for `ha status`."""
        if snapshot.cluster is None:
            return
        for member in snapshot.cluster.spec.nodes:
            seen = snapshot.liveness.get(member.name)
            if seen is None or seen.state == "unknown":
                phase = "Unknown"
            elif seen.lost:
                phase = "Lost"
            else:
                phase = "Ready" if seen.alive else "NotReady"
            if self._node_phases.get(member.name) == phase:
                continue
            key = keys.status_key("Node", member.name)
            current = self.informer.get(key)
            data = dict(current.value) if current else {}
            data["phase"] = phase
            await self.store.put(key, data, expect_revision=current.mod_revision if current else 0)
            self._node_phases[member.name] = phase

    async def _write(self, record: PlacementRecord) -> None:
        key = keys.placement_key(record.group)
        kv = self.informer.get(key)
        where = record.node or "nowhere"
        event = make_event(
            "ResourceGroup",
            record.group,
            "Placed" if record.node else "Stopping",
            f"epoch {record.epoch}: {where}: {record.reason}",
            component="controller",
        )
        ops: list[Op] = [Put(key, record.to_dict(), expect_revision=kv.mod_revision if kv else 0)]
        ops += await self.objects.event_puts([event])
        await self.store.commit(ops, timeout=WRITE_ATTEMPT)
        log.info(
            "placement %s -> %s (epoch %d): %s", record.group, where, record.epoch, record.reason
        )
