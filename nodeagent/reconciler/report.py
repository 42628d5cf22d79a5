"""What this node's reconciler writes to the store: a group's status, its failures here,
and the events that go with them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal, cast

from controller.api.group import ResourceGroup, ResourceGroupStatus, ResourceStatus
from controller.store import keys
from controller.store.base import Put, Store
from controller.store.errors import ConflictError, StoreError
from controller.store.informer import Informer
from controller.store.objects import Event, ObjectStore, make_event
from controller.store.records import FailureRecord, PlacementRecord
from nodeagent.observation import State
from nodeagent.reconciler.plan import GroupView, phase
from nodeagent.reconciler.running import GroupMemory

log = logging.getLogger(__name__)
STATUS_BATCH = 100
Phase = Literal[
    "Pending", "Starting", "Running", "Stopping", "Stopped", "Failed", "StopFailed", "Blocked"
]
ResourceState = Literal["Running", "Stopped", "Failed", "Unknown"]


def action_event(
    node: str, group: str, kind: str, resource: str, verb: str, error: str | None = None
) -> Event:
    """The event of one action of this node's reconciler on a resource of `group`: a
    volume's start and stop are its promotion and demotion (docs/events.md)."""
    if error is not None and verb == "stop":
        return make_event(
            "ResourceGroup",
            group,
            "StopFailed",
            f"stop of {kind} {resource} on {node} failed: {error}",
            type="Warning",
            component="agent",
            node=node,
        )
    if kind == "volume":
        reason, done = (
            ("Promoted", "promoted to Primary")
            if verb == "start"
            else (
                "Demoted",
                "demoted to Secondary",
            )
        )
    else:
        reason, done = ("Started", "started") if verb == "start" else ("Stopped", "stopped")
    return make_event(
        "ResourceGroup",
        group,
        reason,
        f"{kind} {resource} {done} on {node}",
        component="agent",
        node=node,
    )


class ActionEvents:
    """The reconciler's action events, written in the background in the order the actions
    were taken: a turn never waits on the store for a record (a store outage would slow
    every start and stop by its timeout). A batch the store refuses is dropped, not
    retried: a timed-out commit may have landed, and a record twice misleads more than a
    gap the agent's log fills."""

    BATCH = 100
    MAX_PENDING = 1000  # a store down for long: the oldest are dropped, memory stays bounded

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self._pending: list[Event] = []
        self._wake = asyncio.Event()
        self.dropped = 0

    def add(self, events: list[Event]) -> None:
        if not events:
            return
        self._pending.extend(events)
        excess = len(self._pending) - self.MAX_PENDING
        if excess > 0:
            del self._pending[:excess]
            self.dropped += excess
            log.warning("store too slow for action events: %d dropped so far", self.dropped)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self.BATCH], self._pending[self.BATCH :]
                try:
                    await self.objects.commit_with_events([], batch)
                except StoreError as exc:
                    self.dropped += len(batch)
                    log.warning("cannot record %d action events: %s", len(batch), exc)
                except Exception:  # one bad batch must not end the record for good
                    self.dropped += len(batch)
                    log.exception("recording %d action events failed", len(batch))


class Reporter:
    def __init__(self, node: str, store: Store, informer: Informer) -> None:
        self.node = node
        self.store = store
        self.informer = informer
        self.objects = ObjectStore(store)
        self.actions = ActionEvents(self.objects)

    async def count_failure(self, group: str, message: str) -> None:
        """failures/<group>/<node> one higher (compare-and-swap), with a Warning event."""
        key = keys.failure_key(group, self.node)
        for _attempt in range(3):
            kv = await self.store.get(key)
            count = FailureRecord.from_dict(kv.value).count if kv else 0
            record = FailureRecord(group, self.node, count + 1, time.time(), message)
            event = make_event(
                "ResourceGroup",
                group,
                "Failed",
                f"on {self.node} (failure {count + 1}): {message}",
                type="Warning",
                component="agent",
                node=self.node,
            )
            put = Put(key, record.to_dict(), expect_revision=kv.mod_revision if kv else 0)
            try:
                await self.objects.commit_with_events([put], [event])
                return
            except ConflictError:
                continue
            except StoreError as exc:
                log.warning("cannot record the failure of %s: %s", group, exc)
                return

    async def announce_blocked(self, group: str, why: str) -> None:
        event = make_event(
            "ResourceGroup",
            group,
            "Blocked",
            f"cannot run on {self.node}: {why}",
            type="Warning",
            component="agent",
            node=self.node,
        )
        try:
            await self.objects.commit_with_events([], [event])
        except StoreError as exc:
            log.warning("cannot record that %s is blocked: %s", group, exc)

    async def status_write(
        self,
        group: ResourceGroup,
        view: GroupView,
        record: PlacementRecord | None,
        blocked: str | None,
        failure: str | None,
        memory: GroupMemory,
    ) -> Put | None:
        """The write of the group's status if this node answers for it and the store holds
        something else (written with others by `write`); None if there is nothing to write."""
        involved = record is not None and self.node in (record.node, record.stopping_from)
        # Only what is seen running (or failed) is a claim; "unknown" is not.
        running_here = any(r.state in (State.RUNNING, State.FAILED) for r in view.resources)
        unplaced = record is None or record.node is None
        if not involved and not (running_here and unplaced):
            # The node a group is placed on (or leaving) answers for it; others stop what
            # they find of it and keep quiet, or `ha status` flips between reporters.
            return None
        current_phase = "Blocked" if blocked else phase(view)
        if failure and current_phase != "Blocked":
            current_phase = "Failed"
        stuck = any(r.state is not State.STOPPED for r in view.resources)
        if memory.failed_stops and view.mode == "stop" and stuck and not blocked:
            # Not "Failed": the leader takes that for stopped. It may still run here, so it
            # must not start elsewhere until this node stops it or is fenced.
            current_phase = "StopFailed"
        if current_phase == "Running":
            memory.failed_starts = 0
        if (blocked or "") != memory.blocked:
            memory.blocked = blocked or ""
            if blocked:
                await self.announce_blocked(group.name, blocked)
        status = ResourceGroupStatus(
            observed_generation=group.metadata.generation,
            node=self.node if running_here or view.should_run else None,
            phase=cast(Phase, current_phase),
            resources=[
                ResourceStatus(
                    name=r.name,
                    state=cast(ResourceState, r.state.value.capitalize()),
                    message=r.detail,
                )
                for r in view.resources
            ],
            placement_epoch=record.epoch if record else None,
            reporter=self.node,
            last_action=blocked or failure or memory.last_action or None,
        )
        data = status.to_dict()
        key = keys.status_key("ResourceGroup", group.name)
        stored = self.informer.get(key)
        # Level-triggered: compare with what the store holds, not with what this node last
        # wrote, so that a report overwritten by another node is written again.
        if stored is not None and stored.value == data:
            return None
        stored_epoch = int(stored.value.get("placementEpoch") or 0) if stored else 0
        if record is not None and stored_epoch > record.epoch:
            return None  # a newer placement's report stands; this node's copy is behind
        return Put(key, data, expect_revision=stored.mod_revision if stored else 0)

    async def write(self, puts: list[Put]) -> tuple[set[str], bool]:
        """Write statuses, many per transaction (a big apply reports a thousand groups in a
        few round trips). Returns the keys not written (the caller looks at those groups
        again) and whether that was because another writer got to one first (look again
        soon) rather than a store that refused (look again at the next turn)."""
        lost: set[str] = set()
        conflict = False
        for start in range(0, len(puts), STATUS_BATCH):
            chunk = puts[start : start + STATUS_BATCH]
            try:
                await self.store.commit(chunk)
                continue
            except ConflictError:
                pass  # one of them was written meanwhile: one by one, so the rest land
            except StoreError as exc:
                log.warning("cannot report the status of %d groups: %s", len(chunk), exc)
                lost.update(put.key for put in chunk)
                continue
            for put in chunk:
                try:
                    await self.store.commit([put])
                except ConflictError:
                    lost.add(put.key)
                    conflict = True
                except StoreError as exc:
                    log.warning("cannot report the status at %s: %s", put.key, exc)
                    lost.add(put.key)
        return lost, conflict
