"""Superblock codec (pure). One 4 KiB block; two copies on disk (see metadata.py)."""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass, replace

from blockrepl.errors import MetadataCorruptError, NoMetadataError
from blockrepl.generation import KNOWN_FLAGS, Generation, MdFlag
from blockrepl.layout import (
    AL_EXTENT_SIZE,
    BLOCK,
    BM_BITS_PER_PAGE,
    BM_BYTES_PER_BIT,
    Geometry,
    MdKind,
    external_geometry,
    internal_geometry,
)

SB_MAGIC = b"BRPLMETA"
SB_VERSION = 1
DIGEST_LEN = 32
_FMT = struct.Struct(">8sIIQIIIIQQQQQIIQIQQQQ16s")
# magic version kind seq flags bm_bytes_per_bit al_extent_size bm_bits_per_page
# data_size backing_size md_offset md_size al_offset al_slots al_extents bm_offset bm_pages
# current bitmap history1 history2 device_uuid


@dataclass(frozen=True)
class Superblock:
    seq: int
    flags: MdFlag
    generation: Generation
    device_uuid: uuid.UUID
    geometry: Geometry
    backing_size: int  # internal: size of the backing device at create time; external: data size

    def has(self, flag: MdFlag) -> bool:
        return bool(self.flags & flag)

    def with_flags(self, set_: int = 0, clear: int = 0) -> Superblock:
        return replace(self, flags=MdFlag((int(self.flags) | set_) & ~clear))


def encode_superblock(sb: Superblock) -> bytes:
    g = sb.geometry
    gen = sb.generation
    head = _FMT.pack(
        SB_MAGIC,
        SB_VERSION,
        int(g.kind),
        sb.seq,
        int(sb.flags),
        BM_BYTES_PER_BIT,
        AL_EXTENT_SIZE,
        BM_BITS_PER_PAGE,
        g.data_size,
        sb.backing_size,
        g.md_offset,
        g.md_size,
        g.al_offset,
        g.al_slots,
        g.al_extents,
        g.bm_offset,
        g.bm_pages,
        gen.current,
        gen.bitmap,
        gen.history1,
        gen.history2,
        sb.device_uuid.bytes,
    )
    body = head.ljust(BLOCK - DIGEST_LEN, b"\0")
    return body + hashlib.sha256(body).digest()


def decode_superblock(block: bytes, where: str) -> Superblock:
    """Validate and decode one copy; ``where`` names it in error messages."""
    if len(block) != BLOCK:
        raise MetadataCorruptError(f"{where}: short read ({len(block)} of {BLOCK} bytes)")
    if block[:8] != SB_MAGIC:
        raise NoMetadataError(
            f"{where}: bad magic {block[:8]!r} at byte 0 (expected {SB_MAGIC!r}); "
            "no blockrepl metadata here: run 'blockrepl create-md'"
        )
    body, digest = block[: BLOCK - DIGEST_LEN], block[BLOCK - DIGEST_LEN :]
    if hashlib.sha256(body).digest() != digest:
        raise MetadataCorruptError(
            f"{where}: SHA-256 checksum mismatch (bytes 0..{BLOCK - DIGEST_LEN - 1}); "
            "torn or corrupted write"
        )
    f = _FMT.unpack_from(block)
    (_, version, kind, seq, flags, bpb, al_ext, bpp, data_size, backing_size) = f[:10]
    (md_offset, md_size, al_offset, al_slots, al_extents, bm_offset, bm_pages) = f[10:17]
    current, bitmap, h1, h2, dev_uuid = f[17:]
    if version != SB_VERSION:
        raise MetadataCorruptError(
            f"{where}: unsupported metadata version {version} (this blockrepl reads {SB_VERSION})"
        )
    for name, got, want in (
        ("bm_bytes_per_bit", bpb, BM_BYTES_PER_BIT),
        ("al_extent_size", al_ext, AL_EXTENT_SIZE),
        ("bm_bits_per_page", bpp, BM_BITS_PER_PAGE),
    ):
        if got != want:
            raise MetadataCorruptError(f"{where}: field {name}={got}, expected {want}")
    if kind not in (MdKind.INTERNAL, MdKind.EXTERNAL):
        raise MetadataCorruptError(f"{where}: field kind={kind} is neither 0 nor 1")
    if flags & ~KNOWN_FLAGS:
        raise MetadataCorruptError(f"{where}: unknown flag bits 0x{flags & ~KNOWN_FLAGS:x}")
    md_kind = MdKind(kind)
    try:
        expect = (
            internal_geometry(backing_size, al_extents)
            if md_kind is MdKind.INTERNAL
            else external_geometry(backing_size, al_extents)
        )
    except Exception as exc:
        raise MetadataCorruptError(f"{where}: inconsistent geometry fields: {exc}") from exc
    stored = Geometry(
        kind=md_kind,
        data_size=data_size,
        md_offset=md_offset,
        md_size=md_size,
        sb_offsets=expect.sb_offsets,
        al_offset=al_offset,
        al_slots=al_slots,
        al_extents=al_extents,
        bm_offset=bm_offset,
        bm_pages=bm_pages,
    )
    if stored != expect:
        raise MetadataCorruptError(
            f"{where}: geometry fields {stored} do not match the layout derived from "
            f"backing_size={backing_size}: {expect}"
        )
    return Superblock(
        seq=seq,
        flags=MdFlag(flags),
        generation=Generation(current, bitmap, h1, h2),
        device_uuid=uuid.UUID(bytes=dev_uuid),
        geometry=stored,
        backing_size=backing_size,
    )
