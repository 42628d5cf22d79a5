"""Checksum resync: codecs, masks, the when-to-use rule and the source's reply handling."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockrepl import cli
from blockrepl.bitmap import Bitmap
from blockrepl.replication import csum_resync as cs
from blockrepl.replication import wire
from blockrepl.replication.conflicts import Conflicts
from blockrepl.replication.resync import SyncCounters
from blockrepl.replication.verify import DIGEST_LEN, digest_blocks
from blockrepl.replication.wire import MsgType

SIZE = 64 * 1024 * 1024
BLOCK = cs.BLOCK


def test_message_types_are_appended_after_read_reply() -> None:
    assert (MsgType.RS_CSUM, MsgType.RS_CSUM_REPLY) == (23, 24)
    assert set(wire.FIXED_LEN) == set(MsgType)  # decode_header looks every type up
    for t in (MsgType.RS_CSUM, MsgType.RS_CSUM_REPLY):
        assert wire.decode_header(wire.encode_header(t, 100)) == wire.Header(t, 100)
        with pytest.raises(wire.BadType, match="before authentication"):
            wire.decode_header(wire.encode_header(t, 100), authenticated=False)


def test_csum_round_trip_uses_verify_digests() -> None:
    data = bytes(range(256)) * 48  # 3 blocks
    digests = digest_blocks(data)
    assert digests[:DIGEST_LEN] == hashlib.sha256(data[:BLOCK]).digest()[:DIGEST_LEN]
    payload = cs.encode_csum(8192, len(data), digests)
    assert cs.decode_csum(payload, SIZE) == (8192, len(data), digests)
    mask = cs.encode_csum_reply(8192, len(data), b"\x05")
    assert cs.decode_csum_reply(mask, SIZE) == (8192, len(data), b"\x05")


def test_short_last_block_counts_as_a_block() -> None:
    size = 3 * BLOCK + 100
    payload = cs.encode_csum(3 * BLOCK, 100, digest_blocks(b"x" * 100))
    assert cs.decode_csum(payload, size)[1] == 100


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x00" * 11, "shorter than its 12-byte"),
        (struct.pack(">QI", 100, BLOCK) + bytes(DIGEST_LEN), "bytes 0-7 \\(offset\\) = 100"),
        (struct.pack(">QI", SIZE, BLOCK) + bytes(DIGEST_LEN), "bytes 0-7"),
        (struct.pack(">QI", 0, 0), "bytes 8-11 \\(length\\) = 0"),
        (struct.pack(">QI", 0, cs.MAX_LEN + BLOCK), "bytes 8-11"),
        (struct.pack(">QI", SIZE - BLOCK, 2 * BLOCK) + bytes(32), "bytes 8-11"),
        (struct.pack(">QI", 0, 2 * BLOCK) + bytes(DIGEST_LEN), "bytes 12.. carry 16 digest"),
    ],
)
def test_csum_errors_name_the_bytes(payload: bytes, match: str) -> None:
    with pytest.raises(wire.BadPayload, match=match):
        cs.decode_csum(payload, SIZE)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (struct.pack(">QI", 4096, 9 * BLOCK) + b"\x01", "bytes 12.. carry a 1-byte mask"),
        (struct.pack(">QI", 4096, 3 * BLOCK) + b"\x08", "byte 12 sets bits past block 2"),
        (struct.pack(">QI", 1, BLOCK) + b"\x01", "bytes 0-7"),
    ],
)
def test_reply_errors_name_the_bytes(payload: bytes, match: str) -> None:
    with pytest.raises(wire.BadPayload, match=match):
        cs.decode_csum_reply(payload, SIZE)


def test_differing_mask_and_bits() -> None:
    a = [b"a" * BLOCK, b"b" * BLOCK, b"c" * BLOCK, b"d" * 10]
    b = [b"a" * BLOCK, b"X" * BLOCK, b"c" * BLOCK, b"e" * 10]
    mask = cs.differing_mask(digest_blocks(b"".join(a)), digest_blocks(b"".join(b)))
    assert mask == bytes([0b1010])
    assert cs.mask_bits(mask, 4) == [False, True, False, True]
    with pytest.raises(ValueError, match="do not match"):
        cs.differing_mask(bytes(16), bytes(32))


@pytest.mark.parametrize(
    ("csums", "after_crash", "self_crashed", "peer_crashed", "want"),
    [
        (False, False, True, True, False),
        (False, True, True, True, False),
        (True, False, False, False, True),
        (True, True, False, False, False),
        (True, True, True, False, True),
        (True, True, False, True, True),
    ],
)
def test_use_csums(
    csums: bool, after_crash: bool, self_crashed: bool, peer_crashed: bool, want: bool
) -> None:
    assert cs.use_csums(csums, after_crash, self_crashed, peer_crashed) is want


def test_counters_status() -> None:
    c = SyncCounters(csums=True, skipped_blocks=3, data_bytes=8192, csum_bytes=100)
    into: dict[str, Any] = {"kind": "SyncSource"}
    c.publish(into)
    assert into == {
        "kind": "SyncSource",
        "csums": True,
        "skipped_equal_blocks": 3,
        "skipped_equal_bytes": 3 * BLOCK,
        "data_bytes": 8192,
        "csum_bytes": 100,
    }
    c.publish(None)  # no running sync: nothing to update


# ---------------------------------------------------------------- reply handling
def _pass() -> tuple[cs.CsumPass, Bitmap, Conflicts, SyncCounters]:
    bm = Bitmap(64, 1)
    conflicts = Conflicts()
    counters = SyncCounters(csums=True)
    node = SimpleNamespace(store=SimpleNamespace(bitmap=bm), conflicts=conflicts)
    source = SimpleNamespace(
        conn=SimpleNamespace(node=node), counters=counters, progress=lambda: None
    )
    return cs.CsumPass(cast(Any, source)), bm, conflicts, counters


def test_reply_clears_equal_unbusy_blocks_only() -> None:
    p, bm, conflicts, counters = _pass()
    bm.set_bits(range(8, 16))
    conflicts.sent(13 * BLOCK, BLOCK)  # an app write after the RS_CSUM covers block 13
    p.inflight[8 * BLOCK] = 8 * BLOCK
    p.inflight_bytes = 8 * BLOCK
    p.on_reply(8 * BLOCK, 8 * BLOCK, bytes([0b00000101]))  # blocks 8 and 10 differ
    assert [b for b in range(64) if bm.test(b)] == [8, 10, 13]
    assert counters.skipped_blocks == 5
    assert p.inflight == {} and p.inflight_bytes == 0


def test_reply_never_asked_for_is_refused() -> None:
    p, _bm, _c, _counters = _pass()
    with pytest.raises(wire.BadPayload, match="never asked"):
        p.on_reply(0, BLOCK, b"\x00")
    p.inflight[0] = 2 * BLOCK
    with pytest.raises(wire.BadPayload, match="never asked"):
        p.on_reply(0, BLOCK, b"\x00")


# ---------------------------------------------------------------- fuzz
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=2**40))
def test_fuzz_decoders_only_typed_errors(payload: bytes, size: int) -> None:
    try:
        off, length, digests = cs.decode_csum(payload, size)
        assert off % BLOCK == 0 and 0 < length <= cs.MAX_LEN and off + length <= size
        assert len(digests) == -(-length // BLOCK) * DIGEST_LEN
    except wire.FrameError:
        pass
    try:
        off, length, mask = cs.decode_csum_reply(payload, size)
        assert off + length <= size
        assert len(cs.mask_bits(mask, -(-length // BLOCK))) == -(-length // BLOCK)
    except wire.FrameError:
        pass


@given(
    st.integers(min_value=0, max_value=SIZE // BLOCK - 1),
    st.lists(st.binary(min_size=1, max_size=BLOCK), min_size=1, max_size=8),
)
def test_fuzz_round_trip(block: int, pieces: list[bytes]) -> None:
    data = b"".join(p.ljust(BLOCK, b"\0") for p in pieces)
    off = min(block * BLOCK, SIZE - len(data))
    digests = digest_blocks(data)
    assert cs.decode_csum(cs.encode_csum(off, len(data), digests), SIZE)[2] == digests
    mask = cs.differing_mask(digests, digest_blocks(bytes(len(data))))
    assert cs.decode_csum_reply(cs.encode_csum_reply(off, len(data), mask), SIZE)[2] == mask


def test_cli_after_crash_only_needs_csums(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--backing", str(tmp_path / "none.img"), "--listen-repl", "127.0.0.1:0"]
    argv += ["--secret-file", str(tmp_path / "s"), "--csums-after-crash-only"]
    assert cli.main(argv) == 1
    assert "add --csums as well" in capsys.readouterr().err
    args = cli.build_parser().parse_args(argv[:-1])
    assert args.csums is False and args.csums_after_crash_only is False
