"""In-memory Store with etcd's revision semantics, for fast tests of logic built on the store.

It mirrors etcd 3.4: one global revision starting at 1 and bumped once per transaction that
changes something; mod/create revisions and versions per key; leases expiring by a
(injectable) monotonic clock and deleting their keys in one revision; watches replaying
history from a revision; compaction; etcd's txn limits. ``set_available(False)``
simulates an outage.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from controller.store.base import (
    Check,
    Delete,
    KeyValue,
    Lease,
    Op,
    Put,
    Store,
    StoreStats,
    WatchEvent,
    check_revision,
    decode_value,
    encode_value,
    find_conflicts,
    preconditions,
    validate_ops,
)
from controller.store.errors import (
    CompactedError,
    ConflictError,
    LeaseNotFoundError,
    StoreError,
    StoreUnavailableError,
    TxnTooLargeError,
)
from controller.store.keys import check_relative_key, cluster_prefix

# Per-op bytes etcd's request encoding adds around key and value (close enough for a limit).
_OP_OVERHEAD = 16
_MAX_LEASE_TTL = 9_000_000_000  # etcd's MaxLeaseTTL


@dataclass
class _Entry:
    raw: bytes
    mod_revision: int
    create_revision: int
    version: int
    lease: int


@dataclass
class _LeaseState:
    ttl: int
    deadline: float
    keys: set[str] = field(default_factory=set)


class MemoryLease(Lease):
    def __init__(self, store: MemoryStore, lease_id: int, ttl: int) -> None:
        self.id = lease_id
        self.ttl = ttl
        self._store = store

    async def refresh(self, timeout: float | None = None) -> int:
        return self._store._refresh_lease(self.id)

    async def revoke(self) -> None:
        self._store._revoke_lease(self.id)


class MemoryStore(Store):
    def __init__(
        self,
        cluster: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_txn_ops: int = 20000,
        max_request_bytes: int = 16 * 1024 * 1024,
        min_lease_ttl: int = 1,
    ) -> None:
        self.cluster = cluster
        self.prefix = cluster_prefix(cluster)
        self.stats = StoreStats()
        self.clock = clock
        self.max_txn_ops = max_txn_ops
        self.max_request_bytes = max_request_bytes
        self.min_lease_ttl = min_lease_ttl
        self._kv: dict[str, _Entry] = {}
        self._rev = 1
        self._compacted = 0
        # Every change as (revision, event), oldest first; trimmed by compact().
        self._history: list[tuple[int, WatchEvent]] = []
        self._history_start = 0  # absolute sequence number of _history[0]
        self._leases: dict[int, _LeaseState] = {}
        self._lease_ids = itertools.count(0x7E57_0000_0001)
        self._wake = asyncio.Event()
        self._available = True
        self._closed = False

    # -- test controls -------------------------------------------------------------------

    def set_available(self, available: bool) -> None:
        self._available = available

    def tick(self) -> None:
        """Expire due leases now (for tests that drive an injected clock)."""
        self._expire_leases()

    # -- helpers -------------------------------------------------------------------------

    def _enter(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")
        if not self._available:
            raise StoreUnavailableError(["memory://" + self.cluster], "simulated outage")
        self._expire_leases()

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def _kv_of(self, key: str, e: _Entry) -> KeyValue:
        return KeyValue(
            key, decode_value(key, e.raw), e.mod_revision, e.create_revision, e.version, e.lease
        )

    def _mod_revision(self, key: str) -> int | None:
        e = self._kv.get(key)
        return None if e is None else e.mod_revision

    def _write(self, ops: Sequence[Put | Delete]) -> int:
        """Apply writes as one revision (if anything changes); return the current revision."""
        for op in ops:
            if isinstance(op, Put) and op.lease and op.lease not in self._leases:
                raise LeaseNotFoundError(op.lease)
        encoded = [
            (op, encode_value(op.key, op.value) if isinstance(op, Put) else b"") for op in ops
        ]
        if not any(isinstance(op, Put) or op.key in self._kv for op, _ in encoded):
            return self._rev
        rev = self._rev + 1
        for op, raw in encoded:
            old = self._kv.get(op.key)
            prev = None if old is None else decode_value(op.key, old.raw)
            if old is not None and old.lease in self._leases:
                self._leases[old.lease].keys.discard(op.key)
            kind: Literal["PUT", "DELETE"]
            if isinstance(op, Put):
                lease = op.lease or 0
                self._kv[op.key] = _Entry(
                    raw,
                    rev,
                    rev if old is None else old.create_revision,
                    1 if old is None else old.version + 1,
                    lease,
                )
                if lease:
                    self._leases[lease].keys.add(op.key)
                kind, value = "PUT", decode_value(op.key, raw)
            elif old is not None:
                del self._kv[op.key]
                kind, value = "DELETE", None
            else:
                continue
            self._history.append((rev, WatchEvent(kind, op.key, value, rev, prev)))
        self._rev = rev
        self._notify()
        return rev

    def _check_size(self, ops: Sequence[Op]) -> None:
        writes = sum(1 for op in ops if not isinstance(op, Check))
        compares = len(preconditions(ops))
        size = sum(
            len(self.prefix)
            + len(op.key.encode())
            + _OP_OVERHEAD
            + (len(encode_value(op.key, op.value)) if isinstance(op, Put) else 0)
            for op in ops
        )
        if max(writes, compares) > self.max_txn_ops:
            raise TxnTooLargeError(
                "etcdserver: too many operations in txn request", ops=len(ops), size=size
            )
        if size > self.max_request_bytes:
            raise TxnTooLargeError("etcdserver: request is too large", ops=len(ops), size=size)

    # -- leases --------------------------------------------------------------------------

    def _expire_leases(self) -> None:
        now = self.clock()
        for lease_id in [i for i, st in self._leases.items() if st.deadline <= now]:
            self._revoke_lease(lease_id)

    def _refresh_lease(self, lease_id: int) -> int:
        self._enter()
        self.stats.lease_ops += 1
        st = self._leases.get(lease_id)
        if st is None:
            raise LeaseNotFoundError(lease_id)
        st.deadline = self.clock() + st.ttl
        return st.ttl

    def _revoke_lease(self, lease_id: int) -> None:
        st = self._leases.pop(lease_id, None)
        if st is not None and st.keys:
            # etcd deletes a lease's keys in key order, in one revision.
            self._write([Delete(k) for k in sorted(st.keys)])

    def _next_lease_deadline(self) -> float | None:
        return min((st.deadline for st in self._leases.values()), default=None)

    async def revoke_lease(self, lease_id: int, timeout: float | None = None) -> None:
        self._enter()
        self.stats.lease_ops += 1
        self._revoke_lease(lease_id)

    async def grant_lease(self, ttl_seconds: int, timeout: float | None = None) -> Lease:
        self._enter()
        if ttl_seconds <= 0:
            raise ValueError(f"lease TTL must be > 0 seconds, got {ttl_seconds}")
        if ttl_seconds > _MAX_LEASE_TTL:
            raise StoreError(f"etcd refused to grant a lease: too large lease TTL {ttl_seconds}")
        self.stats.lease_ops += 1
        ttl = max(int(ttl_seconds), self.min_lease_ttl)
        lease_id = next(self._lease_ids)
        self._leases[lease_id] = _LeaseState(ttl, self.clock() + ttl)
        return MemoryLease(self, lease_id, ttl)

    # -- Store API -----------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        check_relative_key(key)
        self._enter()
        self.stats.ranges += 1
        e = self._kv.get(key)
        return None if e is None else self._kv_of(key, e)

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        check_relative_key(prefix, prefix=True)
        self._enter()
        self.stats.ranges += 1
        items = [self._kv_of(k, e) for k, e in sorted(self._kv.items()) if k.startswith(prefix)]
        return items, self._rev

    async def revision(self) -> int:
        self._enter()
        self.stats.ranges += 1
        return self._rev

    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        expect_revision: int | None = None,
        lease: int | None = None,
    ) -> int:
        check_relative_key(key)
        check_revision(key, expect_revision)
        self._check_size([Put(key, value)])
        self._enter()
        if expect_revision is None:
            self.stats.puts += 1
            return self._write([Put(key, value, lease=lease)])
        self.stats.txns += 1
        return self._commit_checked([Put(key, value, expect_revision, lease)])

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        check_relative_key(key)
        check_revision(key, expect_revision)
        self._enter()
        existed = key in self._kv
        if expect_revision is None:
            self.stats.deletes += 1
        else:
            self.stats.txns += 1
            self._check_conflicts([Delete(key, expect_revision)])
        self._write([Delete(key)])
        return existed

    def _check_conflicts(self, ops: Sequence[Op]) -> None:
        conds = preconditions(ops)
        conflicts = find_conflicts(conds, {k: self._mod_revision(k) for k, _ in conds})
        if conflicts:
            raise ConflictError(conflicts)

    def _commit_checked(self, ops: Sequence[Op]) -> int:
        self._check_conflicts(ops)
        return self._write([op for op in ops if isinstance(op, Put | Delete)])

    async def commit(self, ops: Sequence[Op], timeout: float | None = None) -> int:
        ops = list(ops)
        validate_ops(ops)
        self._check_size(ops)
        self._enter()
        self.stats.txns += 1
        return self._commit_checked(ops)

    async def compact(self, revision: int) -> None:
        self._enter()
        if revision > self._rev:
            raise ValueError(
                f"cannot compact to revision {revision}: the store has not reached it "
                f"(it is at revision {self._rev})"
            )
        if revision <= self._compacted:
            return
        self._compacted = revision
        cut = bisect.bisect_left(self._history, revision, key=lambda h: h[0])
        del self._history[:cut]
        self._history_start += cut
        self._notify()

    async def watch(
        self, prefix: str, start_revision: int, *, give_up_after: float | None = None
    ) -> AsyncIterator[WatchEvent]:
        # give_up_after is accepted for interface parity: a memory watch never disconnects.
        check_relative_key(prefix, prefix=True)
        self._enter()
        self.stats.watch_streams += 1
        if start_revision <= 0:
            start_revision = self._rev + 1
        elif start_revision < self._compacted:
            raise CompactedError(self._compacted, start_revision)
        pos = self._history_start + bisect.bisect_left(
            self._history, start_revision, key=lambda h: h[0]
        )
        while True:
            if pos < self._history_start:
                raise CompactedError(self._compacted, start_revision)
            while pos - self._history_start < len(self._history):
                _, event = self._history[pos - self._history_start]
                pos += 1
                start_revision = event.mod_revision
                if event.key.startswith(prefix):
                    yield event
                if pos < self._history_start:
                    raise CompactedError(self._compacted, start_revision)
            wake = self._wake
            deadline = self._next_lease_deadline()
            timeout = None if deadline is None else max(deadline - self.clock(), 0.0) + 0.001
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation
                # that arrives as the event is set, and this watch then never ends.
                async with asyncio.timeout(min(timeout, 0.05) if timeout else None):
                    await wake.wait()
            except TimeoutError:
                if self._available and not self._closed:
                    self._expire_leases()
            if self._closed:
                return

    async def close(self) -> None:
        self._closed = True
        self._notify()
