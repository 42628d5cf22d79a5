"""Replication framing: round trips, typed errors, and fuzzing of every decoder."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockrepl.replication import csum_resync, wire
from blockrepl.replication.wire import DFlag, MsgType

SIZE = 1 << 20


def test_frame_round_trip() -> None:
    raw = wire.frame(MsgType.PING, wire.u64(7))
    hdr = wire.decode_header(raw[: wire.HEADER_SIZE])
    assert hdr == wire.Header(MsgType.PING, 8)
    assert wire.decode_u64(raw[wire.HEADER_SIZE :]) == 7


def test_data_and_zero_round_trip() -> None:
    payload = wire.data_header(5, 4096, DFlag.FUA) + b"x" * 512
    d = wire.decode_data(payload, SIZE)
    assert (d.seq, d.offset, d.dflags, bytes(d.data)) == (5, 4096, DFlag.FUA, b"x" * 512)
    z = wire.decode_zero(wire.encode_zero(9, 0, 8192, DFlag.TRIM), SIZE)
    assert (z.seq, z.offset, z.length, z.dflags) == (9, 0, 8192, DFlag.TRIM)
    gen = (1, 2, 3, 2**64 - 1)
    assert wire.decode_gen(wire.encode_gen(gen)) == gen
    assert wire.decode_rs_ack(wire.encode_rs_ack(4096, 65536)) == (4096, 65536)


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        (b"GET / HTTP/1", wire.BadMagic, "bytes 0-3"),
        (struct.pack(">4sBBHI", b"BRPL", 2, 1, 0, 32), wire.BadVersion, "byte 4"),
        (struct.pack(">4sBBHI", b"BRPL", 1, 99, 0, 0), wire.BadType, "byte 5"),
        (struct.pack(">4sBBHI", b"BRPL", 1, 1, 1, 32), wire.BadPayload, "bytes 6-7"),
        (struct.pack(">4sBBHI", b"BRPL", 1, 16, 0, 9), wire.BadLength, "PING payload must be 8"),
        (struct.pack(">4sBBHI", b"BRPL", 1, 5, 0, 2**32 - 1), wire.BadLength, "maximum"),
        (b"BRPL", wire.BadLength, "frame header is 4 bytes"),
    ],
)
def test_header_errors_name_the_byte(raw: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        wire.decode_header(raw)


def test_before_auth_only_tiny_hello_auth_error_frames() -> None:
    with pytest.raises(wire.BadType, match="before authentication"):
        wire.decode_header(wire.encode_header(MsgType.DATA, 100), authenticated=False)
    with pytest.raises(wire.BadLength, match="4096"):
        wire.decode_header(wire.encode_header(MsgType.ERROR, 5000), authenticated=False)
    assert wire.decode_header(wire.encode_header(MsgType.HELLO, 32), authenticated=False)


def test_payload_range_and_flag_checks() -> None:
    with pytest.raises(wire.BadPayload, match="outside"):
        wire.decode_data(wire.data_header(1, SIZE - 100, 0) + b"y" * 200, SIZE)
    with pytest.raises(wire.BadPayload, match="no data"):
        wire.decode_data(wire.data_header(1, 0, 0), SIZE)
    with pytest.raises(wire.BadPayload, match="unknown write flags"):
        wire.decode_data(wire.data_header(1, 0, 0x80) + b"y", SIZE)
    with pytest.raises(wire.BadPayload, match="outside"):
        wire.decode_zero(wire.encode_zero(1, SIZE, 1, 0), SIZE)
    with pytest.raises(wire.BadPayload, match="UTF-8"):
        wire.decode_text(b"\xff\xfe", "ERROR")


@given(st.binary(min_size=wire.HEADER_SIZE, max_size=wire.HEADER_SIZE), st.booleans())
def test_fuzz_header_only_typed_errors(raw: bytes, authed: bool) -> None:
    try:
        hdr = wire.decode_header(raw, authed)
    except wire.FrameError:
        return
    assert raw[:4] == wire.MAGIC
    assert hdr.length <= (wire.MAX_PAYLOAD if authed else wire.PREAUTH_MAX)


@given(st.binary(max_size=256), st.integers(min_value=1, max_value=2**40))
def test_fuzz_payload_decoders_only_typed_errors(payload: bytes, size: int) -> None:
    decoders: list[Callable[[], object]] = [
        lambda: wire.decode_data(payload, size),
        lambda: wire.decode_rs_data(payload, size),
        lambda: wire.decode_u64(payload),
        lambda: wire.decode_text(payload, "ERROR"),
        lambda: csum_resync.decode_csum(payload, size),  # RS_CSUM
        lambda: csum_resync.decode_csum_reply(payload, size),  # RS_CSUM_REPLY
        lambda: wire.decode_ack_range(payload),  # WRITE_ACK_RANGE
    ]
    for decode in decoders:
        with contextlib.suppress(wire.FrameError):
            decode()
    if len(payload) == 24:
        try:
            z = wire.decode_zero(payload, size)
            assert z.offset + z.length <= size
        except wire.FrameError:
            pass


def test_ack_range_round_trip_and_errors() -> None:
    assert wire.decode_ack_range(wire.encode_ack_range(7, 3)) == range(7, 10)
    hdr = wire.decode_header(wire.encode_header(MsgType.WRITE_ACK_RANGE, 12))
    assert hdr == wire.Header(MsgType.WRITE_ACK_RANGE, 12)
    with pytest.raises(wire.BadLength, match="must be 12 bytes"):
        wire.decode_header(wire.encode_header(MsgType.WRITE_ACK_RANGE, 8))
    with pytest.raises(wire.BadPayload, match="bytes 8-11 .count. are 0"):
        wire.decode_ack_range(wire.encode_ack_range(7, 0))
    with pytest.raises(wire.BadPayload, match="bytes 0-7 .first seq. = 0"):
        wire.decode_ack_range(wire.encode_ack_range(0, 1))
    with pytest.raises(wire.BadPayload, match="bytes 0-7"):
        wire.decode_ack_range(wire.encode_ack_range(2**64 - 1, 2))
    with pytest.raises(wire.BadPayload, match="expected 12"):
        wire.decode_ack_range(b"\0" * 8)
