"""Dirty bitmap: one bit per 4 KiB of data, stored as checksummed double-buffered pages.

Page slot (4096 bytes): ``b"BRBM"`` | u32 page number | u64 sequence | 4048 bytes of bits
(LSB-first within a byte; bit n = data block n) | SHA-256 of the preceding 4064 bytes.
Each page has two slots; a write goes to the slot holding the older sequence, so a torn
write leaves the previous version intact.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator

from blockrepl.errors import MetadataCorruptError
from blockrepl.layout import (
    BLOCK,
    BM_BITS_PER_PAGE,
    BM_BYTES_PER_BIT,
    BM_PAGE_DIGEST,
    BM_PAGE_HEADER,
    BM_PAGE_PAYLOAD,
    ceil_div,
)

PAGE_MAGIC = b"BRBM"
_HDR = struct.Struct(">4sIQ")


def encode_page(page: int, seq: int, payload: bytes) -> bytes:
    if len(payload) != BM_PAGE_PAYLOAD:
        raise ValueError(f"bitmap page payload must be {BM_PAGE_PAYLOAD} bytes")
    body = _HDR.pack(PAGE_MAGIC, page, seq) + payload
    return body + hashlib.sha256(body).digest()


def decode_page(block: bytes, page: int, where: str) -> tuple[int, bytes]:
    """Return (seq, payload) or raise MetadataCorruptError naming the problem."""
    if len(block) != BLOCK:
        raise MetadataCorruptError(f"{where}: short read ({len(block)} of {BLOCK} bytes)")
    magic, number, seq = _HDR.unpack_from(block)
    if magic != PAGE_MAGIC:
        raise MetadataCorruptError(f"{where}: bad magic {magic!r} (expected {PAGE_MAGIC!r})")
    body = block[: BLOCK - BM_PAGE_DIGEST]
    if hashlib.sha256(body).digest() != block[BLOCK - BM_PAGE_DIGEST :]:
        raise MetadataCorruptError(f"{where}: SHA-256 checksum mismatch; torn or corrupted write")
    if number != page:
        raise MetadataCorruptError(f"{where}: holds page number {number}, expected {page}")
    return seq, block[BM_PAGE_HEADER : BLOCK - BM_PAGE_DIGEST]


class Bitmap:
    """In-memory dirty bitmap that remembers which pages changed since the last flush."""

    def __init__(self, nbits: int, pages: int) -> None:
        if ceil_div(nbits, BM_BITS_PER_PAGE) > pages:
            raise ValueError(f"{nbits} bits do not fit in {pages} pages")
        self.nbits = nbits
        self.pages = pages
        self._bits = bytearray(pages * BM_PAGE_PAYLOAD)
        self._dirty_pages: set[int] = set()
        self._count = 0

    # --- persistence helpers -------------------------------------------------
    def page_payload(self, page: int) -> bytes:
        start = page * BM_PAGE_PAYLOAD
        return bytes(self._bits[start : start + BM_PAGE_PAYLOAD])

    def load_page(self, page: int, payload: bytes) -> None:
        start = page * BM_PAGE_PAYLOAD
        self._bits[start : start + BM_PAGE_PAYLOAD] = payload
        self._mask_tail()
        self._count = sum(b.bit_count() for b in self._bits)

    def _mask_tail(self) -> None:
        # Bits past the end of the device must stay 0 so counts are exact.
        total = len(self._bits) * 8
        for bit in range(self.nbits, min(total, ceil_div(self.nbits, 8) * 8)):
            self._bits[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF
        self._bits[ceil_div(self.nbits, 8) :] = bytes(len(self._bits) - ceil_div(self.nbits, 8))

    def dirty_pages(self) -> list[int]:
        return sorted(self._dirty_pages)

    def mark_clean(self, pages: list[int]) -> None:
        self._dirty_pages.difference_update(pages)

    def mark_all_pages_dirty(self) -> None:
        self._dirty_pages = set(range(self.pages))

    # --- bit operations --------------------------------------------------------
    def count(self) -> int:
        return self._count

    def test(self, bit: int) -> bool:
        return bool(self._bits[bit >> 3] >> (bit & 7) & 1)

    def bits_for_range(self, offset: int, length: int) -> range:
        if length <= 0:
            return range(0)
        first = offset // BM_BYTES_PER_BIT
        last = (offset + length - 1) // BM_BYTES_PER_BIT
        return range(first, min(last + 1, self.nbits))

    def set_range(self, offset: int, length: int) -> None:
        """Mark every 4 KiB block touched by [offset, offset+length) out of sync."""
        self._change(self.bits_for_range(offset, length), True)

    def clear_range(self, offset: int, length: int) -> None:
        """Clear only blocks fully covered by the range (partial blocks stay dirty)."""
        first = ceil_div(offset, BM_BYTES_PER_BIT)
        end = (offset + length) // BM_BYTES_PER_BIT
        self._change(range(first, min(end, self.nbits)), False)

    def set_bits(self, bits: range) -> None:
        self._change(range(bits.start, min(bits.stop, self.nbits)), True)

    def set_all(self) -> None:
        self._change(range(self.nbits), True)

    def _change(self, bits: range, value: bool) -> None:
        start, stop = bits.start, bits.stop
        if stop - start == 1:  # one 4 KiB block: every random 4 KiB write, twice
            self._flip(start, value)
            return
        if stop <= start:
            return
        # Bit-by-bit for the ragged edges, whole bytes in between (a full-device set_all
        # on 1 TiB is 2^28 bits; per-bit Python would take minutes).
        head_end = min(stop, (start + 7) // 8 * 8)
        tail_start = max(head_end, stop // 8 * 8)
        for bit in range(start, head_end):
            self._flip(bit, value)
        if tail_start > head_end:
            lo, hi = head_end // 8, tail_start // 8
            fill = 0xFF if value else 0x00
            before = sum(b.bit_count() for b in self._bits[lo:hi])
            self._bits[lo:hi] = bytes([fill]) * (hi - lo)
            after = (hi - lo) * 8 if value else 0
            if before != after:
                self._count += after - before
                first_page = head_end // BM_BITS_PER_PAGE
                last_page = (tail_start - 1) // BM_BITS_PER_PAGE
                self._dirty_pages.update(range(first_page, last_page + 1))
        for bit in range(tail_start, stop):
            self._flip(bit, value)

    def _flip(self, bit: int, value: bool) -> None:
        idx, mask = bit >> 3, 1 << (bit & 7)
        if bool(self._bits[idx] & mask) != value:
            self._bits[idx] ^= mask
            self._count += 1 if value else -1
            self._dirty_pages.add(bit // BM_BITS_PER_PAGE)

    def iter_set(self) -> Iterator[int]:
        for idx, byte in enumerate(self._bits):
            if byte:
                for b in range(8):
                    if byte >> b & 1:
                        yield idx * 8 + b

    def runs(self) -> Iterator[tuple[int, int]]:
        """Yield (first_bit, count) for each run of set bits."""
        start = prev = -2
        for bit in self.iter_set():
            if bit != prev + 1:
                if start >= 0:
                    yield start, prev - start + 1
                start = bit
            prev = bit
        if start >= 0:
            yield start, prev - start + 1
