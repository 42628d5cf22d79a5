"""Ordering between application writes and resync reads on the sync source.

A resync chunk is read and queued on the wire while no application write to the same
blocks is between "sent to peer" and "written locally"; otherwise the peer could receive
the old contents after the new ones. Application writes share; a resync chunk is exclusive.
Also counts, per 4 KiB block, the replicated writes not yet acknowledged by the peer, so a
block's dirty bit is cleared only when no unacknowledged write covers it, and remembers
which dirty blocks a sub-block write found already out of sync ("stale"): that write's
ack proves only its own bytes reached the peer, the rest of the block still needs resync.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

from blockrepl.bitmap import Bitmap
from blockrepl.layout import BM_BYTES_PER_BIT


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


class Conflicts:
    def __init__(self) -> None:
        self._app: dict[int, tuple[int, int]] = {}
        self._resync: dict[int, tuple[int, int]] = {}
        self._next = 0
        self._cond = asyncio.Condition()
        self._waiters = 0
        self.unacked: dict[int, int] = {}  # block -> replicated writes not yet acked
        self.stale: set[int] = set()  # dirty for a resync, not (only) for unacked writes

    # ------------------------------------------------------------ range exclusion
    @asynccontextmanager
    async def app(self, offset: int, length: int) -> AsyncIterator[None]:
        key = self.app_enter(offset, length)
        if key is None:
            key = await self.app_wait(offset, length)
        try:
            yield
        finally:
            wake = self.app_leave(key)
            if wake is not None:
                await wake

    def app_enter(self, offset: int, length: int) -> int | None:
        """:meth:`app` without a suspension when no resync chunk overlaps (always so when no
        resync runs): returns the key for :meth:`app_leave`; None means use :meth:`app`."""
        rng = (offset, length)
        if self._resync and any(_overlap(rng, r) for r in self._resync.values()):
            return None
        return self._add(self._app, rng)

    async def app_wait(self, offset: int, length: int) -> int:
        rng = (offset, length)
        async with self._cond:
            self._waiters += 1
            try:
                await self._cond.wait_for(
                    lambda: not any(_overlap(rng, r) for r in self._resync.values())
                )
            finally:
                self._waiters -= 1
        return self._add(self._app, rng)

    def app_leave(self, key: int) -> Awaitable[None] | None:
        """Returns an awaitable only when a resync chunk waits for application writes."""
        del self._app[key]
        return self._notify() if self._waiters else None

    @asynccontextmanager
    async def resync(self, offset: int, length: int) -> AsyncIterator[None]:
        rng = (offset, length)
        async with self._cond:
            self._waiters += 1
            try:
                await self._cond.wait_for(
                    lambda: not any(_overlap(rng, r) for r in self._app.values())
                )
            finally:
                self._waiters -= 1
            key = self._add(self._resync, rng)
        try:
            yield
        finally:
            del self._resync[key]
            await self._notify()

    def _add(self, table: dict[int, tuple[int, int]], rng: tuple[int, int]) -> int:
        self._next += 1
        table[self._next] = rng
        return self._next

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------ unacked writes
    @staticmethod
    def blocks(offset: int, length: int) -> range:
        return range(offset // BM_BYTES_PER_BIT, (offset + length - 1) // BM_BYTES_PER_BIT + 1)

    def sent(self, offset: int, length: int) -> None:
        # A plain dict and C-level bulk operations: a 1 MiB write touches 256 blocks, and
        # per-block Counter calls were a tenth of the Primary's CPU per replicated write.
        u, rng = self.unacked, self.blocks(offset, length)
        if u.keys().isdisjoint(rng):
            u.update(dict.fromkeys(rng, 1))
            return
        for b in rng:
            u[b] = u.get(b, 0) + 1

    def done(self, offset: int, length: int) -> list[int]:
        """Forget one replicated write; returns the blocks no other write still covers."""
        u, rng = self.unacked, self.blocks(offset, length)
        if set(map(u.get, rng)) == {1}:  # no other unacked write overlaps (the usual case)
            for b in rng:
                del u[b]
            return list(rng)
        free = []
        for b in rng:
            n = u.get(b, 0) - 1
            if n <= 0:
                u.pop(b, None)
                free.append(b)
            else:
                u[b] = n
        return free

    def busy(self, block: int) -> bool:
        return block in self.unacked

    # ------------------------------------------------------------ stale blocks
    def note_partial(self, bitmap: Bitmap, offset: int, length: int) -> None:
        """Before a write that covers a block only in part marks it dirty: was it already
        out of sync for a reason other than an unacknowledged write (a disconnect, a
        failed write, the peer's bitmap)? Then the write's ack must leave it dirty."""
        for b in partial_blocks(offset, length):
            if b in self.unacked:
                continue  # dirty at least for that write; its own record stands
            if bitmap.test(b):
                self.stale.add(b)
            else:
                self.stale.discard(b)

    def mark_stale(self, bitmap: Bitmap) -> None:
        """After the peer's bitmap was merged: a block with a write in flight that is now
        dirty may be dirty because of the peer, which that write's ack says nothing about."""
        self.stale.update(b for b in self.unacked if bitmap.test(b))

    def clearable(self, offset: int, length: int, free: list[int]) -> list[int]:
        """Of the blocks an acknowledged write left free, those whose dirty bit may go."""
        if not self.stale:
            return free
        keep = [b for b in partial_blocks(offset, length) if b in self.stale]
        clear = [b for b in free if b not in keep]
        self.stale.difference_update(clear)
        return clear

    def resynced(self, block: int) -> None:
        """The block's dirty bit was cleared by resync: the peer holds all of it."""
        self.stale.discard(block)


def partial_blocks(offset: int, length: int) -> list[int]:
    """The (at most two) 4 KiB blocks [offset, offset+length) touches without covering."""
    if length <= 0:
        return []
    first, last = offset // BM_BYTES_PER_BIT, (offset + length - 1) // BM_BYTES_PER_BIT
    out = []
    if offset % BM_BYTES_PER_BIT or (first == last and length < BM_BYTES_PER_BIT):
        out.append(first)
    if (offset + length) % BM_BYTES_PER_BIT and last not in out:
        out.append(last)
    return out
