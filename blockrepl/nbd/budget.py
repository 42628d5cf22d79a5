"""Byte budgets: how much request payload the NBD server holds in memory at once.

A READ's reply occupies memory from the moment its data is read until the kernel took it
from the socket's send buffer; a client that pipelines big READs and does not read the
replies would otherwise make the server hold all of them. A connection takes a request's
bytes from its own budget and (beyond a small reserve) from the server-wide one before it
reads the next request, and gives them back once the reply left user space; while either
budget is spent the connection reads no further requests, so TCP pushes back on that
client alone.
"""

from __future__ import annotations

import asyncio
from collections import deque

MiB = 1024 * 1024
# Two kernel-maximum (32 MiB) requests, or 128 of the kernel's usual 512 KiB ones (its
# default queue depth): a well-behaved client is never held back by it.
CONNECTION_BYTES = 64 * MiB
# Four connections stuck at their budget; what a Primary may spend on request payloads.
TOTAL_BYTES = 256 * MiB
# What a connection may hold outside the server-wide budget: clients whose replies are
# not read can spend that budget, and another client's small requests must still pass.
# Per connection it is of the order of its receive buffer (bufstream.SMALL).
CONNECTION_RESERVE = 1 * MiB
# Idle WRITE buffers kept for reuse by all connections together (one connection keeps at
# most 32 MiB: bufstream.BufferPool); outside the budgets above, so bounded on its own.
POOLED_BYTES = 64 * MiB


class ByteBudget:
    """A first-come-first-served semaphore counted in bytes.

    Requests are served in order, so a big request is not starved by a stream of small
    ones. A request bigger than the whole budget waits for it to be entirely free and
    then takes all of it."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("a byte budget must be positive")
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def clamp(self, n: int) -> int:
        return min(n, self.limit)

    async def acquire(self, n: int) -> int:
        """Take ``n`` bytes (clamped to the limit); returns what must be released."""
        n = self.clamp(n)
        if not self._waiters and self.used + n <= self.limit:
            self.used += n
            return n
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(n)  # granted just as we were cancelled
            else:
                self._waiters.remove(entry)
                self._grant()  # a big request at the head no longer blocks the others
            raise
        return n

    def release(self, n: int) -> None:
        self.used -= n
        assert self.used >= 0, "byte budget released more than it gave"
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            n, fut = self._waiters.popleft()
            if not fut.done():
                self.used += n
                fut.set_result(None)
