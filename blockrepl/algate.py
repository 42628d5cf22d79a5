"""Async gate that keeps the activity log ahead of data writes.

A write may start only when every 4 MiB extent it touches is in the on-disk AL; cold
extents are activated by one AL transaction (evicting idle extents LRU-first, after the
bitmap pages covering them are durable). Activations are serialised, hot writes are not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from blockrepl.actlog import ActivityLog, extents_for
from blockrepl.metadata import MetadataStore

T = TypeVar("T")
RunBlocking = Callable[..., Awaitable[Any]]


class ActivityGate:
    def __init__(self, store: MetadataStore, run_blocking: RunBlocking) -> None:
        self._store = store
        self._run = run_blocking
        self._al = ActivityLog(store.geometry.al_extents, store.al_extents)
        self._cond = asyncio.Condition()
        self.transactions = 0  # AL transactions written (observability, tests)

    @property
    def active(self) -> list[int]:
        return self._al.active

    @asynccontextmanager
    async def writing(self, offset: int, length: int) -> AsyncIterator[None]:
        extents = list(extents_for(offset, length))
        async with self._cond:
            while True:
                plan = self._al.plan(extents)
                if plan is not None:
                    break
                await self._cond.wait()
            if plan.needs_transaction:
                if plan.evict:
                    snap = self._store.bitmap_snapshot()
                    await self._run(self._store.write_bitmap_snapshot, snap)
                await self._run(self._store.write_al_transaction, self._al.snapshot_after(plan))
                self._al.apply(plan)
                self.transactions += 1
            self._al.acquire(extents)
        try:
            yield
        finally:
            async with self._cond:
                self._al.release(extents)
                self._cond.notify_all()
