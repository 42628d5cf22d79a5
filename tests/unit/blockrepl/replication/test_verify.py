"""Online verify: the pure parts (chunk walk, digests, comparison -> ranges, wire payloads)."""

from __future__ import annotations

import hashlib
import itertools
import os

import pytest

from blockrepl.replication import wire
from blockrepl.replication.verify import (
    BLOCK,
    CHUNK,
    DIGEST_LEN,
    BlockRanges,
    VerifyError,
    chunks,
    decode_reply,
    decode_req,
    differing_blocks,
    digest_blocks,
    encode_reply,
    encode_req,
    progress,
)

MIB = 1024 * 1024


def test_chunks_cover_the_volume_exactly_once() -> None:
    size = 3 * MIB + 5 * BLOCK
    got = list(chunks(0, size))
    assert got[0] == (0, CHUNK)
    assert sum(n for _, n in got) == size
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(got))
    assert got[-1] == (size - 5 * BLOCK, 5 * BLOCK)


def test_chunks_start_is_rounded_down_to_a_block() -> None:
    got = list(chunks(MIB + 100, 2 * MIB))
    assert got[0] == (MIB, CHUNK)
    assert got[-1][0] + got[-1][1] == 2 * MIB


def test_chunks_refuse_start_outside_the_volume() -> None:
    with pytest.raises(VerifyError, match="outside the"):
        next(chunks(2 * MIB, 2 * MIB))
    with pytest.raises(ValueError, match="multiple of"):
        next(chunks(0, MIB, chunk=1000))


def test_digests_are_per_block_and_detect_one_changed_byte() -> None:
    data = bytearray(os.urandom(4 * BLOCK))
    d1 = digest_blocks(bytes(data))
    assert len(d1) == 4 * DIGEST_LEN
    assert d1[:DIGEST_LEN] == hashlib.sha256(data[:BLOCK]).digest()[:DIGEST_LEN]
    data[2 * BLOCK + 17] ^= 1
    d2 = digest_blocks(bytes(data))
    assert differing_blocks(8 * BLOCK, d1, d2) == [10]  # chunk starts at block 8


def test_short_last_block_gets_its_own_digest() -> None:
    assert len(digest_blocks(bytes(BLOCK + 512))) == 2 * DIGEST_LEN


def test_differing_blocks_refuses_mismatched_lists() -> None:
    with pytest.raises(ValueError, match="do not match"):
        differing_blocks(0, bytes(32), bytes(16))


def test_block_ranges_merge_and_clip() -> None:
    r = BlockRanges()
    r.add([5, 3, 4])
    r.add([10])
    r.add([6, 9])
    r.add([])
    assert r.runs == [(3, 4), (9, 2)]
    assert r.blocks == 6
    size = 11 * BLOCK - 100  # last block is short
    assert r.byte_ranges(size) == [[3 * BLOCK, 4 * BLOCK], [9 * BLOCK, 2 * BLOCK - 100]]
    assert r.byte_ranges(size, cap=1) == [[3 * BLOCK, 4 * BLOCK]]


def test_progress_rate_and_eta() -> None:
    p = progress(25 * MIB, 100 * MIB, 2.5)
    assert p["percent"] == 25.0
    assert p["rate_bytes_per_s"] == 10 * MIB
    assert p["eta_seconds"] == 7.5
    assert progress(0, 100, 0.0)["eta_seconds"] is None


def test_wire_payloads_round_trip() -> None:
    size = 8 * MIB
    assert decode_req(encode_req(CHUNK, CHUNK, 7), size) == (CHUNK, CHUNK, 7)
    digests = digest_blocks(bytes(CHUNK))
    r = decode_reply(encode_reply(CHUNK, CHUNK, 7, digests), size)
    assert (r.offset, r.length, r.run_id, r.digests) == (CHUNK, CHUNK, 7, digests)
    hdr = wire.decode_header(wire.encode_header(wire.MsgType.VERIFY_REQ, 16))
    assert hdr.type is wire.MsgType.VERIFY_REQ


@pytest.mark.parametrize(
    ("offset", "length"),
    [(100, BLOCK), (0, 0), (8 * MIB - BLOCK, 2 * BLOCK), (0, 64 * MIB)],
)
def test_bad_ranges_are_refused(offset: int, length: int) -> None:
    with pytest.raises(wire.BadPayload, match="VERIFY_REQ range"):
        decode_req(encode_req(offset, length, 1), 8 * MIB)


def test_reply_with_wrong_digest_count_is_refused() -> None:
    payload = encode_reply(0, 2 * BLOCK, 1, bytes(DIGEST_LEN))
    with pytest.raises(wire.BadPayload, match="need 32"):
        decode_reply(payload, 8 * MIB)
    with pytest.raises(wire.BadPayload, match="too short"):
        decode_reply(b"\0" * 5, 8 * MIB)
