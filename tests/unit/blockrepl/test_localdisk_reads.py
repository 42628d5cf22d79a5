"""Reads served on the event loop when the page cache (or tmpfs) has the data, and the
thread-pool path otherwise: the same bytes either way."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from blockrepl.layout import MdKind
from blockrepl.localdisk import (
    INLINE_READ,
    LocalDiskBackend,
    in_memory,
    nowait_supported,
    read_cached,
)
from blockrepl.metadata import MetadataStore

MiB = 1024 * 1024


@pytest.fixture(params=["tmpfs", "disk"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    if request.param == "disk":
        yield tmp_path
        return
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        yield Path(d)


def _file(where: Path, data: bytes, size: int) -> int:
    path = where / "f.img"
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(size)
    return os.open(path, os.O_RDWR)


def test_cached_reads_equal_the_file(where: Path) -> None:
    data = os.urandom(3 * 4096)
    fd = _file(where, data, 3 * 4096)
    try:
        memory = in_memory(fd)
        if str(where).startswith("/dev/shm"):
            assert memory
        if not memory and not nowait_supported(fd):
            pytest.skip("this filesystem has no RWF_NOWAIT")
        assert read_cached(fd, 0, 4096, memory) == data[:4096]
        assert read_cached(fd, 4095, 4097, memory) == data[4095:8192]
        # Past the end of the file: short, so left to the thread-pool path (which pads).
        assert read_cached(fd, 2 * 4096, 8192, memory) is None
    finally:
        os.close(fd)


def test_a_read_error_is_left_to_the_thread_pool_path() -> None:
    r, w = os.pipe()  # preadv on a pipe fails (ESPIPE): no exception, no data
    try:
        assert read_cached(r, 0, 10, memory=False) is None
        assert read_cached(r, 0, 10, memory=True) is None
    finally:
        os.close(r)
        os.close(w)


def _backend(where: Path) -> LocalDiskBackend:
    path = str(where / "d.img")
    with open(path, "wb") as f:
        f.truncate(16 * MiB)
    md = MetadataStore.create(path, MdKind.INTERNAL, al_extents=7)
    md.attach()
    md.promote(force=True)
    return LocalDiskBackend(md, path)


async def test_backend_reads_small_inline_and_big_via_the_pool_alike(where: Path) -> None:
    b = _backend(where)
    try:
        data = os.urandom(2 * MiB)
        await b.pwrite(4096, data)
        for off, n in [(4096, 4096), (4096 + 1, INLINE_READ), (4096, 2 * MiB), (0, 8192)]:
            want = (bytes(4096) + data)[off : off + n]
            assert await b.pread(off, n) == want
        assert await b.pread(8 * MiB, 4096) == bytes(4096)  # never written: a hole
    finally:
        await b.close()


async def test_small_cached_reads_stay_on_the_event_loop(where: Path) -> None:
    b = _backend(where)
    run = b._run
    try:
        await b.pwrite(0, b"a" * 8192)
        if not b._read_inline:
            pytest.skip("this filesystem has no RWF_NOWAIT")

        async def no_thread(*args: object) -> None:
            raise AssertionError("a cached 4 KiB read went to the thread pool")

        b._run = no_thread  # type: ignore[method-assign]
        assert await b.pread(4096, 4096) == b"a" * 4096
    finally:
        b._run = run  # type: ignore[method-assign]
        await b.close()
