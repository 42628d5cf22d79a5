"""Checksum-based resync (DRBD ``csums-alg``): marked blocks whose data already match are
not sent.

Before the ordinary data pass (resync.py) the sync source walks its marked runs in chunks
of at most CHUNK_BITS blocks. For each chunk it reads its blocks and sends
RS_CSUM(offset, length, one digest per 4 KiB block, verify.py's truncated SHA-256); the
target reads its own blocks when the message arrives, compares, and answers
RS_CSUM_REPLY(offset, length, bitmask of the blocks that differ). The source clears the
bits of the equal blocks; the differing ones stay marked, so the data pass that follows
sends exactly those through the unchanged RS_DATA/RS_ACK path (bitmap persistence and
crash-resume work as before: a crash mid-pass only forgets which equal blocks were already
cleared, and those are compared again next time).

Only the source decides whether to use checksums (``--csums``; with
``--csums-after-crash-only`` only while either replica carries the crashed-primary flag,
i.e. until the first resync after the crash finished). The target answers RS_CSUM
whenever it arrives, so the two replicas need no agreement in the handshake.

Why application writes cannot make an equal-marked block wrong. Writes are replicated on
the same ordered link and the target applies them inline, in arrival order:

* The source reads a chunk and queues its RS_CSUM under ``Conflicts.resync`` exclusion,
  so every application write to that chunk was either written locally before the read and
  queued on the link before the RS_CSUM (the target applies it before it compares), or is
  queued after the RS_CSUM. The comparison therefore sees both replicas at the same point
  of the write stream.
* A write W queued after the RS_CSUM (it lands on the target after the comparison, maybe
  before the RS_DATA): W marks its blocks and counts them ``busy`` (unacknowledged)
  atomically when it is sent, and its WRITE_ACK can only come after the RS_CSUM_REPLY. So
  on the reply an equal block covered by W is busy and keeps its bit (W's own ack decides,
  as for RS_ACK); a differing block is sent later as RS_DATA, read under exclusion after W
  was written locally, so the RS_DATA carries W's data whether the target applies W before
  it (RS_DATA overwrites with the same newer data) or after it (W is newer: it wins).
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import TYPE_CHECKING

from blockrepl.generation import MdFlag
from blockrepl.layout import BM_BYTES_PER_BIT, ceil_div
from blockrepl.replication import wire
from blockrepl.replication.resync import (
    CHUNK_BITS,
    PERSIST_EVERY,
    WINDOW,
    ResyncSource,
    TokenBucket,
    persist,
)
from blockrepl.replication.verify import DIGEST_LEN, digest_blocks
from blockrepl.replication.wire import MsgType

if TYPE_CHECKING:
    from blockrepl.replication.handshake import Identity
    from blockrepl.replication.node import ReplicaNode
    from blockrepl.replication.peer import Connection

BLOCK = BM_BYTES_PER_BIT
MAX_LEN = CHUNK_BITS * BLOCK
_RANGE = struct.Struct(">QI")  # offset | length


# ---------------------------------------------------------------- pure parts
def wanted(node: ReplicaNode, peer: Identity) -> bool:
    cfg = node.cfg
    return use_csums(
        cfg.csums,
        cfg.csums_after_crash_only,
        node.store.sb.has(MdFlag.CRASHED_PRIMARY),
        peer.crashed_primary,
    )


def use_csums(csums: bool, after_crash_only: bool, self_crashed: bool, peer_crashed: bool) -> bool:
    """DRBD: csums-alg set, and with csums-after-crash-only a primary crashed (either side:
    the crashed node may end up source (rule 40) or target (rule 50))."""
    return csums and (not after_crash_only or self_crashed or peer_crashed)


def differing_mask(local: bytes, peer: bytes) -> bytes:
    """Bit i (LSB first, like BITMAP) set when block i's digests differ."""
    if len(local) != len(peer) or len(local) % DIGEST_LEN:
        raise ValueError(f"digest lists of {len(local)} and {len(peer)} bytes do not match")
    nblocks = len(local) // DIGEST_LEN
    mask = bytearray(ceil_div(nblocks, 8))
    for i in range(nblocks):
        at = i * DIGEST_LEN
        if local[at : at + DIGEST_LEN] != peer[at : at + DIGEST_LEN]:
            mask[i // 8] |= 1 << (i % 8)
    return bytes(mask)


def mask_bits(mask: bytes, nblocks: int) -> list[bool]:
    """Per block: True = differs."""
    return [bool(mask[i // 8] >> (i % 8) & 1) for i in range(nblocks)]


def _range(what: str, payload: bytes, size: int) -> tuple[int, int, int]:
    """Decode and check offset|length; returns (offset, length, blocks)."""
    if len(payload) < _RANGE.size:
        raise wire.BadPayload(
            f"{what} payload of {len(payload)} bytes is shorter than its {_RANGE.size}-byte "
            "offset|length header"
        )
    offset, length = _RANGE.unpack_from(payload)
    if offset % BLOCK or offset >= size:
        raise wire.BadPayload(
            f"{what} bytes 0-7 (offset) = {offset}: must be a multiple of {BLOCK} inside "
            f"the {size}-byte volume"
        )
    if not 0 < length <= MAX_LEN or offset + length > size:
        raise wire.BadPayload(
            f"{what} bytes 8-11 (length) = {length}: must be 1..{MAX_LEN} and end inside "
            f"the {size}-byte volume"
        )
    return int(offset), int(length), ceil_div(length, BLOCK)


def encode_csum(offset: int, length: int, digests: bytes) -> bytes:
    return _RANGE.pack(offset, length) + digests


def decode_csum(payload: bytes, size: int) -> tuple[int, int, bytes]:
    offset, length, nblocks = _range("RS_CSUM", payload, size)
    digests = bytes(payload[_RANGE.size :])
    if len(digests) != nblocks * DIGEST_LEN:
        raise wire.BadPayload(
            f"RS_CSUM bytes {_RANGE.size}.. carry {len(digests)} digest bytes; "
            f"{length} bytes of data need {nblocks} x {DIGEST_LEN} = {nblocks * DIGEST_LEN}"
        )
    return offset, length, digests


def encode_csum_reply(offset: int, length: int, mask: bytes) -> bytes:
    return _RANGE.pack(offset, length) + mask


def decode_csum_reply(payload: bytes, size: int) -> tuple[int, int, bytes]:
    offset, length, nblocks = _range("RS_CSUM_REPLY", payload, size)
    mask = bytes(payload[_RANGE.size :])
    want = ceil_div(nblocks, 8)
    if len(mask) != want:
        raise wire.BadPayload(
            f"RS_CSUM_REPLY bytes {_RANGE.size}.. carry a {len(mask)}-byte mask; "
            f"{nblocks} blocks need {want}"
        )
    if nblocks % 8 and mask[-1] >> (nblocks % 8):
        raise wire.BadPayload(
            f"RS_CSUM_REPLY byte {_RANGE.size + want - 1} sets bits past block {nblocks - 1}"
        )
    return offset, length, mask


def frame_len(payload_len: int) -> int:
    return wire.HEADER_SIZE + payload_len


# ---------------------------------------------------------------- the source
class CsumPass:
    """One pass over the source's marked blocks; clears the bits of equal blocks."""

    def __init__(self, source: ResyncSource) -> None:
        self.source = source
        self.conn = source.conn
        self.inflight: dict[int, int] = {}  # offset -> length, awaiting RS_CSUM_REPLY
        self.inflight_bytes = 0  # volume bytes the target still has to read and compare
        self.replied = asyncio.Event()

    async def run(self, bucket: TokenBucket) -> None:
        node = self.conn.node
        last_persist = time.monotonic()
        for first, count in list(node.store.bitmap.runs()):
            for b in range(first, first + count, CHUNK_BITS):
                await self._send(b, min(CHUNK_BITS, first + count - b), bucket)
                if time.monotonic() - last_persist > PERSIST_EVERY:
                    last_persist = time.monotonic()
                    await persist(node.store, node.disk.run_blocking)
        while self.inflight:
            self.replied.clear()
            await self.replied.wait()
        await persist(node.store, node.disk.run_blocking)

    async def _send(self, bit: int, nbits: int, bucket: TokenBucket) -> None:
        node, link = self.conn.node, self.conn.link
        off = bit * BLOCK
        length = min(nbits * BLOCK, node.disk.size - off)
        # The window bounds the target's outstanding reads, like RS_DATA's bounds buffers.
        while self.inflight_bytes + length > WINDOW and self.inflight:
            self.replied.clear()
            await self.replied.wait()
        # The rate counts what goes on the wire: the frame, not the data it stands for.
        size = frame_len(_RANGE.size + ceil_div(length, BLOCK) * DIGEST_LEN)
        bucket.rate = node.resync_rate
        await bucket.take(size)
        async with node.conflicts.resync(off, length):  # see the module doc
            data = await node.disk.read_local(off, length)
            digests = await node.disk.run_blocking(digest_blocks, data)
            assert isinstance(digests, bytes)
            self.inflight[off] = length
            self.inflight_bytes += length
            link.send(MsgType.RS_CSUM, encode_csum(off, length, digests))
        self.source.counters.csum_bytes += size
        await link.drain()

    def on_reply(self, offset: int, length: int, mask: bytes) -> None:
        if self.inflight.get(offset) != length:
            raise wire.BadPayload(
                f"RS_CSUM_REPLY for [{offset}, +{length}) that was never asked for"
            )
        del self.inflight[offset]
        self.inflight_bytes -= length
        node = self.conn.node
        bm, busy = node.store.bitmap, node.conflicts.busy
        first = offset // BLOCK
        counters = self.source.counters
        for i, differs in enumerate(mask_bits(mask, ceil_div(length, BLOCK))):
            b = first + i
            # busy: an application write sent after the RS_CSUM covers it; its ack decides.
            if not differs and not busy(b) and bm.test(b):
                bm.clear_range(b * BLOCK, BLOCK)
                node.conflicts.resynced(b)
                counters.skipped_blocks += 1
        self.source.progress()
        self.replied.set()


# ---------------------------------------------------------------- dispatch
async def on_message(conn: Connection, mtype: MsgType, payload: bytes) -> None:
    """From the connection's reader, awaited: the target compares in arrival order."""
    size = conn.node.disk.size
    if mtype is MsgType.RS_CSUM:
        if conn.target is None:
            raise wire.BadType("unexpected RS_CSUM: this replica is not sync target")
        await _answer(conn, *decode_csum(payload, size))
    else:
        source = conn.source
        if source is None or source.csum is None:
            raise wire.BadType("unexpected RS_CSUM_REPLY: no checksum resync is running")
        source.csum.on_reply(*decode_csum_reply(payload, size))


async def _answer(conn: Connection, offset: int, length: int, peer: bytes) -> None:
    target = conn.target
    assert target is not None
    node = conn.node
    data = await node.disk.read_local(offset, length)
    mask = differing_mask(digest_blocks(data), peer)
    first = offset // BLOCK
    counters = target.counters
    counters.csums = True
    for i, differs in enumerate(mask_bits(mask, ceil_div(length, BLOCK))):
        if not differs:
            node.store.bitmap.clear_range((first + i) * BLOCK, BLOCK)
            counters.skipped_blocks += 1
    reply = encode_csum_reply(offset, length, mask)
    conn.link.send(MsgType.RS_CSUM_REPLY, reply)
    counters.csum_bytes += frame_len(len(reply))
    target.progress()
    target.maybe_persist()
