"""Metadata geometry: where each structure lives (pure arithmetic, no I/O).

See :mod:`blockrepl.metadata` for the format description. All sizes are bytes; every
structure is a whole number of 4 KiB blocks so a single structure write never straddles
two of our own structures.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from blockrepl.errors import GeometryError

BLOCK = 4096
BM_BYTES_PER_BIT = 4096  # one dirty bit per 4 KiB of data (DRBD BM_BLOCK_SHIFT 12)
BM_PAGE_HEADER = 16
BM_PAGE_DIGEST = 32
BM_PAGE_PAYLOAD = BLOCK - BM_PAGE_HEADER - BM_PAGE_DIGEST  # 4048 bytes
BM_BITS_PER_PAGE = BM_PAGE_PAYLOAD * 8  # 32384 bits = 126.5 MiB of data per page
AL_EXTENT_SIZE = 4 * 1024 * 1024  # DRBD AL_EXTENT_SHIFT 22
AL_SLOTS = 8  # ring of AL transactions
AL_MAX_EXTENTS_LIMIT = 1000  # a full snapshot must fit one 4 KiB transaction block
AL_DEFAULT_EXTENTS = 257
AL_MIN_EXTENTS = 7  # DRBD's minimum; activation needs room for a 32 MiB request (9 extents) too


class MdKind(IntEnum):
    INTERNAL = 0
    EXTERNAL = 1


@dataclass(frozen=True)
class Geometry:
    """Absolute byte offsets inside the metadata file/device (for internal: the backing)."""

    kind: MdKind
    data_size: int  # usable bytes exported to clients
    md_offset: int  # first byte of the metadata area
    md_size: int
    sb_offsets: tuple[int, int]
    al_offset: int
    al_slots: int
    al_extents: int
    bm_offset: int
    bm_pages: int

    @property
    def bm_bits(self) -> int:
        return ceil_div(self.data_size, BM_BYTES_PER_BIT)

    @property
    def al_total_extents(self) -> int:
        return ceil_div(self.data_size, AL_EXTENT_SIZE)

    def bm_slot_offset(self, page: int, slot: int) -> int:
        return self.bm_offset + (page * 2 + slot) * BLOCK

    def al_slot_offset(self, slot: int) -> int:
        return self.al_offset + slot * BLOCK


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def align_down(value: int, unit: int = BLOCK) -> int:
    return value - value % unit


def bm_pages_for(data_bytes: int) -> int:
    return max(1, ceil_div(ceil_div(data_bytes, BM_BYTES_PER_BIT), BM_BITS_PER_PAGE))


def check_al_extents(al_extents: int) -> None:
    if not AL_MIN_EXTENTS <= al_extents <= AL_MAX_EXTENTS_LIMIT:
        raise GeometryError(
            f"al_extents={al_extents} out of range: use {AL_MIN_EXTENTS}..{AL_MAX_EXTENTS_LIMIT}"
        )


def internal_geometry(device_size: int, al_extents: int = AL_DEFAULT_EXTENTS) -> Geometry:
    """Metadata at the end of the backing device: [data | bitmap | AL ring | SB-A | SB-B].

    The superblocks sit at fixed positions (last two 4 KiB blocks) so they can be found
    from the device size alone; everything else is located through the superblock.
    """
    check_al_extents(al_extents)
    end = align_down(device_size)
    pages = bm_pages_for(end)  # upper bound: sized for the whole device
    md_size = (2 + AL_SLOTS + 2 * pages) * BLOCK
    data_size = end - md_size
    if data_size < BLOCK:
        raise GeometryError(
            f"backing device of {device_size} bytes is too small for internal metadata "
            f"({md_size} bytes); use at least {md_size + 1024 * 1024} bytes"
        )
    return Geometry(
        kind=MdKind.INTERNAL,
        data_size=data_size,
        md_offset=data_size,
        md_size=md_size,
        sb_offsets=(end - 2 * BLOCK, end - BLOCK),
        al_offset=data_size + 2 * pages * BLOCK,
        al_slots=AL_SLOTS,
        al_extents=al_extents,
        bm_offset=data_size,
        bm_pages=pages,
    )


def external_geometry(data_size: int, al_extents: int = AL_DEFAULT_EXTENTS) -> Geometry:
    """Metadata in its own file/device from offset 0: [SB-A | SB-B | AL ring | bitmap]."""
    check_al_extents(al_extents)
    data = align_down(data_size)
    if data < BLOCK:
        raise GeometryError(f"data device of {data_size} bytes is too small: need >= {BLOCK}")
    pages = bm_pages_for(data)
    md_size = (2 + AL_SLOTS + 2 * pages) * BLOCK
    return Geometry(
        kind=MdKind.EXTERNAL,
        data_size=data,
        md_offset=0,
        md_size=md_size,
        sb_offsets=(0, BLOCK),
        al_offset=2 * BLOCK,
        al_slots=AL_SLOTS,
        al_extents=al_extents,
        bm_offset=(2 + AL_SLOTS) * BLOCK,
        bm_pages=pages,
    )


def superblock_offsets(kind: MdKind, md_file_size: int) -> tuple[int, int]:
    """Where to look for the two superblock copies before anything else is known."""
    if kind is MdKind.EXTERNAL:
        return (0, BLOCK)
    end = align_down(md_file_size)
    return (end - 2 * BLOCK, end - BLOCK)
