"""Replicated :class:`BlockBackend`: local disk + the peer, acknowledged per protocol A/B/C.

Write path (Primary): enter the AL gate, mark the blocks dirty, queue the write on the
replication link (in issue order, without waiting for earlier round trips), write locally,
then wait for what the protocol requires (A: handed to the socket, B: peer received,
C: peer wrote). The dirty bits are cleared only when the peer confirmed the write (and no
newer unconfirmed write covers the block), so a write that never reached the peer is
resynced later. If the peer is lost meanwhile the write completes locally (degraded).

The Secondary applies the peer's writes through :meth:`apply_write` & co. on a single
thread, which keeps the Primary's order without explicit epochs.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from blockrepl.localdisk import LocalDiskBackend, pieces, punch_hole, pwrite_all
from blockrepl.metadata import MetadataStore

if TYPE_CHECKING:
    from blockrepl.replication.node import ReplicaNode
    from blockrepl.replication.peer import Connection

INLINE_MAX = 1024 * 1024
Local = Callable[[int, int], Awaitable[None]]


class ReplicatedBackend(LocalDiskBackend):
    def __init__(self, store: MetadataStore, data_path: str, workers: int = 4) -> None:
        super().__init__(store, data_path, workers)
        self.node: ReplicaNode | None = None

    # ------------------------------------------------------------------ Primary
    async def pwrite(self, offset: int, data: bytes, fua: bool = False) -> None:
        self._check(offset, len(data))
        view = memoryview(data)

        async def local(off: int, n: int) -> None:
            piece = view[off - offset : off - offset + n]
            if n <= INLINE_MAX:
                pwrite_all(self._fd, piece, off)  # page cache: cheaper than a thread hop
            else:
                await self._run(pwrite_all, self._fd, piece, off)

        def send(off: int, n: int) -> Awaitable[bool] | None:
            conn = self._conn()
            return (
                conn.send_write(off, view[off - offset : off - offset + n], fua) if conn else None
            )

        await self._replicate(offset, len(data), fua, local, send)

    async def write_zeroes(
        self, offset: int, length: int, fua: bool = False, may_trim: bool = True
    ) -> None:
        self._check(offset, length)

        async def local(off: int, n: int) -> None:
            await self._run(self._zero, off, n, may_trim)

        def send(off: int, n: int) -> Awaitable[bool] | None:
            conn = self._conn()
            return conn.send_zero(off, n, fua, trim=False) if conn else None

        await self._replicate(offset, length, fua, local, send)

    async def trim(self, offset: int, length: int, fua: bool = False) -> None:
        self._check(offset, length)
        if self._is_blockdev:
            return  # advisory; nothing changes, nothing to replicate

        async def local(off: int, n: int) -> None:
            await self._run(punch_hole, self._fd, off, n)

        def send(off: int, n: int) -> Awaitable[bool] | None:
            conn = self._conn()
            return conn.send_zero(off, n, fua, trim=True) if conn else None

        await self._replicate(offset, length, fua, local, send)

    async def flush(self) -> None:
        conn = self._conn()
        try:
            remote = conn.send_flush() if conn else None
        except ConnectionError:
            remote = None
        await self._run(os.fdatasync, self._fd)
        if remote is not None:
            await remote
        if self.node is not None:
            await self.node.gen_ready.wait()

    def _conn(self) -> Connection | None:
        return self.node.replicating() if self.node is not None else None

    async def _replicate(
        self,
        offset: int,
        length: int,
        fua: bool,
        local: Local,
        send: Callable[[int, int], Awaitable[bool] | None],
    ) -> None:
        node = self.node
        waits: list[Awaitable[bool]] = []
        for off, n in pieces(offset, length):
            if node is None:
                async with self.gate.writing(off, n):
                    self.store.bitmap.set_range(off, n)
                    await local(off, n)
                continue
            if not node.is_primary:
                raise OSError(errno.EROFS, "replica was demoted to Secondary: read-only")
            async with node.conflicts.app(off, n), self.gate.writing(off, n):
                self.store.bitmap.set_range(off, n)
                try:
                    fut = send(off, n)
                except ConnectionError:
                    fut = None  # link just died: the dirty bit stays, resync later
                if fut is not None:
                    waits.append(fut)
                await local(off, n)
        if fua:
            await self._run(os.fdatasync, self._fd)
        for fut in waits:
            await fut  # resolves False (degraded) instead of raising when the peer is lost
        if node is not None:
            await node.gen_ready.wait()

    # ------------------------------------------------------------------ Secondary
    # Blocking; run on the connection's single apply thread.
    def apply_write(self, offset: int, data: memoryview, fua: bool) -> None:
        self._check(offset, len(data))
        pwrite_all(self._fd, data, offset)
        if fua:
            os.fdatasync(self._fd)

    def apply_zero(self, offset: int, length: int, fua: bool, trim: bool) -> None:
        self._check(offset, length)
        if trim:
            if not self._is_blockdev:
                punch_hole(self._fd, offset, length)
        else:
            self._zero(offset, length, True)
        if fua:
            os.fdatasync(self._fd)

    def apply_flush(self) -> None:
        os.fdatasync(self._fd)

    async def read_local(self, offset: int, length: int) -> bytes:
        return await self.pread(offset, length)

    async def run_blocking(self, fn: Callable[..., object], *args: object) -> object:
        return await self._run(fn, *args)
