"""Typed objects over the key-value store: spec and status kept apart, events beside them.

An object is two keys: ``specs/<Kind>/<name>`` (metadata and spec, written by
``ha apply``) and ``status/<Kind>/<name>`` (written by the agents). Keeping them
apart lets an apply and a status report never overwrite each other, each with
its own compare-and-swap. ``metadata.resourceVersion`` is the spec key's etcd
mod revision.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from controller.api.decode import SchemaError, decode
from controller.api.events import REASONS, Component
from controller.api.meta import Object, format_timestamp
from controller.api.registry import KINDS
from controller.store import keys
from controller.store.base import KeyValue, Op, Put, Store
from controller.store.errors import ConflictError, LeaseNotFoundError, StoreError

EVENT_TTL_SECONDS = 3600


@dataclass(frozen=True)
class StoredObject:
    """An object as the store holds it: the typed object plus the revisions of its keys."""

    obj: Object
    spec_revision: int
    status_revision: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.obj.KIND, self.obj.name)


@dataclass(frozen=True)
class Event:
    kind: str
    name: str
    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    time: datetime
    source: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "involvedObject": {"kind": self.kind, "name": self.name},
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "time": format_timestamp(self.time),
            "source": self.source,
        }

    @property
    def source_label(self) -> str:
        """Who wrote it, short: `ha`, `controller/n2`, `agent/n1`."""
        component = self.source.get("component", "")
        node = self.source.get("node", "")
        return f"{component}/{node}" if node else component

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        involved = data.get("involvedObject", {})
        return cls(
            kind=str(involved.get("kind", "")),
            name=str(involved.get("name", "")),
            type="Warning" if data.get("type") == "Warning" else "Normal",
            reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
            time=datetime.fromisoformat(str(data.get("time", "1970-01-01T00:00:00Z"))),
            source={str(k): str(v) for k, v in dict(data.get("source", {})).items()},
        )


def event_key(kind: str, name: str, moment: datetime) -> str:
    # Time first so that a prefix listing is already in order; the suffix keeps
    # two events of the same microsecond apart.
    stamp = moment.strftime("%Y%m%dT%H%M%S.%f")
    return f"{keys.event_prefix(kind, name)}{stamp}-{secrets.token_hex(3)}"


def make_event(
    kind: str,
    name: str,
    reason: str,
    message: str,
    *,
    type: Literal["Normal", "Warning"] = "Normal",
    component: Component = "ha",
    node: str | None = None,
) -> Event:
    """An event stamped now with its source: the component, the cluster node it ran on
    (the controller and agents; `ha` may run off the cluster), the host and pid."""
    if reason not in REASONS:
        # A bug, not input: the vocabulary is closed (controller/api/events.py).
        raise ValueError(f"event reason {reason!r} is not in controller/api/events.py REASONS")
    source = {"component": component, "host": socket.gethostname(), "pid": str(os.getpid())}
    if node:
        source["node"] = node
    return Event(
        kind=kind,
        name=name,
        type=type,
        reason=reason,
        message=message,
        time=datetime.now(UTC),
        source=source,
    )


def spec_document(obj: Object) -> dict[str, Any]:
    """What the spec key holds: the object without status and without resourceVersion."""
    data = obj.to_dict()
    data.pop("status", None)
    data["metadata"].pop("resourceVersion", None)
    return data


class ObjectStore:
    """Typed reads and writes of API objects."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Events share a lease granted once per half hour, not one per write: a grant is a
        # round trip to etcd's leader, and placement writes (with their events) are on the
        # failover's critical path. An event so lives between half an hour and an hour.
        self._event_lease: tuple[int, float] | None = None

    @staticmethod
    def _merge(spec_kv: KeyValue, status_kv: KeyValue | None) -> StoredObject:
        data = dict(spec_kv.value)
        data["metadata"] = {
            **data.get("metadata", {}),
            "resourceVersion": str(spec_kv.mod_revision),
        }
        if status_kv is not None:
            data["status"] = status_kv.value
        try:
            obj = decode(data)
        except SchemaError as exc:
            raise StoreError(
                f"stored object {spec_kv.key} does not decode ({exc}); it was written by "
                "another version of Vigil or by hand: fix it with `ha apply` or delete it"
            ) from None
        return StoredObject(
            obj, spec_kv.mod_revision, status_kv.mod_revision if status_kv else None
        )

    async def list_objects(
        self, kinds: Iterable[str] | None = None
    ) -> tuple[list[StoredObject], int]:
        """Objects of the given kinds (all kinds by default), sorted by kind then name."""
        wanted = list(kinds) if kinds is not None else [m.KIND for m in KINDS]
        result: list[StoredObject] = []
        revision = 0
        if len(wanted) == 1:
            spec_kvs, revision = await self.store.list(keys.spec_prefix(wanted[0]))
            status_kvs, _ = await self.store.list(keys.status_prefix(wanted[0]))
        else:
            spec_kvs, revision = await self.store.list(keys.SPECS)
            status_kvs, _ = await self.store.list(keys.STATUS)
        statuses = {kv.key[len(keys.STATUS) :]: kv for kv in status_kvs}
        for kv in spec_kvs:
            relative = kv.key[len(keys.SPECS) :]
            kind = relative.split("/", 1)[0]
            if kind not in wanted:
                continue
            result.append(self._merge(kv, statuses.get(relative)))
        order = {kind: i for i, kind in enumerate(m.KIND for m in KINDS)}
        result.sort(key=lambda s: (order.get(s.obj.KIND, 99), s.obj.name))
        return result, revision

    async def get(self, kind: str, name: str) -> StoredObject | None:
        spec_kv = await self.store.get(keys.spec_key(kind, name))
        if spec_kv is None:
            return None
        status_kv = await self.store.get(keys.status_key(kind, name))
        return self._merge(spec_kv, status_kv)

    async def create(self, obj: Object) -> bool:
        """Store ``obj`` only if no object of its kind and name exists (compare-and-swap on
        revision 0), with the bookkeeping an apply gives a new object (uid, generation 1,
        creation time). True if it was created. For objects Vigil registers itself (the
        seeded Cluster, each agent's Node), never to change what someone stored."""
        meta = obj.metadata.model_copy(
            update={
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "creation_timestamp": datetime.now(UTC),
                "resource_version": None,
            }
        )
        document = spec_document(obj.model_copy(update={"metadata": meta}))
        try:
            await self.store.put(keys.spec_key(obj.KIND, obj.name), document, expect_revision=0)
        except ConflictError:
            return False
        return True

    async def events(self, kind: str | None = None, name: str | None = None) -> list[Event]:
        if kind and name:
            prefix = keys.event_prefix(kind, name)
        elif kind:
            prefix = f"{keys.EVENTS}{kind}/"
        else:
            prefix = keys.EVENTS
        kvs, _ = await self.store.list(prefix)
        events = [Event.from_dict(kv.value) for kv in kvs]
        events.sort(key=lambda e: e.time)
        return events

    async def _event_puts(self, events: Sequence[Event], timeout: float | None) -> list[Put]:
        if not events:
            return []
        now = time.monotonic()
        if self._event_lease is None or now - self._event_lease[1] > EVENT_TTL_SECONDS / 2:
            lease = await self.store.grant_lease(EVENT_TTL_SECONDS, timeout)
            self._event_lease = (lease.id, now)
        lease_id = self._event_lease[0]
        return [Put(event_key(e.kind, e.name, e.time), e.to_dict(), lease=lease_id) for e in events]

    async def commit_with_events(
        self, ops: Sequence[Op], events: Sequence[Event], timeout: float | None = None
    ) -> int:
        """Commit ``ops`` with puts recording ``events`` (on the shared event lease), in one
        transaction; `timeout` as Store.commit's."""
        for _attempt in range(2):
            puts = await self._event_puts(events, timeout)
            try:
                return await self.store.commit([*ops, *puts], timeout)
            except LeaseNotFoundError:
                self._event_lease = None  # expired or revoked under us: grant another
        raise LeaseNotFoundError(0)
