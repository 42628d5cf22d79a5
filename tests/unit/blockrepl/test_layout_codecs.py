"""Pure codec/geometry tests for the metadata structures."""

from __future__ import annotations

import uuid

import pytest

from blockrepl.actlog import ActivityLog, decode_al_transaction, encode_al_transaction, extents_for
from blockrepl.bitmap import Bitmap, decode_page, encode_page
from blockrepl.errors import GeometryError, MetadataCorruptError, NoMetadataError
from blockrepl.generation import Generation, MdFlag
from blockrepl.layout import (
    AL_EXTENT_SIZE,
    BLOCK,
    BM_BITS_PER_PAGE,
    BM_PAGE_PAYLOAD,
    MdKind,
    external_geometry,
    internal_geometry,
)
from blockrepl.superblock import Superblock, decode_superblock, encode_superblock

MiB = 1024 * 1024


def _sb(kind: MdKind = MdKind.INTERNAL, size: int = 64 * MiB) -> Superblock:
    geom = internal_geometry(size) if kind is MdKind.INTERNAL else external_geometry(size)
    return Superblock(
        seq=7,
        flags=MdFlag.CONSISTENT | MdFlag.PRIMARY_IND,
        generation=Generation(0x1234_5679, 0xABCD_0000, 0x11, 0x22),
        device_uuid=uuid.uuid4(),
        geometry=geom,
        backing_size=size,
    )


def test_internal_geometry_ends_at_device_end_and_leaves_data_before() -> None:
    g = internal_geometry(64 * MiB)
    assert g.sb_offsets == (64 * MiB - 2 * BLOCK, 64 * MiB - BLOCK)
    assert g.data_size + g.md_size == 64 * MiB
    assert g.bm_offset == g.data_size and g.al_offset + g.al_slots * BLOCK == g.sb_offsets[0]
    assert g.bm_pages * BM_BITS_PER_PAGE >= g.bm_bits


def test_geometry_1tib_bitmap_is_small() -> None:
    g = internal_geometry(1 << 40)
    assert g.md_size < 70 * MiB  # ~64 KiB per GiB (two copies of 32 KiB)


def test_too_small_device_is_a_clear_error() -> None:
    with pytest.raises(GeometryError, match="too small"):
        internal_geometry(16 * 1024)
    with pytest.raises(GeometryError, match="al_extents=3 out of range"):
        internal_geometry(64 * MiB, al_extents=3)


@pytest.mark.parametrize("kind", [MdKind.INTERNAL, MdKind.EXTERNAL])
def test_superblock_roundtrip(kind: MdKind) -> None:
    sb = _sb(kind)
    assert decode_superblock(encode_superblock(sb), "x") == sb


def test_superblock_errors_name_the_problem() -> None:
    blk = bytearray(encode_superblock(_sb()))
    with pytest.raises(NoMetadataError, match=r"bad magic .* at byte 0"):
        decode_superblock(bytes(BLOCK), "copy A")
    blk[100] ^= 1
    with pytest.raises(MetadataCorruptError, match="copy A: SHA-256 checksum mismatch"):
        decode_superblock(bytes(blk), "copy A")
    with pytest.raises(MetadataCorruptError, match="short read"):
        decode_superblock(bytes(blk[:100]), "copy A")


def test_bitmap_page_roundtrip_and_errors() -> None:
    payload = bytes(range(256)) * (BM_PAGE_PAYLOAD // 256) + bytes(BM_PAGE_PAYLOAD % 256)
    blk = encode_page(3, 9, payload)
    assert decode_page(blk, 3, "p") == (9, payload)
    with pytest.raises(MetadataCorruptError, match="holds page number 3, expected 4"):
        decode_page(blk, 4, "p")
    torn = blk[:2048] + bytes(2048)
    with pytest.raises(MetadataCorruptError, match="checksum mismatch"):
        decode_page(torn, 3, "p")


def test_bitmap_ranges_and_counts() -> None:
    bm = Bitmap(nbits=100_000, pages=4)
    bm.set_range(0, 1)
    bm.set_range(4096 * 10, 4096 * 3 + 1)  # touches blocks 10..13
    assert bm.count() == 5
    assert list(bm.runs()) == [(0, 1), (10, 4)]
    bm.clear_range(4096 * 10, 4096 * 2 + 100)  # clears only fully covered 10, 11
    assert list(bm.runs()) == [(0, 1), (12, 2)]
    bm.set_all()
    assert bm.count() == 100_000
    assert bm.dirty_pages() == [0, 1, 2, 3]
    bm.mark_clean(bm.dirty_pages())
    bm.set_range(BM_BITS_PER_PAGE * 4096 * 2, 4096)  # already set: page stays clean
    assert bm.dirty_pages() == []
    bm.clear_range(0, 100_000 * 4096)
    assert bm.count() == 0


def test_bitmap_bytewise_fast_path_matches_bitwise() -> None:
    bm = Bitmap(nbits=1000, pages=1)
    bm.set_range(3 * 4096, 500 * 4096)
    assert bm.count() == 500
    assert list(bm.runs()) == [(3, 500)]
    bm.set_range(0, 1000 * 4096 + 12345)  # beyond the end is clipped
    assert bm.count() == 1000


def test_al_transaction_roundtrip_and_range_check() -> None:
    blk = encode_al_transaction(17, [5, 1, 3])
    assert decode_al_transaction(blk, "al", total_extents=6) == (17, [1, 3, 5])
    with pytest.raises(MetadataCorruptError, match="extent 5 beyond the device"):
        decode_al_transaction(blk, "al", total_extents=5)


def test_activity_log_lru_eviction_respects_in_flight() -> None:
    al = ActivityLog(max_extents=3)
    plan = al.plan([0, 1, 2])
    assert plan is not None and plan.add == (0, 1, 2) and plan.evict == ()
    al.apply(plan)
    al.acquire([0, 1, 2])
    assert al.plan([3]) is None  # everything busy
    al.release([1])
    plan = al.plan([3])
    assert plan is not None and plan.evict == (1,) and plan.add == (3,)
    assert al.snapshot_after(plan) == [0, 2, 3]
    al.apply(plan)
    assert al.plan([0]) == al.plan([0]) and not al.plan([0]).needs_transaction  # type: ignore[union-attr]
    assert list(extents_for(AL_EXTENT_SIZE - 1, 2)) == [0, 1]
