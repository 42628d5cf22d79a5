"""LocalDiskBackend + ActivityGate on a real file: AL ahead of data, bitmap marking."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from blockrepl.layout import AL_EXTENT_SIZE, MdKind
from blockrepl.localdisk import LocalDiskBackend, pieces
from blockrepl.metadata import MetadataStore

MiB = 1024 * 1024


def _backend(tmp_path: Path, size: int = 64 * MiB) -> LocalDiskBackend:
    path = str(tmp_path / "d.img")
    with open(path, "wb") as f:
        f.truncate(size)
    md = MetadataStore.create(path, MdKind.INTERNAL, al_extents=7)
    md.attach()
    md.promote(force=True)
    return LocalDiskBackend(md, path)


def test_pieces_split_on_aligned_boundaries() -> None:
    ps = pieces(3, 40 * MiB)
    assert sum(n for _, n in ps) == 40 * MiB and ps[0] == (3, 16 * MiB - 3)
    assert all((off + n) % (16 * MiB) == 0 for off, n in ps[:-1])


async def test_requests_larger_than_the_activity_log(tmp_path: Path) -> None:
    b = _backend(tmp_path)
    await asyncio.wait_for(b.trim(0, b.size), 10)  # spans 16 extents > al_extents 7
    await asyncio.wait_for(b.pwrite(AL_EXTENT_SIZE - 1, b"\x01" * 32 * MiB, fua=True), 10)
    await asyncio.wait_for(b.write_zeroes(0, b.size, may_trim=False), 10)
    assert await b.pread(AL_EXTENT_SIZE, 4096) == bytes(4096)
    assert b.store.bitmap.count() == -(-b.size // 4096)
    await b.close()


async def test_al_is_persisted_before_writes_and_cleared_on_close(tmp_path: Path) -> None:
    b = _backend(tmp_path)
    rnd = random.Random(1)

    async def write(i: int) -> None:
        off = rnd.randrange(0, b.size - 65536)
        await b.pwrite(off, bytes([i % 256]) * 65536)
        # Invariant while in flight: every extent touched is in the durable AL.
        assert set(range(off // AL_EXTENT_SIZE, (off + 65535) // AL_EXTENT_SIZE + 1)) <= set(
            b.store.al_extents
        ) or b.store.bitmap.test(off // 4096)

    await asyncio.gather(*(write(i) for i in range(100)))
    assert 0 < len(b.store.al_extents) <= 7 and b.gate.transactions >= 7
    dirty = b.store.bitmap.count()
    path = b.store.path
    await b.close()
    md = MetadataStore.load(path, MdKind.INTERNAL)
    assert md.clean and md.al_extents == [] and md.bitmap.count() == dirty
    md.close_fd()
