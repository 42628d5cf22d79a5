"""Pure parts of the on-io-error handling: policy parsing, error classes, block tracking,
and the READ_REQ/READ_REPLY codecs used by a Diskless replica."""

from __future__ import annotations

import errno

import pytest

from blockrepl.diskerror import (
    DiskFailure,
    FailedBlocks,
    OnIoError,
    Unflushed,
    is_device_error,
    parse_on_io_error,
)
from blockrepl.errors import BlockReplError
from blockrepl.layout import AL_EXTENT_SIZE
from blockrepl.replication import wire


def test_parse_policy() -> None:
    assert parse_on_io_error("detach") is OnIoError.DETACH
    assert parse_on_io_error("pass_on") is OnIoError.PASS_ON
    assert parse_on_io_error("Pass-On") is OnIoError.PASS_ON
    with pytest.raises(BlockReplError, match="--on-io-error 'panic'.*detach.*pass_on"):
        parse_on_io_error("panic")


@pytest.mark.parametrize(
    ("code", "device"),
    [(errno.EIO, True), (errno.ENXIO, True), (errno.EINVAL, False), (errno.ENOSPC, False)],
)
def test_device_errors_are_told_from_request_errors(code: int, device: bool) -> None:
    assert is_device_error(OSError(code, "x")) is device
    assert not is_device_error(ValueError("EIO"))


def test_failure_description() -> None:
    f = DiskFailure.from_exc("read", OSError(errno.EIO, "Input/output error"), 8192, 4096)
    d = f.describe()
    assert (d["op"], d["errno"], d["error"], d["offset"], d["length"]) == (
        "read",
        5,
        "EIO",
        8192,
        4096,
    )
    assert DiskFailure.from_exc("flush", OSError("no errno"), None, 0).errno == errno.EIO


def test_failed_blocks_cover_whole_4k_blocks() -> None:
    fb = FailedBlocks()
    assert not fb.touches(0, 1 << 20)
    fb.add(8192 + 100, 10)  # inside block 2
    assert fb.count() == 1
    assert fb.touches(8192, 1) and fb.touches(12287, 1) and fb.touches(0, 8193)
    assert not fb.touches(0, 8192) and not fb.touches(12288, 4096)
    assert not fb.touches(8192, 0)


def test_unflushed_keeps_writes_completed_during_a_flush() -> None:
    u = Unflushed()
    u.add(0, 4096)
    u.add(AL_EXTENT_SIZE - 1, 2)  # straddles extents 0 and 1
    assert u.ranges() == [(0, AL_EXTENT_SIZE), (AL_EXTENT_SIZE, AL_EXTENT_SIZE)]
    epoch = u.snapshot()  # flush starts
    u.add(5 * AL_EXTENT_SIZE, 1)  # completes while the flush runs: not covered by it
    u.add(0, 1)  # rewritten during the flush: must stay tracked
    u.flushed(epoch)
    assert u.ranges() == [(0, AL_EXTENT_SIZE), (5 * AL_EXTENT_SIZE, AL_EXTENT_SIZE)]
    u.flushed(u.snapshot())
    assert u.ranges() == []
    u.add(0, 0)
    assert u.ranges() == []


def test_read_req_codec_and_bounds() -> None:
    payload = wire.encode_read_req(7, 4096, 512)
    hdr = wire.decode_header(wire.encode_header(wire.MsgType.READ_REQ, len(payload)))
    assert hdr.type is wire.MsgType.READ_REQ
    assert wire.decode_read_req(payload, 1 << 20) == (7, 4096, 512)
    with pytest.raises(wire.BadPayload, match="outside"):
        wire.decode_read_req(wire.encode_read_req(1, (1 << 20) - 100, 512), 1 << 20)
    with pytest.raises(wire.BadPayload, match="length 0"):
        wire.decode_read_req(wire.encode_read_req(1, 0, 0), 1 << 20)
    with pytest.raises(wire.BadLength):
        wire.decode_header(wire.encode_header(wire.MsgType.READ_REQ, 19))


def test_read_reply_codec() -> None:
    rid, err, data = wire.decode_read_reply(wire.encode_read_reply(9, 0, b"abc"))
    assert (rid, err, bytes(data)) == (9, 0, b"abc")
    rid, err, data = wire.decode_read_reply(wire.encode_read_reply(9, errno.EIO))
    assert (rid, err, len(data)) == (9, errno.EIO, 0)
    with pytest.raises(wire.BadPayload, match="errno 5 carries 3 data bytes"):
        wire.decode_read_reply(wire.encode_read_reply(9, errno.EIO, b"abc"))
    with pytest.raises(wire.BadPayload, match="< 12"):
        wire.decode_read_reply(b"short")
