"""Local backing file/device + metadata as a :class:`BlockBackend` (Primary without peer).

Every write is marked in the dirty bitmap (there is no peer to acknowledge it) after its
AL extents are active. Disk I/O runs in a small thread pool.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat
import struct
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from blockrepl.algate import ActivityGate
from blockrepl.layout import AL_EXTENT_SIZE
from blockrepl.metadata import MetadataStore

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
BLKZEROOUT = 0x127F
ZERO_CHUNK = 1024 * 1024
# Largest piece one AL activation covers: 4 extents, aligned (the AL holds >= 7).
AL_PIECE = 4 * AL_EXTENT_SIZE

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def punch_hole(fd: int, offset: int, length: int) -> None:
    mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
    if _libc.fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fallocate(PUNCH_HOLE): {os.strerror(err)}")


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


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
    def __init__(self, store: MetadataStore, data_path: str, workers: int = 4) -> None:
        self.store = store
        self.data_path = data_path
        self._fd = os.open(data_path, os.O_RDWR)
        self._is_blockdev = stat.S_ISBLK(os.fstat(self._fd).st_mode)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blockrepl-io")
        self.gate = ActivityGate(store, self._run)
        self._closed = False

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

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
        data: bytes = await self._run(os.pread, self._fd, length, offset)
        if len(data) < length:  # sparse tail of a file that was never written
            data += bytes(length - len(data))
        return data

    async def pwrite(self, offset: int, data: bytes, fua: bool = False) -> None:
        self._check(offset, len(data))
        view = memoryview(data)
        for off, n in pieces(offset, len(data)):
            async with self.gate.writing(off, n):
                self.store.bitmap.set_range(off, n)
                await self._run(pwrite_all, self._fd, view[off - offset : off - offset + n], off)
        if fua:
            await self._run(os.fdatasync, self._fd)

    async def flush(self) -> None:
        await self._run(os.fdatasync, self._fd)

    async def trim(self, offset: int, length: int, fua: bool = False) -> None:
        self._check(offset, length)
        if self._is_blockdev:
            return  # advisory; contents stay as they are, so nothing is out of sync
        for off, n in pieces(offset, length):
            async with self.gate.writing(off, n):
                self.store.bitmap.set_range(off, n)
                await self._run(punch_hole, self._fd, off, n)
        if fua:
            await self._run(os.fdatasync, self._fd)

    async def write_zeroes(
        self, offset: int, length: int, fua: bool = False, may_trim: bool = True
    ) -> None:
        self._check(offset, length)
        for off, n in pieces(offset, length):
            async with self.gate.writing(off, n):
                self.store.bitmap.set_range(off, n)
                await self._run(self._zero, off, n, may_trim)
        if fua:
            await self._run(os.fdatasync, self._fd)

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
            await self._run(os.fdatasync, self._fd)
            await self._run(self.store.close, clean)
        finally:
            os.close(self._fd)
            self._pool.shutdown(wait=True)
