"""The leader's loop: turn the cluster's state into placement writes, level-triggered.

Woken by any store change or liveness change, and every RESYNC seconds regardless. Each
turn reads the informer's copy (no round trip), decides (controller/leader/decide.py, pure) and
writes each placement with a compare-and-swap on the revision it read.

A turn that wrote nothing is not repeated while nothing it decided from has changed: the
store's revision, the leader's heartbeat view, and the clock up to the next failure expiry
or move end (`next_deadline`); at most IDLE_RECHECK seconds apart all the same. With a
thousand groups, deciding them all again every RESYNC seconds was an idle leader's
largest cost.
"""

from __future__ import annotations

import asyncio
import logging
import time

from controller.api.liveness import Liveness, LivenessSource, node_phase
from controller.leader.decide import PlacementPlan, decide, next_deadline
from controller.leader.fencer import Fencer
from controller.leader.fencing_plan import next_retry
from controller.store import keys
from controller.store.base import Delete, Put, Store
from controller.store.errors import ConflictError, StoreError
from controller.store.informer import Informer, wait_any
from controller.store.objects import ObjectStore, make_event
from controller.store.records import PlacementRecord
from controller.store.view import ClusterView

log = logging.getLogger(__name__)

RESYNC = 2.0
IDLE_RECHECK = 30.0  # seconds: a turn that changed nothing runs again at least this often
# A turn that took longer than PACE_FROM is followed, on a store change alone, by a pause as
# long as it took (at most PACE_MAX): at most half the leader's time goes to deciding.
PACE_FROM = 0.05
PACE_MAX = 1.0
# A placement write is on the failover's critical path, and every other write of a turn
# delays the next turn. When the node that died also led etcd, a write sent around its
# death is dropped (forwarded to the dead leader) and etcd answers only after its own ~5 s
# timeout: give up after about one etcd election timeout (250 ms) and decide again (the
# write has a compare-and-swap, so one that was applied after all makes the next attempt
# conflict, never apply twice). A write refused while etcd elects is retried within the
# attempt (EtcdStore).
WRITE_ATTEMPT = 0.25
RETRY = 0.1
# Placements per transaction: a big apply places a thousand groups in a few round trips,
# not a thousand (one each took 60 s under load). The compare-and-swap of each is kept:
# one that fails fails its batch, and the turn decides again.
BATCH = 100
PER_WRITE = 0.005  # seconds more of attempt per placement in a batch


class Leader:
    def __init__(
        self,
        store: Store,
        informer: Informer,
        node: str,
        liveness: LivenessSource,
        fencer: Fencer | None = None,
    ) -> None:
        self.store = store
        self.fencer = fencer
        self.informer = informer
        self.node = node
        self.liveness = liveness
        self.objects = ObjectStore(store)
        self._last_notes: list[str] = []
        # After a turn that wrote nothing: (store revision, heartbeat view, when to decide
        # again regardless); None after any other turn.
        self._settled: tuple[int, object, float] | None = None
        self.turns = 0  # turns that decided (not skipped)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self.fencer is not None:
                await self.fencer.close()

    async def _run(self) -> None:
        store_changed = self.informer.subscribe()
        liveness_changed = self.liveness.subscribe()
        wakes = [store_changed, liveness_changed]
        retry = RETRY
        took = 0.0
        while True:
            began = time.monotonic()
            if self._unchanged():
                await self._wait(wakes, liveness_changed, took)
                continue
            try:
                await self.turn()
            except ConflictError as exc:
                # The store moved past this node's copy of it: wait until the copy catches up
                # (or a back-off passes) and decide again. Deciding again at once from the
                # same stale copy only meets the same conflict, hundreds of times a second.
                log.info("placement changed under the controller, deciding again: %s", exc)
                await wait_any([store_changed], retry)
                retry = min(2 * retry, RESYNC)
                continue
            except StoreError as exc:
                # An attempt that timed out has waited already: decide again at once (the
                # store elected a new leader meanwhile, or the next attempt waits again);
                # only quick failures back off, so a store that refuses is not hammered.
                pause = max(0.0, retry - (time.monotonic() - began))
                log.warning("controller: store: %s; deciding again in %.2f s", exc, pause)
                await asyncio.sleep(pause)
                if pause > 0:
                    retry = min(2 * retry, RESYNC)
                continue
            retry = RETRY
            took = time.monotonic() - began
            await self._wait(wakes, liveness_changed, took)

    async def _wait(
        self, wakes: list[asyncio.Event], liveness_changed: asyncio.Event, took: float
    ) -> None:
        """Until the next turn: a liveness change (a node lost: a failover) at once; a store
        change alone, after at least as long as the last turn took, if that was long. While
        a big apply lands (statuses, a hundred per write, from every node), deciding
        thousands of groups again on every write kept the leader's node busy."""
        await wait_any(wakes, RESYNC, clear=False)
        if took > PACE_FROM and not liveness_changed.is_set():
            await wait_any([liveness_changed], min(took, PACE_MAX), clear=False)
        for event in wakes:
            event.clear()

    def _inputs(self) -> object:
        return tuple(sorted(self.liveness.liveness().items()))

    def _unchanged(self) -> bool:
        """Whether the last turn wrote nothing and nothing it decided from changed since."""
        if self._settled is None:
            return False
        revision, seen, until = self._settled
        return (
            self.informer.connected
            and self.informer.revision == revision
            and time.time() < until
            and self._inputs() == seen
        )

    async def turn(self) -> PlacementPlan:
        self._settled = None
        self.turns += 1
        revision, inputs, now = self.informer.revision, self._inputs(), time.time()
        view = self.informer.view()
        seen = self.liveness.liveness()
        plan = decide(view, seen, now, self.node)
        for start in range(0, len(plan.writes), BATCH):
            await self._write(plan.writes[start : start + BATCH])
        for group in plan.deletes:
            kv = self.informer.get(keys.placement_key(group))
            expect = kv.mod_revision if kv else None
            await self.store.commit(
                [Delete(keys.placement_key(group), expect_revision=expect)], WRITE_ATTEMPT
            )
        wrote = await self._publish_node_phases(view, seen)
        if self.fencer is not None:
            wrote = await self.fencer.tend(seen) or wrote
        if not plan.writes and not plan.deletes and not wrote:
            ahead = [next_deadline(view, now), next_retry(view)]
            if self.fencer is not None:
                ahead.append(self.fencer.next_wake())
            until = min([now + IDLE_RECHECK, *(t for t in ahead if t is not None)])
            self._settled = (revision, inputs, until)
        if plan.notes != self._last_notes:
            for note in plan.notes:
                log.info("controller: %s", note)
            self._last_notes = plan.notes
        return plan

    async def _publish_node_phases(self, view: ClusterView, seen: dict[str, Liveness]) -> bool:
        """Node status as the leader's heartbeat view sees each member, for `ha status`;
        whether it wrote any."""
        wrote = False
        if view.cluster is None:
            return wrote
        for member in view.cluster.spec.nodes:
            phase = node_phase(seen.get(member.name), view.fencing.get(member.name))
            key = keys.status_key("Node", member.name)
            current = self.informer.get(key)
            # Compared with the stored phase, not with what this leader wrote last: a
            # leader that has not yet noticed it was replaced can still write its view
            # (a chaos run left a healthy node NotReady for a minute that way).
            if current is not None and current.value.get("phase") == phase:
                continue
            data = dict(current.value) if current else {}
            data["phase"] = phase
            expect = current.mod_revision if current else 0
            await self.store.commit([Put(key, data, expect_revision=expect)], WRITE_ATTEMPT)
            wrote = True
        return wrote

    async def _write(self, records: list[PlacementRecord]) -> None:
        puts, events = [], []
        for record in records:
            key = keys.placement_key(record.group)
            kv = self.informer.get(key)
            where = record.node or "nowhere"
            events.append(
                make_event(
                    "ResourceGroup",
                    record.group,
                    "Placed"
                    if record.node
                    else "Stopping"
                    if record.stopping_from
                    else "NotPlaced",
                    f"epoch {record.epoch}: {where}: {record.reason}",
                    component="controller",
                    node=self.node,
                )
            )
            puts.append(Put(key, record.to_dict(), expect_revision=kv.mod_revision if kv else 0))
        attempt = WRITE_ATTEMPT + PER_WRITE * (len(records) - 1)
        await self.objects.commit_with_events(puts, events, timeout=attempt)
        for record in records:
            log.info(
                "placement %s -> %s (epoch %d): %s",
                record.group,
                record.node or "nowhere",
                record.epoch,
                record.reason,
            )
