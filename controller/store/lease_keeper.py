"""Background renewal of a lease, reporting loss once.

The keeper counts a lease as lost when etcd says it is gone, or when it could not renew
it before its TTL (measured from the start of the last successful refresh) ran out, which
is the earliest moment etcd may have expired it. No renewal waits past that moment: one
sent to an etcd leader that just died would otherwise hang for the store's whole timeout
while a new leader, elected in a fraction of a second, could have answered a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from controller.store.base import Lease
from controller.store.errors import LeaseNotFoundError, StoreError

log = logging.getLogger(__name__)

OnLost = Callable[[str], object]
MIN_ATTEMPT = 0.05  # seconds: one round trip to a loaded local etcd


class LeaseKeeper:
    def __init__(
        self,
        lease: Lease,
        interval: float,
        on_lost: OnLost | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"lease keep-alive interval must be > 0, got {interval}")
        self.lease = lease
        self.interval = interval
        self.on_lost = on_lost
        self.clock = clock
        self.lost = asyncio.Event()
        self.lost_reason: str | None = None
        self.refreshes = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lease-keeper-{self.lease.id:x}")

    async def stop(self, *, revoke: bool = False) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if revoke and not self.lost.is_set():
            await self.lease.revoke()

    async def _report(self, reason: str) -> None:
        self.lost_reason = reason
        self.lost.set()
        log.warning("lease %x lost: %s", self.lease.id, reason)
        if self.on_lost is not None:
            result = self.on_lost(reason)
            if inspect.isawaitable(result):
                await result

    async def _run(self) -> None:
        expires_at = self.clock() + self.lease.ttl
        delay = self.interval
        while True:
            await asyncio.sleep(delay)
            started = self.clock()
            # Each attempt ends by the lease's end and within an interval, so a lost request
            # is retried at once; etcd's new leader renews what its old one granted.
            attempt = max(min(self.interval, expires_at - started), MIN_ATTEMPT)
            try:
                ttl = await self.lease.refresh(timeout=attempt)
            except LeaseNotFoundError:
                await self._report("etcd says the lease expired or was revoked")
                return
            except StoreError as e:
                remaining = expires_at - self.clock()
                if remaining <= 0:
                    await self._report(f"could not renew it before its TTL ran out: {e}")
                    return
                # Retry sooner than the interval so a short outage does not cost the lease.
                delay = min(self.interval, max(remaining / 3, 0.01))
                continue
            self.refreshes += 1
            expires_at = started + ttl
            delay = self.interval

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def keep_alive(lease: Lease, interval: float, on_lost: OnLost | None = None) -> LeaseKeeper:
    """Start renewing lease every interval seconds; on_lost(reason) is called once on loss."""
    keeper = LeaseKeeper(lease, interval, on_lost)
    keeper.start()
    return keeper
