"""Which dirty bits an acknowledged write may clear (pure: Conflicts + Bitmap, no I/O)."""

from __future__ import annotations

from blockrepl.bitmap import Bitmap
from blockrepl.layout import BM_BYTES_PER_BIT as BLK
from blockrepl.replication.conflicts import Conflicts, partial_blocks


def _write(c: Conflicts, bm: Bitmap, offset: int, length: int) -> None:
    """What the Primary does before sending a replicated write."""
    if (offset | length) % BLK:
        c.note_partial(bm, offset, length)
    bm.set_range(offset, length)
    c.sent(offset, length)


def _ack(c: Conflicts, bm: Bitmap, offset: int, length: int) -> None:
    for b in c.clearable(offset, length, c.done(offset, length)):
        bm.clear_range(b * BLK, BLK)


def test_partial_blocks_are_the_uncovered_edges() -> None:
    assert partial_blocks(0, BLK) == []
    assert partial_blocks(0, 3 * BLK) == []
    assert partial_blocks(512, 512) == [0]
    assert partial_blocks(BLK - 512, 1024) == [0, 1]
    assert partial_blocks(512, 2 * BLK) == [0, 2]
    assert partial_blocks(BLK, BLK + 1) == [2]
    assert partial_blocks(0, 0) == []


def test_ack_of_a_sub_block_write_to_an_in_sync_block_clears_it() -> None:
    c, bm = Conflicts(), Bitmap(64, 1)
    _write(c, bm, 512, 512)
    assert bm.test(0)
    _ack(c, bm, 512, 512)
    assert bm.count() == 0 and not c.stale


def test_ack_of_a_sub_block_write_to_a_block_awaiting_resync_keeps_it_dirty() -> None:
    c, bm = Conflicts(), Bitmap(64, 1)
    bm.set_range(0, 4 * BLK)  # written while the peer was away
    _write(c, bm, 512, 512)
    _write(c, bm, BLK - 512, 1024)  # touches blocks 0 and 1, both awaiting resync
    _ack(c, bm, 512, 512)
    _ack(c, bm, BLK - 512, 1024)
    assert [b for b in range(4) if bm.test(b)] == [0, 1, 2, 3]
    # A later write covering block 1 whole puts the peer's copy right: it may go.
    _write(c, bm, BLK, BLK)
    _ack(c, bm, BLK, BLK)
    assert [b for b in range(4) if bm.test(b)] == [0, 2, 3]
    assert c.stale == {0}
    c.resynced(0)
    bm.clear_range(0, BLK)
    _write(c, bm, 512, 512)  # in sync again: its ack clears
    _ack(c, bm, 512, 512)
    assert not bm.test(0)


def test_the_peers_bitmap_marks_blocks_with_a_write_in_flight_stale() -> None:
    c, bm = Conflicts(), Bitmap(64, 1)
    _write(c, bm, 512, 512)  # in sync when sent...
    bm.set_range(0, BLK)  # ...but the peer's bitmap, merged now, says block 0 differs
    c.mark_stale(bm)
    _ack(c, bm, 512, 512)
    assert bm.test(0)


def test_a_stale_note_left_by_an_earlier_resync_is_forgotten_once_the_block_is_clean() -> None:
    c, bm = Conflicts(), Bitmap(64, 1)
    c.stale.add(0)  # a leftover; block 0 is clean
    _write(c, bm, 512, 512)
    _ack(c, bm, 512, 512)
    assert not bm.test(0) and not c.stale
