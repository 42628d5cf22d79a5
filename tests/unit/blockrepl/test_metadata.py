"""MetadataStore on real files: create, load, attach/close, crash recovery, corruption."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockrepl.errors import (
    GeometryError,
    MetadataCorruptError,
    MetadataError,
    NoMetadataError,
    RoleError,
)
from blockrepl.generation import UUID_JUST_CREATED, Generation, MdFlag
from blockrepl.layout import AL_EXTENT_SIZE, MdKind
from blockrepl.metadata import MetadataStore

MiB = 1024 * 1024


def _img(tmp_path: Path, size: int = 16 * MiB, name: str = "disk.img") -> str:
    path = tmp_path / name
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def test_create_then_load_internal(tmp_path: Path) -> None:
    path = _img(tmp_path)
    md = MetadataStore.create(path, MdKind.INTERNAL)
    assert md.generation.current == UUID_JUST_CREATED
    assert md.clean and not md.sb.has(MdFlag.CONSISTENT)
    size = md.data_size
    md.close_fd()
    again = MetadataStore.load(path, MdKind.INTERNAL)
    assert again.data_size == size and again.sb.device_uuid == md.sb.device_uuid
    assert again.warnings == []
    again.close_fd()


def test_create_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = _img(tmp_path)
    MetadataStore.create(path, MdKind.INTERNAL).close_fd()
    with pytest.raises(MetadataError, match="already holds blockrepl metadata"):
        MetadataStore.create(path, MdKind.INTERNAL)
    MetadataStore.create(path, MdKind.INTERNAL, force=True).close_fd()


def test_external_metadata_leaves_data_untouched(tmp_path: Path) -> None:
    data = _img(tmp_path, 8 * MiB, "data.img")
    meta = str(tmp_path / "meta.md")
    Path(meta).touch()
    with open(data, "r+b") as f:
        f.write(b"\xaa" * 8 * MiB)
    md = MetadataStore.create(meta, MdKind.EXTERNAL, data_path=data)
    assert md.data_size == 8 * MiB
    md.close_fd()
    assert Path(data).read_bytes() == b"\xaa" * 8 * MiB
    MetadataStore.load(meta, MdKind.EXTERNAL, data_path=data).close_fd()
    os.truncate(data, 4 * MiB)
    with pytest.raises(GeometryError, match=r"data device .* is 4194304 bytes"):
        MetadataStore.load(meta, MdKind.EXTERNAL, data_path=data)
    os.truncate(meta, 6000)
    with pytest.raises(GeometryError, match="truncated"):
        MetadataStore.load(meta, MdKind.EXTERNAL)


def test_resized_or_blank_device_is_named(tmp_path: Path) -> None:
    path = _img(tmp_path)
    with pytest.raises(NoMetadataError, match=r"no blockrepl metadata .* resized"):
        MetadataStore.load(path, MdKind.INTERNAL)
    MetadataStore.create(path, MdKind.INTERNAL).close_fd()
    os.truncate(path, 17 * MiB)
    with pytest.raises(NoMetadataError, match="was the device resized"):
        MetadataStore.load(path, MdKind.INTERNAL)


def test_promote_needs_force_and_starts_new_generation(tmp_path: Path) -> None:
    md = MetadataStore.create(_img(tmp_path), MdKind.INTERNAL)
    with pytest.raises(RoleError, match="Inconsistent"):
        md.promote()
    md.promote(force=True)
    g = md.generation
    assert g.bitmap == UUID_JUST_CREATED and g.current & 1 == 1
    assert md.sb.has(MdFlag.PRIMARY_IND | MdFlag.CONSISTENT)
    md.demote()
    md.promote()  # B != 0: still tracking against the same generation, no new one
    assert md.generation == g
    md.close_fd()


def test_crashed_primary_replays_activity_log(tmp_path: Path) -> None:
    path = _img(tmp_path, 64 * MiB)
    md = MetadataStore.create(path, MdKind.INTERNAL, al_extents=7)
    md.attach()
    md.promote(force=True)
    md.write_al_transaction([2, 5])
    md.bitmap.set_range(0, 4096)
    md.flush_bitmap()
    md.close_fd()  # crash: no clean close

    md = MetadataStore.load(path, MdKind.INTERNAL)
    assert not md.clean and md.al_extents == [2, 5]
    md.attach()
    assert md.sb.has(MdFlag.CRASHED_PRIMARY)
    per_extent = AL_EXTENT_SIZE // 4096
    assert md.bitmap.count() == 1 + 2 * per_extent
    assert list(md.bitmap.runs()) == [
        (0, 1),
        (2 * per_extent, per_extent),
        (5 * per_extent, per_extent),
    ]
    md.close(clean=True)

    md = MetadataStore.load(path, MdKind.INTERNAL)
    assert md.clean and md.al_extents == [] and md.bitmap.count() == 1 + 2 * per_extent
    assert not md.sb.has(MdFlag.PRIMARY_IND)
    md.close_fd()


def test_torn_superblock_write_falls_back_with_warning(tmp_path: Path) -> None:
    path = _img(tmp_path)
    md = MetadataStore.create(path, MdKind.INTERNAL)
    md.promote(force=True)
    newest = md.sb
    off = md.geometry.sb_offsets[newest.seq % 2]
    md.close_fd()
    with open(path, "r+b") as f:  # tear the newest copy: second half never written
        f.seek(off + 2048)
        f.write(bytes(2048))
    md = MetadataStore.load(path, MdKind.INTERNAL)
    assert md.sb.seq == newest.seq - 1 and md.generation.current == UUID_JUST_CREATED
    assert any("checksum mismatch" in w for w in md.warnings)
    md.close_fd()
    with open(path, "r+b") as f:
        f.seek(md.geometry.sb_offsets[(newest.seq - 1) % 2] + 40)
        f.write(b"\xff")
    with pytest.raises(MetadataCorruptError, match="both superblock copies are invalid"):
        MetadataStore.load(path, MdKind.INTERNAL)


# ---------------------------------------------------------------- hypothesis: corruption
SIZE = 1 * MiB


@dataclass
class Reference:
    """An image with two versions of every structure written (S1 older, S2 newest)."""

    path: str
    tail: bytes = field(repr=False)
    md_offset: int
    gens: set[tuple[Generation, MdFlag]] = field(repr=False)
    bitmaps: set[tuple[tuple[int, int], ...]] = field(repr=False)
    als: set[tuple[int, ...]] = field(repr=False)


@pytest.fixture(scope="module")
def reference_image(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    path = str(tmp_path_factory.mktemp("md") / "ref.img")
    with open(path, "wb") as f:
        f.truncate(SIZE)
    md = MetadataStore.create(path, MdKind.INTERNAL, al_extents=7)
    md.attach()
    md.promote(force=True)
    gens, bitmaps, als = set(), set(), set()
    for step in range(2):
        md.bitmap.set_range(step * 8192, 4096)
        md.flush_bitmap()
        md.write_al_transaction([0] if step == 0 else [])
        md.write_superblock(md.sb)
        gens.add((md.sb.generation, md.sb.flags))
        bitmaps.add(tuple(md.bitmap.runs()))
        als.add(tuple(md.al_extents))
    md_offset = md.geometry.md_offset
    md.close_fd()
    with open(path, "rb") as f:
        f.seek(md_offset)
        tail = f.read()
    return Reference(path, tail, md_offset, gens, bitmaps, als)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), truncate=st.booleans())
def test_corruption_gives_clear_error_or_a_known_good_state(
    reference_image: Reference, data: st.DataObject, truncate: bool
) -> None:
    ref = reference_image
    corrupted = bytearray(ref.tail)
    new_size = SIZE
    if truncate:
        new_size = data.draw(st.integers(0, SIZE - 1), label="truncate_to")
    else:
        hits = data.draw(
            st.lists(
                st.tuples(st.integers(0, len(ref.tail) - 1), st.integers(1, 255)),
                min_size=1,
                max_size=8,
            ),
            label="xor_hits",
        )
        for pos, xor in hits:
            corrupted[pos] ^= xor
    fd = os.open(ref.path, os.O_RDWR)
    try:
        os.ftruncate(fd, SIZE)
        os.pwrite(fd, bytes(corrupted), ref.md_offset)
        os.ftruncate(fd, new_size)
    finally:
        os.close(fd)
    try:
        md = MetadataStore.load(ref.path, MdKind.INTERNAL)
    except MetadataError as exc:
        msg = str(exc)
        assert ref.path in msg or "copies" in msg or "slots" in msg, msg
        return
    try:
        assert not truncate, "a truncated device must never load"
        assert (md.sb.generation, md.sb.flags) in ref.gens
        assert tuple(md.bitmap.runs()) in ref.bitmaps
        assert tuple(md.al_extents) in ref.als
        if corrupted != ref.tail:
            assert md.warnings, "tolerated corruption must be reported"
    finally:
        md.close_fd()
