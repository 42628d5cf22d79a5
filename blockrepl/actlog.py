"""Activity log: the set of "hot" 4 MiB extents that may hold writes the peer lacks.

On disk: a ring of ``al_slots`` transaction blocks. Each transaction is a full snapshot
of the active set (bounded by ``al_extents`` <= 1000, so it fits one block):
``b"BRAL"`` | u32 count | u64 sequence | u32 extent numbers... | zero padding |
SHA-256 of the first 4064 bytes. Transaction ``seq`` goes to slot ``seq % al_slots``; the
valid block with the highest sequence is the current log. A torn write of the newest
transaction therefore falls back to the previous snapshot, which is safe because data
writes to a newly activated extent start only after its transaction is durable.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from blockrepl.errors import MetadataCorruptError
from blockrepl.layout import AL_EXTENT_SIZE, AL_MAX_EXTENTS_LIMIT, BLOCK

AL_MAGIC = b"BRAL"
_HDR = struct.Struct(">4sIQ")
_DIGEST = 32


def encode_al_transaction(seq: int, extents: Iterable[int]) -> bytes:
    ext = sorted(set(extents))
    if len(ext) > AL_MAX_EXTENTS_LIMIT:
        raise ValueError(f"{len(ext)} active extents exceed the limit {AL_MAX_EXTENTS_LIMIT}")
    body = _HDR.pack(AL_MAGIC, len(ext), seq) + struct.pack(f">{len(ext)}I", *ext)
    body = body.ljust(BLOCK - _DIGEST, b"\0")
    return body + hashlib.sha256(body).digest()


def decode_al_transaction(block: bytes, where: str, total_extents: int) -> tuple[int, list[int]]:
    """Return (seq, extents) or raise MetadataCorruptError naming what is wrong."""
    if len(block) != BLOCK:
        raise MetadataCorruptError(f"{where}: short read ({len(block)} of {BLOCK} bytes)")
    magic, count, seq = _HDR.unpack_from(block)
    if magic != AL_MAGIC:
        raise MetadataCorruptError(f"{where}: bad magic {magic!r} (expected {AL_MAGIC!r})")
    body = block[: BLOCK - _DIGEST]
    if hashlib.sha256(body).digest() != block[BLOCK - _DIGEST :]:
        raise MetadataCorruptError(f"{where}: SHA-256 checksum mismatch; torn or corrupted write")
    if count > AL_MAX_EXTENTS_LIMIT:
        raise MetadataCorruptError(f"{where}: extent count {count} > {AL_MAX_EXTENTS_LIMIT}")
    extents = list(struct.unpack_from(f">{count}I", block, _HDR.size))
    bad = [e for e in extents if e >= total_extents]
    if bad:
        raise MetadataCorruptError(
            f"{where}: extent {bad[0]} beyond the device ({total_extents} extents)"
        )
    return seq, extents


def extents_for(offset: int, length: int) -> range:
    if length <= 0:
        return range(0)
    return range(offset // AL_EXTENT_SIZE, (offset + length - 1) // AL_EXTENT_SIZE + 1)


@dataclass(frozen=True)
class AlPlan:
    """What an activation needs: extents to add and cold ones to evict (LRU order)."""

    add: tuple[int, ...]
    evict: tuple[int, ...]

    @property
    def needs_transaction(self) -> bool:
        return bool(self.add or self.evict)


class ActivityLog:
    """Pure in-memory LRU of active extents with in-flight reference counts."""

    def __init__(self, max_extents: int, active: Iterable[int] = ()) -> None:
        self.max_extents = max_extents
        self._lru: OrderedDict[int, int] = OrderedDict((e, 0) for e in active)

    @property
    def active(self) -> list[int]:
        return sorted(self._lru)

    def is_active(self, extent: int) -> bool:
        return extent in self._lru

    def plan(self, wanted: Iterable[int]) -> AlPlan | None:
        """None means: not enough idle extents to evict now; wait for writes to finish."""
        want = list(dict.fromkeys(wanted))
        if len(want) > self.max_extents:
            raise ValueError(f"request spans {len(want)} extents > al_extents {self.max_extents}")
        add = tuple(e for e in want if e not in self._lru)
        room = self.max_extents - len(self._lru)
        need = len(add) - room
        evict: list[int] = []
        if need > 0:
            for extent, refs in self._lru.items():
                if len(evict) == need:
                    break
                if refs == 0 and extent not in want:
                    evict.append(extent)
            if len(evict) < need:
                return None
        return AlPlan(add=add, evict=tuple(evict))

    def snapshot_after(self, plan: AlPlan) -> list[int]:
        return sorted((set(self._lru) - set(plan.evict)) | set(plan.add))

    def apply(self, plan: AlPlan) -> None:
        for e in plan.evict:
            del self._lru[e]
        for e in plan.add:
            self._lru[e] = 0

    def acquire(self, extents: Iterable[int]) -> None:
        for e in extents:
            self._lru[e] += 1
            self._lru.move_to_end(e)

    def release(self, extents: Iterable[int]) -> None:
        for e in extents:
            self._lru[e] -= 1
            if self._lru[e] < 0:
                raise RuntimeError(f"AL extent {e} released more often than acquired")

    def in_flight(self) -> int:
        return sum(self._lru.values())
