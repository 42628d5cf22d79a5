"""Local backing file/device + metadata as a :class:`BlockBackend` (Primary without peer).

Every write is marked in the dirty bitmap (there is no peer to acknowledge it) after its
AL extents are active. Disk I/O runs in a small thread pool.

Device errors (EIO & co., also from ``fdatasync``: buffered writes report a failed
writeback only there) go through :meth:`LocalDiskBackend.disk_error`, which applies the
``on-io-error`` policy (see diskerror.py). Without a peer nothing can mask the error: the
request gets EIO either way; after a detach every later request gets EIO too.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import fcntl
import logging
import os
import stat
import struct
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from blockrepl.algate import ActivityGate
from blockrepl.diskerror import DiskFailure, FailedBlocks, OnIoError, Unflushed, is_device_error
from blockrepl.generation import MdFlag
from blockrepl.layout import AL_EXTENT_SIZE
from blockrepl.metadata import MetadataStore

log = logging.getLogger(__name__)

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
BLKZEROOUT = 0x127F
ZERO_CHUNK = 1024 * 1024
INLINE_WRITE = 64 * 1024  # no-peer writes up to this size skip the thread pool
INLINE_READ = 64 * 1024  # reads up to this size skip the thread pool when cached
TMPFS_MAGIC = 0x01021994
# Largest piece one AL activation covers: 4 extents, aligned (the AL holds >= 7).
AL_PIECE = 4 * AL_EXTENT_SIZE

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]


def punch_hole(fd: int, offset: int, length: int) -> None:
    mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
    if _libc.fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fallocate(PUNCH_HOLE): {os.strerror(err)}")


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def in_memory(fd: int) -> bool:
    """Whether ``fd`` is a tmpfs file: its pages are memory, a read never waits for a
    device (tmpfs refuses RWF_NOWAIT, so this is how its reads may stay inline)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs starts with the long f_type
    if _libc.fstatfs(fd, buf) != 0:
        return False
    f_type: int = struct.unpack_from("l", buf.raw)[0]
    return f_type == TMPFS_MAGIC


def nowait_supported(fd: int) -> bool:
    """Whether preadv(RWF_NOWAIT) works on ``fd`` (it answers EAGAIN instead of waiting
    for the device when the page cache lacks the data)."""
    if not hasattr(os, "RWF_NOWAIT"):  # Linux >= 4.14 only
        return False
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return True


def read_cached(fd: int, offset: int, length: int, memory: bool) -> bytes | None:
    """The bytes at ``offset`` if reading them cannot block on the device, else None (and
    on any error: the caller's thread-pool read meets it again and handles it)."""
    try:
        if memory:
            data = os.pread(fd, length, offset)
            return data if len(data) == length else None
        buf = bytearray(length)
        if os.preadv(fd, [buf], offset, os.RWF_NOWAIT) != length:
            return None  # partly cached, or the sparse tail past the end of the file
        return bytes(buf)  # a small copy; cheaper than a thread hop by far
    except OSError:
        return None


def pieces(offset: int, length: int) -> list[tuple[int, int]]:
    """Split at AL_PIECE boundaries so no activation needs more extents than the AL holds."""
    out = []
    end = offset + length
    while offset < end:
        stop = min(end, (offset // AL_PIECE + 1) * AL_PIECE)
        out.append((offset, stop - offset))
        offset = stop
    return out


def write_zero_range(fd: int, offset: int, length: int) -> None:
    zeros = bytes(min(length, ZERO_CHUNK))
    while length > 0:
        n = min(length, ZERO_CHUNK)
        pwrite_all(fd, zeros[:n], offset)
        offset, length = offset + n, length - n


class LocalDiskBackend:
    def __init__(
        self,
        store: MetadataStore,
        data_path: str,
        workers: int = 4,
        on_io_error: OnIoError = OnIoError.DETACH,
    ) -> None:
        self.store = store
        self.data_path = data_path
        self._fd = os.open(data_path, os.O_RDWR)
        self._is_blockdev = stat.S_ISBLK(os.fstat(self._fd).st_mode)
        # Small reads the page cache (or tmpfs) can answer at once are served on the event
        # loop: the hop to a pool thread and back costs more than copying 4 KiB.
        self._memory = in_memory(self._fd)
        self._read_inline = self._memory or nowait_supported(self._fd)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blockrepl-io")
        self.gate = ActivityGate(store, self._run)
        self._closed = False
        self.on_io_error = on_io_error
        self.detached = False  # Diskless: the backing device is not touched any more
        self.failure: DiskFailure | None = None  # the first device error
        self.last_failure: DiskFailure | None = None
        self.io_errors = 0
        self.failed = FailedBlocks()  # pass_on: blocks whose local copy is bad
        self.unflushed = Unflushed()
        self.metadata_note = ""  # what recording the failure in the metadata did

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    # ------------------------------------------------------------------ device errors
    def record_failure(self, op: str, exc: OSError, offset: int | None, length: int) -> bool:
        """Bookkeeping of a device error (event-loop thread); True if the metadata must be
        updated (first error: the disk stops being UpToDate)."""
        failure = DiskFailure.from_exc(op, exc, offset, length)
        self.io_errors += 1
        self.last_failure = failure
        first = self.failure is None
        if first:
            self.failure = failure
        # Which blocks may now differ from the peer: the request's, or for a flush error
        # everything written since the last good flush.
        ranges = [(offset, length)] if offset is not None else self.unflushed.ranges()
        for off, n in ranges:
            self.store.bitmap.set_range(off, min(n, self.size - off))
        if self.on_io_error is OnIoError.DETACH:
            if not self.detached:
                log.error(
                    "%s error at %s on the backing disk: %s; detaching (Diskless)", op, offset, exc
                )
                self.detached = True
                self.on_detached()
        else:
            if offset is not None:
                self.failed.add(offset, length)
            log.error(
                "%s error at %s on the backing disk: %s; passed on (pass_on)", op, offset, exc
            )
        # DRBD clears MDF_CONSISTENT/MDF_WAS_UP_TO_DATE when the disk drops below
        # UpToDate: a restart then attaches Inconsistent and resyncs instead of trusting it.
        return first

    def on_detached(self) -> None:
        """Hook: the disk was just dropped (before the metadata is updated)."""

    def persist_failure(self) -> None:
        """Blocking: write the Inconsistent flags and the bitmap, if the metadata still
        can be written (best effort: the device is failing)."""
        sb = self.store.sb.with_flags(clear=MdFlag.CONSISTENT | MdFlag.WAS_UP_TO_DATE)
        try:
            self.store.write_superblock(sb)
            self.store.flush_bitmap()
            self.metadata_note = "recorded: metadata marked Inconsistent, bitmap written"
        except OSError as exc:
            self.store.sb = sb  # in memory at least: status and handshakes say Inconsistent
            self.metadata_note = (
                f"metadata not writable ({exc}): a restart on this device would still "
                "claim Consistent; the peer started a new generation, so its UUIDs decide"
            )
            log.error("could not record the disk failure in the metadata: %s", exc)

    async def disk_error(self, op: str, exc: OSError, offset: int | None, length: int) -> None:
        if self.record_failure(op, exc, offset, length):
            await self._run(self.persist_failure)

    async def _io(self, op: str, offset: int | None, length: int, fn: Any, *args: Any) -> Any:
        try:
            return await self._run(fn, *args)
        except OSError as exc:
            if is_device_error(exc):
                await self.disk_error(op, exc, offset, length)
            raise

    async def _inline(self, op: str, offset: int | None, length: int, fn: Any, *args: Any) -> Any:
        """Like :meth:`_io` on the event-loop thread: a small page-cache write costs less
        than the thread hop (which is worth it for big ones: they overlap the next recv)."""
        try:
            return fn(*args)
        except OSError as exc:
            if is_device_error(exc):
                await self.disk_error(op, exc, offset, length)
            raise

    async def _sync(self) -> None:
        """fdatasync, attributing a failed writeback to the unflushed extents."""
        epoch = self.unflushed.snapshot()
        await self._io("flush", None, 0, os.fdatasync, self._fd)
        self.unflushed.flushed(epoch)

    def _usable(self, offset: int, length: int, reading: bool) -> None:
        if self.detached:
            raise OSError(
                errno.EIO, "backing disk detached after an I/O error (Diskless, no peer to serve)"
            )
        if reading and self.failed.touches(offset, length):
            raise OSError(errno.EIO, f"[{offset}, +{length}) failed on the backing disk before")

    @property
    def size(self) -> int:
        return self.store.data_size

    @property
    def read_only(self) -> bool:
        return False

    def _check(self, offset: int, length: int) -> None:
        # Last line of defence for internal metadata living right after the data.
        if offset < 0 or length < 0 or offset + length > self.size:
            raise OSError(errno.EINVAL, f"[{offset}, +{length}) outside data area {self.size}")

    async def pread(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        self._usable(offset, length, reading=True)
        if self._read_inline and length <= INLINE_READ:
            cached = read_cached(self._fd, offset, length, self._memory)
            if cached is not None:
                return cached
        data: bytes = await self._io("read", offset, length, os.pread, self._fd, length, offset)
        if len(data) < length:  # sparse tail of a file that was never written
            data += bytes(length - len(data))
        return data

    async def pwrite(self, offset: int, data: bytes | bytearray, fua: bool = False) -> None:
        self._check(offset, len(data))
        view = memoryview(data)
        for off, n in pieces(offset, len(data)):
            self._usable(off, n, reading=False)
            async with self.gate.writing(off, n):
                self.store.bitmap.set_range(off, n)
                piece = view[off - offset : off - offset + n]
                if n <= INLINE_WRITE:
                    await self._inline("write", off, n, pwrite_all, self._fd, piece, off)
                else:
                    await self._io("write", off, n, pwrite_all, self._fd, piece, off)
                self.unflushed.add(off, n)
        if fua:
            await self._sync()

    async def flush(self) -> None:
        self._usable(0, 0, reading=False)
        await self._sync()

    async def trim(self, offset: int, length: int, fua: bool = False) -> None:
        self._check(offset, length)
        self._usable(offset, length, reading=False)
        if self._is_blockdev:
            return  # advisory; contents stay as they are, so nothing is out of sync
        for off, n in pieces(offset, length):
            async with self.gate.writing(off, n):
                self.store.bitmap.set_range(off, n)
                await self._io("trim", off, n, punch_hole, self._fd, off, n)
                self.unflushed.add(off, n)
        if fua:
            await self._sync()

    async def write_zeroes(
        self, offset: int, length: int, fua: bool = False, may_trim: bool = True
    ) -> None:
        self._check(offset, length)
        for off, n in pieces(offset, length):
            self._usable(off, n, reading=False)
            async with self.gate.writing(off, n):
                self.store.bitmap.set_range(off, n)
                await self._io("zero", off, n, self._zero, off, n, may_trim)
                self.unflushed.add(off, n)
        if fua:
            await self._sync()

    def _zero(self, offset: int, length: int, may_trim: bool) -> None:
        if self._is_blockdev:
            try:
                fcntl.ioctl(self._fd, BLKZEROOUT, struct.pack("QQ", offset, length))
                return
            except OSError:
                pass
        elif may_trim:
            try:
                punch_hole(self._fd, offset, length)
                return
            except OSError:
                pass
        write_zero_range(self._fd, offset, length)

    async def close(self, clean: bool = True) -> None:
        """Flush data, then write bitmap/AL/superblock as a clean detach."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.detached:
                # Diskless: the failure is already recorded; do not touch the device.
                self.store.close_fd()
            else:
                try:
                    await self._sync()
                except OSError as exc:  # recorded in the bitmap by disk_error
                    log.error("final flush of the backing disk failed: %s", exc)
                if self.detached:
                    self.store.close_fd()
                else:
                    await self._run(self.store.close, clean)
        finally:
            os.close(self._fd)
            self._pool.shutdown(wait=True)
