"""Resync helpers: bitmap exchange, rate limiter, write/resync interlock."""

from __future__ import annotations

import asyncio
import time

import pytest

from blockrepl.bitmap import Bitmap
from blockrepl.replication import wire
from blockrepl.replication.conflicts import Conflicts
from blockrepl.replication.resync import TokenBucket, bitmap_bytes, merge_bitmap


def test_bitmap_exchange_is_bit_or() -> None:
    a, b = Bitmap(5000, 1), Bitmap(5000, 1)
    a.set_range(0, 4096)
    b.set_range(4096 * 4999, 4096)
    b.set_range(4096 * 10, 4096 * 3)
    merge_bitmap(a, bitmap_bytes(b))
    assert list(a.runs()) == [(0, 1), (10, 3), (4999, 1)]
    with pytest.raises(wire.BadPayload, match="needs 625"):
        merge_bitmap(a, b"\xff" * 10)


async def test_token_bucket_holds_the_rate() -> None:
    bucket = TokenBucket(4 * 1024 * 1024)
    start = time.monotonic()
    for _ in range(12):
        await bucket.take(256 * 1024)  # 3 MiB total, 1 MiB burst
    elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 3


async def test_resync_chunk_waits_for_overlapping_app_write() -> None:
    c = Conflicts()
    order: list[str] = []

    async def app() -> None:
        async with c.app(0, 8192):
            await asyncio.sleep(0.05)
            order.append("app-done")

    async def resync() -> None:
        await asyncio.sleep(0.01)
        async with c.resync(4096, 4096):
            order.append("resync")

    await asyncio.gather(app(), resync())
    assert order == ["app-done", "resync"]


def test_unacked_counts_per_block() -> None:
    c = Conflicts()
    c.sent(0, 8192)
    c.sent(4096, 4096)
    assert c.done(0, 8192) == [0]  # block 1 still covered by the second write
    assert c.busy(1) and not c.busy(0)
    assert c.done(4096, 4096) == [1]
