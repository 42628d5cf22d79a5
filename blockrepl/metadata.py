"""On-disk metadata of a blockrepl replica: superblock, activity log and dirty bitmap.

Format version 1. All integers big-endian; all structures are 4 KiB blocks, each ending
with a SHA-256 digest of the rest of its block, and each written in a way that a torn
write leaves a previous valid version behind (sequence numbers pick the newest valid one).

Placement (offsets in bytes; ``B`` = 4096):

* internal (metadata at the end of the backing device, usable size = device - md area)::

      0 .. data_size                 exported data
      data_size ..                   bitmap pages, 2 slots per page
      ..                             AL ring, 8 slots
      end-2B                         superblock copy A
      end-B                          superblock copy B      (end = device size & ~4095)

* external (metadata file/device, data device untouched)::

      0, B                           superblock copies A, B
      2B .. 10B                      AL ring, 8 slots
      10B ..                         bitmap pages, 2 slots per page

Superblock (see superblock.py): magic ``b"BRPLMETA"``, version 1, kind, sequence, flags
(DRBD MDF_* values), bytes per bitmap bit (4096), AL extent size (4 MiB), bits per bitmap
page, data size, backing size, all area offsets/sizes, generation UUIDs (current, bitmap,
history1, history2), device UUID. Copy ``seq % 2`` receives sequence ``seq``.

Bitmap page slot (bitmap.py): ``b"BRBM"``, page number, sequence, 4048 bytes of bits
(bit n = 4 KiB data block n, LSB first), digest. AL transaction (actlog.py): ``b"BRAL"``,
count, sequence, extent numbers (full snapshot of the active set), digest.

Crash-safety invariant: *on-disk bitmap + extents of the newest AL transaction cover every
block that may differ from the peer*. An extent is dropped from the AL only after the
bitmap pages holding its bits are durable; a write to an extent starts only after the AL
transaction activating it is durable. After an unclean shutdown (``AL_CLEAN`` not set) the
AL extents are set in the bitmap on attach (DRBD's ``apply-al``), and a node that was
Primary gets ``CRASHED_PRIMARY``.

Corruption handling: if only one copy of a structure is invalid the other is used and a
warning is recorded (``MetadataStore.warnings``); if both copies of the superblock or of a
bitmap page, or all AL slots, are invalid, loading fails with an error naming the copy,
the byte range and the reason. Nothing is ever read past a failed check.
"""

from __future__ import annotations

import os
import stat
import uuid
from dataclasses import dataclass, field, replace

from blockrepl import generation as gen_ops
from blockrepl.actlog import decode_al_transaction, encode_al_transaction
from blockrepl.bitmap import Bitmap, decode_page, encode_page
from blockrepl.errors import (
    GeometryError,
    MetadataCorruptError,
    MetadataError,
    NoMetadataError,
    RoleError,
)
from blockrepl.generation import Generation, MdFlag
from blockrepl.layout import (
    AL_DEFAULT_EXTENTS,
    AL_EXTENT_SIZE,
    BLOCK,
    Geometry,
    MdKind,
    external_geometry,
    internal_geometry,
    superblock_offsets,
)
from blockrepl.superblock import Superblock, decode_superblock, encode_superblock


def device_size_of(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _read_block(fd: int, offset: int) -> bytes:
    return os.pread(fd, BLOCK, offset)


def _write_block(fd: int, offset: int, block: bytes) -> None:
    written = os.pwrite(fd, block, offset)
    if written != len(block):
        raise OSError(f"short metadata write at byte {offset}: {written} of {len(block)}")


@dataclass
class BitmapSnapshot:
    """Encoded bitmap pages ready to be written (taken on the event-loop thread)."""

    blocks: list[tuple[int, int, bytes]] = field(default_factory=list)  # (page, offset, block)


class MetadataStore:
    """One replica's metadata. Blocking I/O: call from a worker thread in async code."""

    def __init__(self, path: str, kind: MdKind, fd: int, sb: Superblock, bitmap: Bitmap) -> None:
        self.path = path
        self.kind = kind
        self.fd = fd
        self.sb = sb
        self.bitmap = bitmap
        self.al_seq = 0
        self.al_extents: list[int] = []
        self.page_seq: list[int] = [0] * sb.geometry.bm_pages
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ properties
    @property
    def geometry(self) -> Geometry:
        return self.sb.geometry

    @property
    def data_size(self) -> int:
        return self.sb.geometry.data_size

    @property
    def generation(self) -> Generation:
        return self.sb.generation

    @property
    def clean(self) -> bool:
        return self.sb.has(MdFlag.AL_CLEAN)

    # ------------------------------------------------------------------ create
    @classmethod
    def create(
        cls,
        md_path: str,
        kind: MdKind,
        data_path: str | None = None,
        al_extents: int = AL_DEFAULT_EXTENTS,
        force: bool = False,
    ) -> MetadataStore:
        """Write fresh metadata: C = JUST_CREATED, empty bitmap, clean AL, Inconsistent."""
        if kind is MdKind.INTERNAL:
            geom = internal_geometry(device_size_of(md_path), al_extents)
            backing = device_size_of(md_path)
        else:
            if data_path is None:
                raise MetadataError("external metadata needs the data device path")
            backing = device_size_of(data_path)
            geom = external_geometry(backing, al_extents)
        if not force:
            try:
                existing = cls.load(md_path, kind, data_path)
            except MetadataError:
                pass
            else:
                existing.close_fd()
                raise MetadataError(
                    f"{md_path} already holds blockrepl metadata (device uuid "
                    f"{existing.sb.device_uuid}); pass --force to overwrite it"
                )
        fd = os.open(md_path, os.O_RDWR)
        try:
            st = os.fstat(fd)
            if kind is MdKind.EXTERNAL and os.lseek(fd, 0, os.SEEK_END) < geom.md_size:
                if not stat.S_ISREG(st.st_mode):
                    raise GeometryError(
                        f"metadata device {md_path} is smaller than the {geom.md_size} bytes needed"
                    )
                os.ftruncate(fd, geom.md_size)
            sb = Superblock(
                seq=0,
                flags=MdFlag.AL_CLEAN,
                generation=Generation(),
                device_uuid=uuid.uuid4(),
                geometry=geom,
                backing_size=backing,
            )
            bitmap = Bitmap(geom.bm_bits, geom.bm_pages)
            store = cls(md_path, kind, fd, sb, bitmap)
            zero_page = bitmap.page_payload(0)
            for page in range(geom.bm_pages):
                for slot in (0, 1):
                    blk = encode_page(page, slot, zero_page)
                    _write_block(fd, geom.bm_slot_offset(page, slot), blk)
                store.page_seq[page] = 1
            for slot in range(geom.al_slots):
                _write_block(fd, geom.al_slot_offset(slot), encode_al_transaction(slot, []))
            store.al_seq = geom.al_slots - 1
            os.fdatasync(fd)
            # Superblocks last: the metadata becomes valid only once everything else exists.
            for seq in (0, 1):
                _write_block(fd, geom.sb_offsets[seq], encode_superblock(replace(sb, seq=seq)))
            os.fdatasync(fd)
            store.sb = replace(sb, seq=1)
            return store
        except BaseException:
            os.close(fd)
            raise

    # ------------------------------------------------------------------ load
    @classmethod
    def load(
        cls, md_path: str, kind: MdKind, data_path: str | None = None, writable: bool = True
    ) -> MetadataStore:
        """Read and validate everything; raises a MetadataError naming what is wrong."""
        fd = os.open(md_path, os.O_RDWR if writable else os.O_RDONLY)
        try:
            return cls._load(fd, md_path, kind, data_path)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _load(cls, fd: int, md_path: str, kind: MdKind, data_path: str | None) -> MetadataStore:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size < 2 * BLOCK:
            raise GeometryError(
                f"{md_path} is only {size} bytes: too small to hold blockrepl metadata (truncated?)"
            )
        warnings: list[str] = []
        sb = cls._load_superblock(fd, md_path, kind, size, warnings)
        geom = sb.geometry
        if kind is MdKind.INTERNAL:
            if size != sb.backing_size:
                raise GeometryError(
                    f"{md_path} is {size} bytes but its metadata was created for "
                    f"{sb.backing_size} bytes; the device was resized: restore its size"
                )
        else:
            if size < geom.md_size:
                raise GeometryError(
                    f"metadata file {md_path} is {size} bytes, needs {geom.md_size} (truncated?)"
                )
            if data_path is not None and device_size_of(data_path) < geom.data_size:
                raise GeometryError(
                    f"data device {data_path} is {device_size_of(data_path)} bytes, metadata "
                    f"describes {geom.data_size} bytes: wrong device or it shrank"
                )
        bitmap = Bitmap(geom.bm_bits, geom.bm_pages)
        store = cls(md_path, kind, fd, sb, bitmap)
        store.warnings = warnings
        for page in range(geom.bm_pages):
            store._load_page(page)
        store._load_al()
        return store

    @staticmethod
    def _load_superblock(
        fd: int, md_path: str, kind: MdKind, size: int, warnings: list[str]
    ) -> Superblock:
        offsets = superblock_offsets(kind, size)
        good: list[Superblock] = []
        errors: list[MetadataError] = []
        for copy, off in zip("AB", offsets, strict=True):
            where = f"{md_path}: superblock copy {copy} (bytes {off}..{off + BLOCK - 1})"
            try:
                sb = decode_superblock(_read_block(fd, off), where)
                if sb.geometry.kind is not kind:
                    raise MetadataCorruptError(f"{where}: records kind {sb.geometry.kind.name}")
                good.append(sb)
            except MetadataError as exc:
                errors.append(exc)
        if not good:
            detail = "; ".join(str(e) for e in errors)
            if all(isinstance(e, NoMetadataError) for e in errors):
                hint = (
                    " (internal metadata lives in the last blocks: was the device resized?)"
                    if kind is MdKind.INTERNAL
                    else ""
                )
                raise NoMetadataError(f"no blockrepl metadata on {md_path}{hint}: {detail}")
            raise MetadataCorruptError(f"both superblock copies are invalid: {detail}")
        warnings.extend(f"ignored {e}" for e in errors)
        return max(good, key=lambda s: s.seq)

    def _load_page(self, page: int) -> None:
        geom = self.geometry
        best: tuple[int, bytes] | None = None
        errors: list[str] = []
        for slot in (0, 1):
            off = geom.bm_slot_offset(page, slot)
            where = f"{self.path}: bitmap page {page} slot {slot} (bytes {off}..{off + BLOCK - 1})"
            try:
                seq, payload = decode_page(_read_block(self.fd, off), page, where)
            except MetadataCorruptError as exc:
                errors.append(str(exc))
                continue
            if best is None or seq > best[0]:
                best = (seq, payload)
        if best is None:
            raise MetadataCorruptError(f"both copies of bitmap page {page} invalid: {errors}")
        self.warnings.extend(f"ignored {e}" for e in errors)
        self.page_seq[page] = best[0]
        self.bitmap.load_page(page, best[1])

    def _load_al(self) -> None:
        geom = self.geometry
        valid: list[tuple[int, list[int]]] = []
        errors: list[str] = []
        for slot in range(geom.al_slots):
            off = geom.al_slot_offset(slot)
            where = f"{self.path}: AL slot {slot} (bytes {off}..{off + BLOCK - 1})"
            try:
                seq, ext = decode_al_transaction(
                    _read_block(self.fd, off), where, geom.al_total_extents
                )
            except MetadataCorruptError as exc:
                errors.append(str(exc))
                continue
            if seq % geom.al_slots != slot:
                errors.append(f"{where}: sequence {seq} does not belong in this slot")
                continue
            valid.append((seq, ext))
        if not valid:
            raise MetadataCorruptError(f"all {geom.al_slots} activity-log slots invalid: {errors}")
        self.warnings.extend(f"ignored {e}" for e in errors)
        self.al_seq, self.al_extents = max(valid, key=lambda v: v[0])

    # ------------------------------------------------------------------ writes
    def write_superblock(self, sb: Superblock) -> None:
        """Persist a new superblock version (durable on return)."""
        new = replace(sb, seq=self.sb.seq + 1)
        _write_block(self.fd, self.geometry.sb_offsets[new.seq % 2], encode_superblock(new))
        os.fdatasync(self.fd)
        self.sb = new

    def write_al_transaction(self, extents: list[int]) -> None:
        seq = self.al_seq + 1
        off = self.geometry.al_slot_offset(seq % self.geometry.al_slots)
        _write_block(self.fd, off, encode_al_transaction(seq, extents))
        os.fdatasync(self.fd)
        self.al_seq, self.al_extents = seq, sorted(extents)

    def bitmap_snapshot(self) -> BitmapSnapshot:
        """Encode the dirty pages now (cheap; call where the bitmap is mutated)."""
        snap = BitmapSnapshot()
        pages = self.bitmap.dirty_pages()
        for page in pages:
            seq = self.page_seq[page] + 1
            self.page_seq[page] = seq
            off = self.geometry.bm_slot_offset(page, seq % 2)
            snap.blocks.append((page, off, encode_page(page, seq, self.bitmap.page_payload(page))))
        self.bitmap.mark_clean(pages)
        return snap

    def write_bitmap_snapshot(self, snap: BitmapSnapshot) -> None:
        try:
            for _page, off, blk in snap.blocks:
                _write_block(self.fd, off, blk)
            if snap.blocks:
                os.fdatasync(self.fd)
        except BaseException:
            self.bitmap._dirty_pages.update(p for p, _, _ in snap.blocks)
            raise

    def flush_bitmap(self) -> None:
        self.write_bitmap_snapshot(self.bitmap_snapshot())

    # ------------------------------------------------------------------ lifecycle
    def attach(self) -> None:
        """Start using the replica: replay the AL after an unclean stop, then mark in use."""
        sb = self.sb
        if not sb.has(MdFlag.AL_CLEAN):
            for extent in self.al_extents:
                self.bitmap.set_range(extent * AL_EXTENT_SIZE, AL_EXTENT_SIZE)
            self.flush_bitmap()
            if sb.has(MdFlag.PRIMARY_IND):
                sb = sb.with_flags(set_=MdFlag.CRASHED_PRIMARY)
        if self.al_extents:
            self.write_al_transaction([])
        self.write_superblock(sb.with_flags(clear=MdFlag.AL_CLEAN))

    def close(self, clean: bool = True) -> None:
        """Clean detach: bitmap durable, AL empty, AL_CLEAN set, primary-ind cleared."""
        try:
            if clean:
                self.flush_bitmap()
                if self.al_extents:
                    self.write_al_transaction([])
                self.write_superblock(
                    self.sb.with_flags(set_=MdFlag.AL_CLEAN, clear=MdFlag.PRIMARY_IND)
                )
        finally:
            self.close_fd()

    def close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ------------------------------------------------------------------ roles
    def promote(self, peer_connected: bool = False, force: bool = False) -> None:
        """Become Primary; start a new data generation if disconnected (DRBD rules)."""
        sb = self.sb
        if not sb.has(MdFlag.CONSISTENT):
            if not force:
                raise RoleError(
                    f"{self.path}: disk is Inconsistent (never synced); refusing to promote. "
                    "Use --force for the initial promotion of the first node"
                )
            sb = sb.with_flags(set_=MdFlag.CONSISTENT | MdFlag.WAS_UP_TO_DATE)
        g = sb.generation
        if (not peer_connected and g.bitmap == 0) or force:
            g = gen_ops.new_current(g, primary=True)
        sb = replace(sb, generation=g).with_flags(set_=MdFlag.PRIMARY_IND)
        self.write_superblock(sb)

    def demote(self) -> None:
        self.write_superblock(self.sb.with_flags(clear=MdFlag.PRIMARY_IND))
