"""Bitmap-driven resync: the source streams only marked blocks, rate-limited.

The source merges the target's bitmap into its own (bit-OR), starts a sync generation
(``B + UUID_NEW_BM_OFFSET``), sends the merged bitmap and the sync UUID, then reads and
sends each marked run in chunks of at most 1 MiB. A block's bit is cleared when the target
confirms it has written it (RS_ACK). Both sides persist their bitmaps every
``PERSIST_EVERY`` seconds, so a resync interrupted by a crash resumes where it stopped.
With ``--csums`` a checksum pass (csum_resync.py) first clears the marked blocks the
target already holds, so the data pass sends only the differing ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from blockrepl import generation as gen_ops
from blockrepl.bitmap import Bitmap
from blockrepl.generation import MdFlag
from blockrepl.layout import BM_BYTES_PER_BIT, ceil_div
from blockrepl.metadata import MetadataStore
from blockrepl.replication import wire
from blockrepl.replication.wire import MsgType
from blockrepl.superblock import Superblock

if TYPE_CHECKING:
    from blockrepl.replication.csum_resync import CsumPass
    from blockrepl.replication.peer import Connection

RunBlocking = Callable[..., Awaitable[Any]]
CHUNK_BITS = 256  # 1 MiB per RS_DATA frame at most
WINDOW = 16 * 1024 * 1024  # resync bytes in flight
PERSIST_EVERY = 0.5


def bitmap_bytes(bm: Bitmap) -> bytes:
    raw = b"".join(bm.page_payload(p) for p in range(bm.pages))
    return raw[: ceil_div(bm.nbits, 8)]


def merge_bitmap(bm: Bitmap, raw: bytes) -> None:
    """bm |= raw (the peer's bitmap); the length must match this volume exactly."""
    want = ceil_div(bm.nbits, 8)
    if len(raw) != want:
        raise wire.BadPayload(f"BITMAP payload is {len(raw)} bytes, this volume needs {want}")
    for idx, byte in enumerate(raw):
        if byte:
            for b in range(8):
                if byte >> b & 1:
                    bm.set_bits(range(idx * 8 + b, idx * 8 + b + 1))


class TokenBucket:
    """Fixed-rate limiter (DRBD's c-plan-ahead 0 mode); burst = 0.1 s worth."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    @property
    def burst(self) -> int:
        return max(self.rate // 10, CHUNK_BITS * BM_BYTES_PER_BIT)

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= n or self.tokens >= self.burst:
                self.tokens -= n
                return
            await asyncio.sleep((min(n, self.burst) - self.tokens) / self.rate)


@dataclass
class SyncCounters:
    """What one side of a resync moved, for status ``sync``/``last_sync``."""

    csums: bool = False  # checksum resync (csum_resync.py) was used
    skipped_blocks: int = 0  # marked blocks whose digests matched: never sent
    data_bytes: int = 0  # RS_DATA data bytes (sent by the source, written by the target)
    csum_bytes: int = 0  # checksum frames this side sent (RS_CSUM or RS_CSUM_REPLY)

    def as_status(self) -> dict[str, Any]:
        return {
            "csums": self.csums,
            "skipped_equal_blocks": self.skipped_blocks,
            "skipped_equal_bytes": self.skipped_blocks * BM_BYTES_PER_BIT,
            "data_bytes": self.data_bytes,
            "csum_bytes": self.csum_bytes,
        }

    def publish(self, into: dict[str, Any] | None) -> None:
        if into is not None:
            into.update(self.as_status())


async def persist(store: MetadataStore, run: RunBlocking, sb: Superblock | None = None) -> None:
    """Write the dirty bitmap pages (snapshot taken now) and optionally a superblock."""
    await run(store.write_bitmap_snapshot, store.bitmap_snapshot())
    if sb is not None:
        await run(store.write_superblock, sb)


class ResyncSource:
    def __init__(self, conn: Connection, full: bool) -> None:
        self.conn = conn
        self.full = full
        self.inflight: dict[int, int] = {}
        self.inflight_bytes = 0
        self.acked = asyncio.Event()
        self.sent_bytes = 0
        self.counters = SyncCounters()
        self.csum: CsumPass | None = None

    def progress(self) -> None:
        node = self.conn.node
        node.sync_progress(self.sent_bytes + self.counters.skipped_blocks * BM_BYTES_PER_BIT)
        self.counters.publish(node.sync_state)

    async def run(self, peer_bitmap: bytes) -> None:
        conn, node = self.conn, self.conn.node
        store = node.store
        merge_bitmap(store.bitmap, peer_bitmap)
        if self.full:
            store.bitmap.set_all()
        node.conflicts.mark_stale(store.bitmap)
        gen = gen_ops.start_resync_as_source(store.generation)
        await persist(store, node.disk.run_blocking, replace(store.sb, generation=gen))
        conn.link.send(MsgType.BITMAP, bitmap_bytes(store.bitmap))
        conn.link.send(MsgType.SYNC_UUID, wire.u64(gen.bitmap))
        node.sync_started(store.bitmap.count() * BM_BYTES_PER_BIT, "SyncSource")
        bucket = TokenBucket(node.resync_rate)
        from blockrepl.replication import csum_resync  # late: it imports this module

        self.counters.csums = csum_resync.wanted(node, conn.peer)
        self.counters.publish(node.sync_state)
        if self.counters.csums:
            self.csum = csum_resync.CsumPass(self)
            await self.csum.run(bucket)  # leaves only the differing blocks marked
        last_persist = time.monotonic()
        while store.bitmap.count():
            sent_any = False
            for first, count in list(store.bitmap.runs()):
                for b in range(first, first + count, CHUNK_BITS):
                    n = min(CHUNK_BITS, first + count - b)
                    if all(conn.node.conflicts.busy(x) for x in range(b, b + n)):
                        continue
                    await self._send_chunk(b, n, bucket)
                    sent_any = True
                    if time.monotonic() - last_persist > PERSIST_EVERY:
                        last_persist = time.monotonic()
                        await persist(store, node.disk.run_blocking)
            await self._drain_acks()
            if not sent_any:
                await asyncio.sleep(0.01)  # only blocks with unacked app writes remain
        gen = gen_ops.finish_resync_as_source(store.generation)
        sb = replace(store.sb, generation=gen).with_flags(clear=MdFlag.CRASHED_PRIMARY)
        await persist(store, node.disk.run_blocking, sb)
        conn.link.send(MsgType.SYNC_DONE, wire.encode_gen(gen.as_tuple()))
        node.sync_finished(self.sent_bytes)
        self.counters.publish(node.last_sync)

    async def _send_chunk(self, bit: int, nbits: int, bucket: TokenBucket) -> None:
        conn = self.conn
        off = bit * BM_BYTES_PER_BIT
        length = min(nbits * BM_BYTES_PER_BIT, conn.node.disk.size - off)
        while self.inflight_bytes + length > WINDOW and self.inflight:
            self.acked.clear()
            await self.acked.wait()
        bucket.rate = self.conn.node.resync_rate
        await bucket.take(length)
        async with conn.node.conflicts.resync(off, length):
            data = await conn.node.disk.read_local(off, length)
            self.inflight[off] = length
            self.inflight_bytes += length
            conn.link.send_parts(MsgType.RS_DATA, wire.rs_data_head(off), data)
        self.sent_bytes += length
        self.counters.data_bytes += length
        self.progress()
        await conn.link.drain()

    async def _drain_acks(self) -> None:
        while self.inflight:
            self.acked.clear()
            await self.acked.wait()

    def on_ack(self, offset: int, length: int) -> None:
        if self.inflight.pop(offset, None) is None:
            raise wire.BadPayload(f"RS_ACK for offset {offset} that was never sent")
        self.inflight_bytes -= length
        bm = self.conn.node.store.bitmap
        first = offset // BM_BYTES_PER_BIT
        blocks = range(first, first + ceil_div(length, BM_BYTES_PER_BIT))
        conflicts = self.conn.node.conflicts
        busy = conflicts.busy
        if not any(busy(b) for b in blocks):
            bm.clear_range(offset, len(blocks) * BM_BYTES_PER_BIT)
            if conflicts.stale:
                conflicts.stale.difference_update(blocks)
            self.acked.set()
            return
        for b in blocks:
            if not busy(b):  # a newer app write covers it; its own ack decides
                bm.clear_range(b * BM_BYTES_PER_BIT, BM_BYTES_PER_BIT)
                conflicts.resynced(b)
        self.acked.set()


class ResyncTarget:
    """The receiving half; the Connection feeds it SYNC_UUID, RS_DATA and SYNC_DONE."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.received = 0
        self.last_persist = time.monotonic()
        self.counters = SyncCounters()

    def progress(self) -> None:
        node = self.conn.node
        node.sync_progress(self.received + self.counters.skipped_blocks * BM_BYTES_PER_BIT)
        self.counters.publish(node.sync_state)

    def maybe_persist(self) -> None:
        if time.monotonic() - self.last_persist > PERSIST_EVERY:
            self.last_persist = time.monotonic()
            self.conn.spawn(persist(self.conn.node.store, self.conn.run_apply))

    async def on_sync_uuid(self, sync_uuid: int) -> None:
        node = self.conn.node
        store = node.store
        gen = gen_ops.receive_sync_uuid(store.generation, sync_uuid, primary=False)
        sb = replace(store.sb, generation=gen).with_flags(clear=MdFlag.CONSISTENT)
        await persist(store, self.conn.run_apply, sb)
        node.sync_started(store.bitmap.count() * BM_BYTES_PER_BIT, "SyncTarget")

    def on_written(self, offset: int, length: int) -> None:
        node = self.conn.node
        node.store.bitmap.clear_range(offset, length)
        self.received += length
        self.counters.data_bytes += length
        self.progress()
        self.conn.link.send(MsgType.RS_ACK, wire.encode_rs_ack(offset, length))
        self.maybe_persist()

    async def on_done(self, peer_gen: tuple[int, int, int, int]) -> None:
        node = self.conn.node
        store = node.store
        await self.conn.run_apply(node.disk.apply_flush)  # all resync data durable first
        store.bitmap.clear_range(0, node.disk.size)
        node.conflicts.stale.clear()
        gen = gen_ops.finish_resync_as_target(
            store.generation, gen_ops.Generation(*peer_gen), primary=False
        )
        sb = replace(store.sb, generation=gen).with_flags(
            set_=MdFlag.CONSISTENT | MdFlag.WAS_UP_TO_DATE, clear=MdFlag.CRASHED_PRIMARY
        )
        await persist(store, self.conn.run_apply, sb)
        node.sync_finished(self.received)
        self.counters.publish(node.last_sync)
        # No longer a target: promote() refuses while conn.target is set.
        self.conn.target = None
