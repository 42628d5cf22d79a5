"""One established (authenticated, handshaken) peer connection.

Primary side: numbers each replicated request (``seq``), keeps it until the peer's
WRITE_ACK (clears its dirty bits) and resolves the future the protocol waits on.
Secondary side: applies DATA/ZERO/RS_DATA inline in arrival order (that is the write
ordering guarantee) and acknowledges; fdatasync for FUA/FLUSH runs on one apply thread.
A keepalive task pings every ``ping_interval`` and declares the peer gone after
``timeout`` seconds without any frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from blockrepl.layout import BM_BYTES_PER_BIT
from blockrepl.replication import diskless, wire
from blockrepl.replication.handshake import ConnectDecision, Identity, SyncAction
from blockrepl.replication.link import PeerError, ReplicationLink
from blockrepl.replication.resync import ResyncSource, ResyncTarget, merge_bitmap
from blockrepl.replication.wire import DFlag, MsgType

if TYPE_CHECKING:
    from blockrepl.replication.node import ReplicaNode

log = logging.getLogger(__name__)


class PeerTimeout(PeerError):
    pass


@dataclass
class _Pending:
    offset: int
    length: int
    recv: asyncio.Future[bool] | None = None
    done: asyncio.Future[bool] | None = None
    extra: list[asyncio.Future[bool]] = field(default_factory=list)


def _resolve(fut: asyncio.Future[bool] | None, value: bool) -> None:
    if fut is not None and not fut.done():
        fut.set_result(value)


class Connection:
    def __init__(
        self, node: ReplicaNode, link: ReplicationLink, peer: Identity, decision: ConnectDecision
    ) -> None:
        self.node = node
        self.link = link
        self.peer = peer
        self.decision = decision
        self.protocol = node.cfg.protocol
        self.peer_primary = peer.primary
        self.peer_secondary = asyncio.Event()  # set by the peer's STATE "secondary"
        link.ack_ranges = peer.ack_ranges
        self.loop = asyncio.get_running_loop()
        self.seq = 0
        self.pending: dict[int, _Pending] = {}
        self.flushes: dict[int, asyncio.Future[bool]] = {}
        self._apply = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blockrepl-apply")
        self._tasks: set[asyncio.Task[Any]] = set()
        self.source: ResyncSource | None = None
        self.target: ResyncTarget | None = None
        self._peer_bitmap: asyncio.Future[bytes] = self.loop.create_future()
        self.failure: BaseException | None = None
        self._closed = asyncio.Event()
        self.peer_disk = "UpToDate"  # as announced in STATE ("Diskless" after a detach)
        self.reads: dict[int, asyncio.Future[bytes]] = {}  # READ_REQ id -> data (diskless)
        self.read_seq = 0

    # ------------------------------------------------------------------ lifecycle
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.fail(task.exception())

    def fail(self, exc: BaseException | None) -> None:
        if self.failure is None:
            self.failure = exc or ConnectionError("closed")
        self._closed.set()
        self.peer_secondary.set()  # no more news of the peer's role on this link

    async def run(self) -> None:
        """Serve until the link fails; raises the reason."""
        self.spawn(self._reader())
        self.spawn(self._keepalive())
        if self.decision.action is SyncAction.TARGET:
            self.target = ResyncTarget(self)
            self.link.send(MsgType.BITMAP, _bitmap_bytes(self.node))
        elif self.decision.action is SyncAction.SOURCE:
            self.source = ResyncSource(self, self.decision.full)
            self.spawn(self._run_source())
        await self._closed.wait()
        await self.close()
        assert self.failure is not None
        raise self.failure

    async def _run_source(self) -> None:
        assert self.source is not None
        await self.source.run(await self._peer_bitmap)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.close()
        # Everything the peer never confirmed keeps its dirty bits: it is resynced later.
        for p in self.pending.values():
            self.node.conflicts.done(p.offset, p.length)
            _resolve(p.recv, False)
            _resolve(p.done, False)
        self.pending.clear()
        for fut in self.flushes.values():
            _resolve(fut, False)
        self.flushes.clear()
        for rfut in self.reads.values():
            if not rfut.done():
                rfut.set_exception(ConnectionError("peer lost before it answered a read"))
        self.reads.clear()
        await self.loop.run_in_executor(None, partial(self._apply.shutdown, wait=True))

    async def run_apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.loop.run_in_executor(self._apply, partial(fn, *args))

    # ------------------------------------------------------------------ Primary side
    def _next(self, offset: int, length: int) -> tuple[int, _Pending]:
        self.seq += 1
        p = _Pending(offset, length)
        if self.protocol == "B":
            p.recv = self.loop.create_future()
        elif self.protocol == "C":
            p.done = self.loop.create_future()
        self.pending[self.seq] = p
        self.node.conflicts.sent(offset, length)
        return self.seq, p

    def _wait(self, p: _Pending) -> Awaitable[bool]:
        fut = p.recv if self.protocol == "B" else p.done
        if fut is not None:
            return fut
        return self._sent()  # protocol A: handed to the socket

    async def _sent(self) -> bool:
        try:
            await self.link.drain()
            return True
        except (ConnectionError, OSError):
            return False

    def send_write(self, offset: int, data: memoryview, fua: bool) -> Awaitable[bool]:
        seq, p = self._next(offset, len(data))
        hdr = wire.data_header(seq, offset, DFlag.FUA if fua else 0)
        self.link.send_parts(MsgType.DATA, hdr, data)
        return self._wait(p)

    def send_zero(self, offset: int, length: int, fua: bool, trim: bool) -> Awaitable[bool]:
        seq, p = self._next(offset, length)
        flags = (DFlag.FUA if fua else 0) | (DFlag.TRIM if trim else 0)
        self.link.send(MsgType.ZERO, wire.encode_zero(seq, offset, length, flags))
        return self._wait(p)

    def send_flush(self) -> Awaitable[bool]:
        self.seq += 1
        self.link.send(MsgType.FLUSH, wire.u64(self.seq))
        if self.protocol == "A":
            return self._sent()
        fut: asyncio.Future[bool] = self.loop.create_future()
        self.flushes[self.seq] = fut
        return fut

    def _on_write_ack(self, seq: int, written: bool) -> None:
        p = self.pending.get(seq)
        if p is None:
            raise wire.BadPayload(f"ack for unknown request seq {seq}")
        _resolve(p.recv, True)
        if not written:
            return
        del self.pending[seq]
        conflicts = self.node.conflicts
        free = conflicts.done(p.offset, p.length)
        clear = conflicts.clearable(p.offset, p.length, free)
        bm = self.node.store.bitmap
        if clear and clear[-1] - clear[0] + 1 == len(clear):
            bm.clear_range(clear[0] * BM_BYTES_PER_BIT, len(clear) * BM_BYTES_PER_BIT)
        else:
            for b in clear:
                bm.clear_range(b * BM_BYTES_PER_BIT, BM_BYTES_PER_BIT)
        _resolve(p.done, True)

    # ------------------------------------------------------------------ receive
    async def _reader(self) -> None:
        size = self.node.disk.size
        while True:
            mtype, payload = await self.link.recv()
            if mtype is MsgType.DATA:
                d = wire.decode_data(payload, size)
                self._require_secondary(mtype)
                fua = bool(int(d.dflags) & wire.FUA_BIT)
                if self.peer_disk == "Diskless":
                    await diskless.track_for_peer(self.node, d.offset, len(d.data))
                await self._submit(
                    d.seq, self.node.disk.apply_write, d.offset, d.data, False, fua=fua
                )
                del d
                self.link.release(payload)  # written (apply_write is synchronous)
            elif mtype is MsgType.WRITE_ACK_RANGE:
                for seq in wire.decode_ack_range(payload):
                    self._on_write_ack(seq, True)
            elif mtype is MsgType.ZERO:
                z = wire.decode_zero(payload, size)
                self._require_secondary(mtype)
                fua, trim = bool(z.dflags & DFlag.FUA), bool(z.dflags & DFlag.TRIM)
                if self.peer_disk == "Diskless":
                    await diskless.track_for_peer(self.node, z.offset, z.length)
                await self._submit(
                    z.seq, self.node.disk.apply_zero, z.offset, z.length, False, trim, fua=fua
                )
            elif mtype is MsgType.FLUSH:
                seq = wire.decode_u64(payload)
                fut = self.loop.run_in_executor(self._apply, self.node.disk.apply_flush)
                fut.add_done_callback(partial(self._applied, MsgType.FLUSH_ACK, seq))
            elif mtype in (MsgType.RECV_ACK, MsgType.WRITE_ACK):
                self._on_write_ack(wire.decode_u64(payload), mtype is MsgType.WRITE_ACK)
            elif mtype is MsgType.FLUSH_ACK:
                _resolve(self.flushes.pop(wire.decode_u64(payload), None), True)
            elif mtype is MsgType.PING:
                self.link.send(MsgType.PONG, payload)
            elif mtype is MsgType.PONG:
                pass
            elif mtype is MsgType.STATE:
                self._on_state(payload)
            elif mtype is MsgType.READ_REQ:
                self.spawn(diskless.serve_read(self, *wire.decode_read_req(payload, size)))
            elif mtype is MsgType.READ_REPLY:
                diskless.on_read_reply(self, payload)
            else:
                await self._on_sync_message(mtype, payload, size)

    async def _on_sync_message(self, mtype: MsgType, payload: bytes, size: int) -> None:
        if mtype is MsgType.BITMAP:
            if self.source is not None and not self._peer_bitmap.done():
                self._peer_bitmap.set_result(payload)
            elif self.target is not None:
                merge_bitmap(self.node.store.bitmap, payload)
            else:
                raise wire.BadType("unexpected BITMAP: no resync was agreed")
        elif mtype is MsgType.SYNC_UUID and self.target is not None:
            await self.target.on_sync_uuid(wire.decode_u64(payload))
        elif mtype is MsgType.RS_DATA and self.target is not None:
            off, data = wire.decode_rs_data(payload, size)
            self.node.disk.apply_write(off, data, False)
            self.target.on_written(off, len(data))
            del data
            self.link.release(payload)  # written (apply_write is synchronous)
        elif mtype is MsgType.RS_ACK and self.source is not None:
            self.source.on_ack(*wire.decode_rs_ack(payload))
        elif mtype is MsgType.SYNC_DONE and self.target is not None:
            self.spawn(self.target.on_done(wire.decode_gen(payload)))
        elif mtype in (MsgType.VERIFY_REQ, MsgType.VERIFY_REPLY):
            from blockrepl.replication import verify

            await verify.on_message(self, mtype, payload)  # awaited: keeps arrival order
        elif mtype in (MsgType.RS_CSUM, MsgType.RS_CSUM_REPLY):
            from blockrepl.replication import csum_resync

            await csum_resync.on_message(self, mtype, payload)  # awaited: arrival order
        else:
            raise wire.BadType(f"unexpected {mtype.name} in this connection state")

    def _require_secondary(self, mtype: MsgType) -> None:
        if self.node.is_primary:
            raise wire.BadType(f"{mtype.name} received by a Primary: two Primaries?")

    async def _submit(self, seq: int, fn: Callable[..., None], *args: Any, fua: bool) -> None:
        """Apply inline, in arrival order (page-cache writes are cheaper than a thread hop);
        only the fdatasync of a FUA write goes to the apply thread."""
        if self.protocol == "B":
            self.link.send(MsgType.RECV_ACK, wire.u64(seq))
        fn(*args)
        if fua:
            fut = self.loop.run_in_executor(self._apply, self.node.disk.apply_flush)
            fut.add_done_callback(partial(self._applied, MsgType.WRITE_ACK, seq))
        else:
            self.link.send_write_ack(seq)

    def _applied(self, ack: MsgType, seq: int, fut: asyncio.Future[None]) -> None:
        if self._closed.is_set() or fut.cancelled():
            return
        if fut.exception() is not None:
            # No negative ack: dropping the link keeps the Primary's dirty bits set.
            self.fail(fut.exception())
            return
        try:
            if ack is MsgType.WRITE_ACK:
                self.link.send_write_ack(seq)
            else:
                self.link.send(ack, wire.u64(seq))
        except ConnectionError as exc:
            self.fail(exc)

    def _on_state(self, payload: bytes) -> None:
        import json

        try:
            role = json.loads(payload)["role"]
        except (ValueError, KeyError, TypeError):
            raise wire.BadPayload('STATE payload must be JSON {"role": ...}') from None
        if role not in ("primary", "secondary"):
            raise wire.BadPayload(f"STATE role {role!r} is not primary/secondary")
        self.peer_primary = role == "primary"
        if not self.peer_primary:
            self.peer_secondary.set()
        diskless.on_peer_state(self, json.loads(payload))

    async def _keepalive(self) -> None:
        cfg = self.node.cfg
        nonce = 0
        while True:
            await asyncio.sleep(cfg.ping_interval)
            idle = time.monotonic() - self.link.last_rx
            if idle > cfg.timeout:
                raise PeerTimeout(f"no frame from the peer for {idle:.1f} s: peer declared gone")
            nonce += 1
            self.link.send(MsgType.PING, wire.u64(nonce))


def _bitmap_bytes(node: ReplicaNode) -> bytes:
    from blockrepl.replication.resync import bitmap_bytes

    return bitmap_bytes(node.store.bitmap)
