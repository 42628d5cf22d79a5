"""Replicated :class:`BlockBackend`: local disk + the peer, acknowledged per protocol A/B/C.

Write path (Primary): enter the AL gate, mark the blocks dirty, queue the write on the
replication link (in issue order, without waiting for earlier round trips), write locally,
then wait for what the protocol requires (A: handed to the socket, B: peer received,
C: peer wrote). The dirty bits are cleared only when the peer confirmed the write (and no
newer unconfirmed write covers the block), so a write that never reached the peer is
resynced later. If the peer is lost meanwhile the write completes locally (degraded).

The Secondary applies the peer's writes through :meth:`apply_write` & co. on a single
thread, which keeps the Primary's order without explicit epochs.

Backing-disk errors (diskerror.py). ``detach``: the disk is dropped (Diskless); the
failed request and every later one is served by the connected UpToDate peer (reads via
READ_REQ, writes replicated only, acknowledged per the protocol: with C the data is on
the peer's disk); without such a peer the request gets EIO. ``pass_on``: the request gets
EIO; a write that failed locally but reached the peer keeps its dirty bits (set again
after the peer's ack would have cleared them) so a resync repairs the local copy.
A Secondary whose disk fails drops the link (the Primary keeps the unacknowledged writes
dirty); detached, it refuses to reconnect until restarted on a working device.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from blockrepl.diskerror import OnIoError, is_device_error
from blockrepl.layout import BM_BYTES_PER_BIT
from blockrepl.localdisk import LocalDiskBackend, pieces, punch_hole, pwrite_all
from blockrepl.metadata import MetadataStore
from blockrepl.replication import diskless

if TYPE_CHECKING:
    from blockrepl.replication.node import ReplicaNode
    from blockrepl.replication.peer import Connection

INLINE_MAX = 1024 * 1024
Local = Callable[[int, int], Awaitable[None]]


def _eio(why: str) -> OSError:
    return OSError(errno.EIO, why)


class ReplicatedBackend(LocalDiskBackend):
    def __init__(
        self,
        store: MetadataStore,
        data_path: str,
        workers: int = 4,
        on_io_error: OnIoError = OnIoError.DETACH,
    ) -> None:
        super().__init__(store, data_path, workers, on_io_error)
        self.node: ReplicaNode | None = None

    # ------------------------------------------------------------------ disk errors
    def on_detached(self) -> None:
        node = self.node
        if node is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a Secondary's apply thread: the link belongs to the loop
            if node.conn is not None:
                node.conn.loop.call_soon_threadsafe(self.on_detached)
            return
        # Before any write goes to the peer alone: the peer must start tracking them.
        diskless.announce(node)
        conn = node.conn
        if conn is not None and node.sync_state is not None:
            conn.fail(ConnectionError("backing disk detached during a resync"))

    def _peer_for_diskless(self) -> Connection:
        node = self.node
        conn = diskless.peer_usable(node) if node is not None else None
        if conn is None:
            raise _eio("backing disk detached (Diskless) and no UpToDate peer is connected")
        return conn

    async def pread(self, offset: int, length: int) -> bytes:
        if not self.detached:
            try:
                return await super().pread(offset, length)
            except OSError as exc:
                if not (self.detached and is_device_error(exc)):
                    raise
        self._check(offset, length)
        conn = self._peer_for_diskless()
        try:
            return await diskless.read_via_peer(conn, offset, length)
        except ConnectionError as exc:
            raise _eio(f"Diskless: the peer was lost before it answered the read ({exc})") from exc

    async def read_local(self, offset: int, length: int) -> bytes:
        """This node's own copy (resync source, the peer's READ_REQ): never via the peer."""
        return await LocalDiskBackend.pread(self, offset, length)

    # ------------------------------------------------------------------ Primary
    async def pwrite(self, offset: int, data: bytes | bytearray, fua: bool = False) -> None:
        self._check(offset, len(data))
        view = memoryview(data)

        async def local(off: int, n: int) -> None:
            piece = view[off - offset : off - offset + n]
            if n <= INLINE_MAX:
                pwrite_all(self._fd, piece, off)  # page cache: cheaper than a thread hop
            else:
                await self._run(pwrite_all, self._fd, piece, off)
            self.unflushed.add(off, n)

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
            self.unflushed.add(off, n)

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
            self.unflushed.add(off, n)

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
        local_error: OSError | None = None
        if not self.detached:
            try:
                await self._sync()
            except OSError as exc:
                if not (self.detached and is_device_error(exc)):
                    local_error = exc  # pass_on: reported once the peer's flush is done
        remote_ok = await remote if remote is not None else False
        if local_error is not None:
            raise local_error
        if self.detached and not remote_ok:
            raise _eio("Diskless: the flush did not reach an UpToDate peer")
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
        if node is not None and not node.is_primary:
            raise OSError(errno.EROFS, "replica was demoted to Secondary: read-only")
        if self.detached:
            await self._replicate_only(offset, length, send)
            return
        if self.failure is not None and node is not None and diskless.peer_usable(node) is None:
            # pass_on left this disk Inconsistent; writing it alone would let the next
            # resync (peer = source) overwrite them (DRBD: on-no-data-accessible io-error).
            raise _eio("disk Inconsistent after an I/O error and no UpToDate peer connected")
        waits: list[Awaitable[bool]] = []
        unsent: list[tuple[int, int]] = []  # pieces only the local disk was to get
        failed: list[tuple[int, int]] = []
        error: OSError | None = None
        for off, n in pieces(offset, length):
            if self.detached:  # this or another request just detached the disk
                error = error or _eio("backing disk detached during the write")
                unsent.append((off, n))
                continue
            # Synchronous fast paths of conflicts.app / gate.writing (same semantics):
            # two async context managers per 4 KiB write cost more than the write itself.
            gate = self.gate
            if node is None:
                ext = gate.enter_hot(off, n) or await gate.enter(off, n)
                try:
                    self.store.bitmap.set_range(off, n)
                    await self._local(local, off, n)
                finally:
                    if (wake := gate.leave(ext)) is not None:
                        await wake
                continue
            conflicts = node.conflicts
            key = conflicts.app_enter(off, n)
            if key is None:
                key = await conflicts.app_wait(off, n)
            try:
                ext = gate.enter_hot(off, n) or await gate.enter(off, n)
                try:
                    if (off | n) % BM_BYTES_PER_BIT:
                        conflicts.note_partial(self.store.bitmap, off, n)
                    self.store.bitmap.set_range(off, n)
                    try:
                        fut = send(off, n)
                    except ConnectionError:
                        fut = None  # link just died: the dirty bit stays, resync later
                    if fut is not None:
                        waits.append(fut)
                    else:
                        unsent.append((off, n))
                    try:
                        await self._local(local, off, n)
                    except OSError as exc:
                        failed.append((off, n))
                        error = error or exc
                finally:
                    if (wake := gate.leave(ext)) is not None:
                        await wake
            finally:
                if (wake := conflicts.app_leave(key)) is not None:
                    await wake
        if fua and error is None:
            try:
                await self._sync()
            except OSError as exc:
                error = exc
        # Resolve False (degraded) instead of raising when the peer is lost.
        remote_ok = []
        for fut in waits:  # not an async comprehension: one coroutine layer less to resume
            remote_ok.append(await fut)
        if error is not None:
            for off, n in failed:
                self.store.bitmap.set_range(off, n)  # the peer's ack cleared them: resync
            if not self.detached or not is_device_error(error):
                raise error
            # detach: the peer must hold every piece, also those not sent yet.
            if unsent:
                await self._replicate_pieces(unsent, send)
            if not all(remote_ok):
                raise _eio("local disk failed and the peer did not confirm the write")
        if node is not None and not node.gen_ready.is_set():
            await node.gen_ready.wait()

    async def _local(self, local: Local, off: int, n: int) -> None:
        try:
            await local(off, n)
        except OSError as exc:
            if is_device_error(exc):
                await self.disk_error("write", exc, off, n)
            raise

    async def _replicate_only(
        self, offset: int, length: int, send: Callable[[int, int], Awaitable[bool] | None]
    ) -> None:
        """Diskless: the peer's copy is the only one; the peer marks its bitmap."""
        await self._replicate_pieces(pieces(offset, length), send)
        node = self.node
        if node is not None:
            await node.gen_ready.wait()

    async def _replicate_pieces(
        self, todo: list[tuple[int, int]], send: Callable[[int, int], Awaitable[bool] | None]
    ) -> None:
        node = self.node
        self._peer_for_diskless()
        assert node is not None
        waits: list[Awaitable[bool]] = []
        for off, n in todo:
            async with node.conflicts.app(off, n):
                try:
                    fut = send(off, n) if diskless.peer_usable(node) is not None else None
                except ConnectionError:
                    fut = None
                if fut is None:
                    raise _eio("Diskless: the write could not be sent to an UpToDate peer")
                waits.append(fut)
        results = [await fut for fut in waits]
        if not all(results):
            raise _eio("Diskless: the peer was lost before it confirmed the write")

    # ------------------------------------------------------------------ Secondary
    # Blocking; run on the connection's single apply thread.
    # A device error raises after being recorded: the link drops and the Primary keeps
    # the unacknowledged writes dirty.
    def apply_write(self, offset: int, data: memoryview, fua: bool) -> None:
        self._check(offset, len(data))
        self._applying("write", offset, len(data), pwrite_all, self._fd, data, offset)
        if fua:
            self.apply_flush()

    def apply_zero(self, offset: int, length: int, fua: bool, trim: bool) -> None:
        self._check(offset, length)
        if trim:
            if not self._is_blockdev:
                self._applying("trim", offset, length, punch_hole, self._fd, offset, length)
        else:
            self._applying("zero", offset, length, self._zero, offset, length, True)
        if fua:
            self.apply_flush()

    def apply_flush(self) -> None:
        epoch = self.unflushed.snapshot()
        self._applying("flush", None, 0, os.fdatasync, self._fd)
        self.unflushed.flushed(epoch)

    def _applying(
        self, op: str, offset: int | None, length: int, fn: Callable[..., object], *args: object
    ) -> None:
        if self.detached:
            raise _eio("backing disk detached after an I/O error: cannot apply the peer's write")
        try:
            fn(*args)
        except OSError as exc:
            if is_device_error(exc) and self.record_failure(op, exc, offset, length):
                self.persist_failure()
            raise
        if offset is not None:
            self.unflushed.add(offset, length)

    async def run_blocking(self, fn: Callable[..., object], *args: object) -> object:
        return await self._run(fn, *args)
