"""The agent's store, timed: every request's duration by operation, and its errors.

A wrapper rather than code in controller/store: the control plane may not import the
node agent, and `ha` has no use for these metrics. Watches are streams, not requests:
they pass through untimed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from controller.store.base import KeyValue, Lease, Op, Store, WatchEvent
from nodeagent.metrics.instruments import STORE_DURATION, STORE_ERRORS

T = TypeVar("T")


async def _timed(op: str, call: Awaitable[T]) -> T:
    began = time.monotonic()
    try:
        return await call
    except Exception:
        STORE_ERRORS.labels(op).inc()
        raise
    finally:
        STORE_DURATION.labels(op).observe(time.monotonic() - began)


class TimedLease(Lease):
    """A lease whose renewals (the node record's, the leader's, every few seconds) are
    timed as `lease_refresh`: the store call most sensitive to a slow etcd."""

    def __init__(self, inner: Lease) -> None:
        self.inner = inner
        self.id = inner.id
        self.ttl = inner.ttl

    async def refresh(self, timeout: float | None = None) -> int:
        ttl = await _timed("lease_refresh", self.inner.refresh(timeout))
        self.ttl = self.inner.ttl
        return ttl

    async def revoke(self) -> None:
        await _timed("revoke_lease", self.inner.revoke())


class TimedStore(Store):
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.cluster = inner.cluster
        self.stats = inner.stats

    async def get(self, key: str) -> KeyValue | None:
        return await _timed("get", self.inner.get(key))

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        return await _timed("list", self.inner.list(prefix))

    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        expect_revision: int | None = None,
        lease: int | None = None,
    ) -> int:
        call = self.inner.put(key, value, expect_revision=expect_revision, lease=lease)
        return await _timed("put", call)

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        return await _timed("delete", self.inner.delete(key, expect_revision=expect_revision))

    async def commit(self, ops: Sequence[Op], timeout: float | None = None) -> int:
        return await _timed("commit", self.inner.commit(ops, timeout))

    async def revision(self) -> int:
        return await _timed("revision", self.inner.revision())

    def watch(
        self, prefix: str, start_revision: int, *, give_up_after: float | None = None
    ) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(prefix, start_revision, give_up_after=give_up_after)

    async def compact(self, revision: int) -> None:
        await _timed("compact", self.inner.compact(revision))

    async def grant_lease(self, ttl_seconds: int, timeout: float | None = None) -> Lease:
        lease = await _timed("grant_lease", self.inner.grant_lease(ttl_seconds, timeout))
        return TimedLease(lease)

    async def revoke_lease(self, lease_id: int, timeout: float | None = None) -> None:
        await _timed("revoke_lease", self.inner.revoke_lease(lease_id, timeout))

    async def close(self) -> None:
        await self.inner.close()
