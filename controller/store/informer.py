"""A local copy of a cluster's keys, kept current by a watch (Kubernetes' informer).

The controller and the node reconciler read their inputs from here instead of asking
etcd on every decision: a decision costs no round trip, and a change wakes them at once.
The copy is listed, then patched by watch events from the list's revision on; a
compacted history means a new list. While etcd is unreachable the copy keeps its last
state and says so (``connected``), so that a store outage never erases what a node knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from controller.api.cluster import Cluster
from controller.api.decode import SchemaError, decode
from controller.api.fencing import FenceDevice
from controller.api.group import ResourceGroup, ResourceGroupStatus
from controller.api.meta import Object, Status
from controller.api.node import Node, NodeStatus
from controller.api.volume import ReplicatedVolume, ReplicatedVolumeStatus
from controller.store import keys
from controller.store.base import KeyValue, Store
from controller.store.errors import CompactedError, StoreError
from controller.store.fence_record import FenceRecord
from controller.store.outdate_record import OutdateRecord
from controller.store.records import FailureRecord, LeaderRecord, NodeRecord, PlacementRecord
from controller.store.view import ClusterView

log = logging.getLogger(__name__)
S = TypeVar("S", bound=Status)


async def wait_any(events: list[asyncio.Event], within: float, *, clear: bool = True) -> None:
    """Wait until one of ``events`` is set or ``within`` seconds pass; then clear them all
    (unless ``clear`` is false: the caller looks at which one woke it).

    Level-triggered loops sleep on it until something may have changed (an informer's or a
    liveness view's ``subscribe()``): clearing after waking is safe because the loop
    re-reads the whole state on every turn.
    """
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if clear:
        for event in events:
            event.clear()


class Informer:
    def __init__(
        self, store: Store, prefix: str = "", ignore: tuple[str, ...] = (keys.EVENTS,)
    ) -> None:
        self.store = store
        self.prefix = prefix
        # Events change all the time and decide nothing: keeping them out of the copy
        # keeps the daemons from waking for them.
        self.ignore = ignore
        self.revision = 0
        self.connected = False
        self.ready = asyncio.Event()
        self._items: dict[str, KeyValue] = {}
        self._listeners: list[asyncio.Event] = []
        self._decoded: dict[str, tuple[int, Any]] = {}
        # under(prefix) answers, dropped when a key under that prefix changes: the daemons
        # read the same few prefixes on every change, over thousands of keys.
        self._under: dict[str, list[KeyValue]] = {}

    def subscribe(self) -> asyncio.Event:
        """An event set after every change; the subscriber clears it when it has looked."""
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    def _notify(self) -> None:
        for event in self._listeners:
            event.set()

    def preload(self, items: list[KeyValue]) -> None:
        """Start from a copy saved earlier (the store may be unreachable now); the first
        successful listing replaces it."""
        self._items = {kv.key: kv for kv in items}
        self._under.clear()
        self._notify()

    def load(self, items: list[KeyValue], revision: int) -> None:
        """Replace the copy with a listing read at ``revision``."""
        self._items = {kv.key: kv for kv in items if not kv.key.startswith(self.ignore)}
        self._under.clear()
        self.revision = revision
        self.connected = True
        self.ready.set()
        self._notify()

    async def run(self, retry_delay: float = 0.2) -> None:
        while True:
            try:
                if not self.connected:
                    self.load(*await self.store.list(self.prefix))
                revision = self.revision
                async for event in self.store.watch(self.prefix, revision + 1):
                    if event.key.startswith(self.ignore):
                        self.revision = max(self.revision, event.mod_revision)
                        continue
                    self._changed(event.key)
                    if event.type == "DELETE":
                        self._items.pop(event.key, None)
                    elif event.value is not None:
                        self._items[event.key] = KeyValue(
                            event.key, event.value, event.mod_revision, 0, 0, 0
                        )
                    self.revision = max(self.revision, event.mod_revision)
                    self._notify()
            except CompactedError:
                self.connected = False
                continue
            except StoreError as exc:
                if self.connected:
                    log.warning("store unreachable, keeping the last known state: %s", exc)
                self.connected = False
                self._notify()
                await asyncio.sleep(retry_delay)

    # -- reading ------------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        return self._items.get(key)

    def under(self, prefix: str) -> list[KeyValue]:
        """The items under `prefix`, sorted by key (callers must not change the list)."""
        found = self._under.get(prefix)
        if found is None:
            found = [kv for key, kv in sorted(self._items.items()) if key.startswith(prefix)]
            self._under[prefix] = found
        return found

    def _changed(self, key: str) -> None:
        for prefix in [p for p in self._under if key.startswith(p)]:
            del self._under[prefix]

    def _cached(self, kv: KeyValue, build: Callable[[dict[str, Any]], Any]) -> Any:
        hit = self._decoded.get(kv.key)
        if hit is not None and hit[0] == kv.mod_revision:
            return hit[1]
        value = build(kv.value)
        self._decoded[kv.key] = (kv.mod_revision, value)
        return value

    def objects(self, kind: str) -> dict[str, Object]:
        """Spec objects of a kind (status not merged), by name; undecodable ones skipped."""
        out: dict[str, Object] = {}
        for kv in self.under(keys.spec_prefix(kind)):
            try:
                obj = self._cached(kv, decode)
            except SchemaError as exc:
                log.error("stored %s does not decode, ignoring it: %s", kv.key, exc)
                continue
            out[obj.name] = obj
        return out

    def statuses(self, kind: str, model: type[S]) -> dict[str, S]:
        out: dict[str, S] = {}
        prefix = keys.status_prefix(kind)
        for kv in self.under(prefix):
            with contextlib.suppress(ValueError):
                out[kv.key[len(prefix) :]] = self._cached(kv, model.model_validate)
        return out

    def placements(self) -> dict[str, PlacementRecord]:
        """placement/<group> records, by group: the same object while the record's revision
        is the same, so that a reader can tell a change by identity."""
        records = (self._cached(kv, PlacementRecord.from_dict) for kv in self.under(keys.PLACEMENT))
        return {record.group: record for record in records}

    def failures(self) -> list[FailureRecord]:
        return [FailureRecord.from_dict(kv.value) for kv in self.under(keys.FAILURES)]

    def agents(self) -> dict[str, NodeRecord]:
        """nodes/<node> records of the agents connected to the store, by node."""
        return {
            kv.key[len(keys.NODES) :]: NodeRecord.from_dict(kv.value)
            for kv in self.under(keys.NODES)
        }

    def fencing(self) -> dict[str, FenceRecord]:
        """fencing/<node> records, by node."""
        records = (self._cached(kv, FenceRecord.from_dict) for kv in self.under(keys.FENCING))
        return {record.node: record for record in records}

    def outdate_records(self) -> dict[str, OutdateRecord]:
        """blockrepl's volumes/<volume>/outdated records, by volume."""
        out: dict[str, OutdateRecord] = {}
        for kv in self.under(keys.VOLUMES):
            volume, _, leaf = kv.key[len(keys.VOLUMES) :].partition("/")
            if leaf == keys.OUTDATED and volume:
                out[volume] = self._cached(kv, functools.partial(OutdateRecord.from_dict, volume))
        return out

    def leader(self) -> LeaderRecord | None:
        kv = self.get(keys.LEADER)
        return LeaderRecord.from_dict(kv.value) if kv else None

    def view(self) -> ClusterView:
        """The cluster as this copy holds it (controller/store/view.py)."""
        clusters = [c for c in self.objects(Cluster.KIND).values() if isinstance(c, Cluster)]
        groups = self.objects(ResourceGroup.KIND)
        nodes = self.objects(Node.KIND)
        return ClusterView(
            cluster=clusters[0] if clusters else None,
            groups={n: g for n, g in groups.items() if isinstance(g, ResourceGroup)},
            group_status=self.statuses(ResourceGroup.KIND, ResourceGroupStatus),
            nodes={n: o for n, o in nodes.items() if isinstance(o, Node)},
            node_status=self.statuses(Node.KIND, NodeStatus),
            fences={
                n: o
                for n, o in self.objects(FenceDevice.KIND).items()
                if isinstance(o, FenceDevice)
            },
            agents=self.agents(),
            leader=self.leader(),
            placements=self.placements(),
            failures=self.failures(),
            fencing=self.fencing(),
            volumes={
                n: o
                for n, o in self.objects(ReplicatedVolume.KIND).items()
                if isinstance(o, ReplicatedVolume)
            },
            volume_status=self.statuses(ReplicatedVolume.KIND, ReplicatedVolumeStatus),
            outdate_records=self.outdate_records(),
        )

    def status_revision(self, kind: str, name: str) -> int:
        kv = self._items.get(keys.status_key(kind, name))
        return kv.mod_revision if kv else 0
