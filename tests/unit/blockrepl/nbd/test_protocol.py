"""NBD codec tests and hypothesis fuzzing of every decoder."""

from __future__ import annotations

import errno
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockrepl.nbd import protocol as p

SIZE = 1 << 20
TF = p.TFlag.HAS_FLAGS | p.TFlag.SEND_FLUSH | p.TFlag.SEND_FUA


def req(
    cmd: int, offset: int = 0, length: int = 512, flags: int = 0, magic: int = p.REQUEST_MAGIC
) -> bytes:
    return struct.pack(">IHHQQI", magic, flags, cmd, 0xC0FFEE, offset, length)


def test_greeting_and_client_flags() -> None:
    g = p.encode_greeting(p.HandshakeFlag.FIXED_NEWSTYLE | p.HandshakeFlag.NO_ZEROES)
    assert g == b"NBDMAGICIHAVEOPT\x00\x03"
    flags = p.decode_client_flags(b"\x00\x00\x00\x03", p.HandshakeFlag(3))
    assert flags == p.ClientFlag.C_FIXED_NEWSTYLE | p.ClientFlag.C_NO_ZEROES
    with pytest.raises(p.ProtocolError, match="unknown bits 0x4"):
        p.decode_client_flags(b"\x00\x00\x00\x05", p.HandshakeFlag(3))
    with pytest.raises(p.ProtocolError, match="did not offer"):
        p.decode_client_flags(b"\x00\x00\x00\x03", p.HandshakeFlag.FIXED_NEWSTYLE)
    with pytest.raises(p.ProtocolError, match="fixed newstyle"):
        p.decode_client_flags(b"\x00\x00\x00\x00", p.HandshakeFlag(3))


def test_option_header_validation() -> None:
    hdr = struct.pack(">QII", p.IHAVEOPT, p.Opt.GO, 10)
    assert p.decode_option_header(hdr) == p.OptionHeader(p.Opt.GO, 10)
    with pytest.raises(p.ProtocolError, match="bad magic"):
        p.decode_option_header(struct.pack(">QII", 1, 7, 0))
    with pytest.raises(p.ProtocolError, match="exceeds"):
        p.decode_option_header(struct.pack(">QII", p.IHAVEOPT, 7, 1 << 30))
    unknown = p.decode_option_header(struct.pack(">QII", p.IHAVEOPT, 0x7654321, 4))
    assert unknown.option == 0x7654321  # answered with ERR_UNSUP, not a disconnect


def test_info_request() -> None:
    data = struct.pack(">I", 3) + b"vol" + struct.pack(">HHH", 2, p.Info.NAME, p.Info.BLOCK_SIZE)
    assert p.decode_info_request(data) == p.InfoRequest("vol", (1, 3))
    with pytest.raises(p.OptionError) as ei:
        p.decode_info_request(struct.pack(">I", 99) + b"vol\x00\x00")
    assert ei.value.rep is p.Rep.ERR_INVALID
    with pytest.raises(p.OptionError, match="do not match"):
        p.decode_info_request(data + b"\x00")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (req(p.Cmd.READ, SIZE - 512, 1024), errno.EINVAL),
        (req(p.Cmd.WRITE, SIZE - 512, 1024), errno.ENOSPC),
        (req(p.Cmd.WRITE_ZEROES, SIZE, 1), errno.ENOSPC),
        (req(p.Cmd.TRIM, SIZE, 1), errno.EINVAL),
        (req(p.Cmd.READ, 0, 0), errno.EINVAL),
        (req(p.Cmd.FLUSH, 0, 512), errno.EINVAL),
        (req(p.Cmd.BLOCK_STATUS), errno.EINVAL),
        (req(99), errno.EINVAL),
        (req(p.Cmd.READ, flags=p.CmdFlag.DF), errno.EINVAL),
        (req(p.Cmd.READ, length=p.MAX_PAYLOAD + 1), errno.EOVERFLOW),
    ],
)
def test_request_errors(raw: bytes, code: int) -> None:
    with pytest.raises(p.RequestError) as ei:
        p.check_request(p.decode_request(raw), SIZE, TF)
    assert ei.value.errno == code


def test_good_requests_and_read_only() -> None:
    for raw in (req(p.Cmd.READ), req(p.Cmd.WRITE, flags=p.CmdFlag.FUA), req(p.Cmd.FLUSH, 0, 0)):
        p.check_request(p.decode_request(raw), SIZE, TF)
    with pytest.raises(p.RequestError) as ei:
        p.check_request(p.decode_request(req(p.Cmd.WRITE)), SIZE, TF | p.TFlag.READ_ONLY)
    assert ei.value.errno == errno.EPERM


def test_bad_request_magic_and_huge_write_are_fatal() -> None:
    with pytest.raises(p.ProtocolError, match="bad magic 0xdeadbeef"):
        p.decode_request(req(p.Cmd.READ, magic=0xDEADBEEF))
    with pytest.raises(p.ProtocolError, match="exceeds"):
        p.decode_request(req(p.Cmd.WRITE, length=p.MAX_PAYLOAD + 1))


def test_reply_encoding() -> None:
    assert p.encode_simple_reply(7, 5) == struct.pack(">IIQ", 0x67446698, 5, 7)
    r = p.encode_option_reply(p.Opt.GO, p.Rep.ERR_UNSUP, b"no")
    assert r == struct.pack(">QIII", p.REPLY_MAGIC, 7, 2**31 + 1, 2) + b"no"
    assert len(p.encode_export_name_reply(SIZE, TF, no_zeroes=False)) == 134
    assert len(p.encode_export_name_reply(SIZE, TF, no_zeroes=True)) == 10


# ---------------------------------------------------------------- fuzz: decoders never crash
EXPECTED = (p.ProtocolError, p.OptionError)


@given(st.binary(max_size=64))
def test_fuzz_client_flags(data: bytes) -> None:
    try:
        p.decode_client_flags(data, p.HandshakeFlag(3))
    except p.ProtocolError as exc:
        assert str(exc)


@given(st.binary(min_size=16, max_size=16) | st.binary(max_size=40))
def test_fuzz_option_header(data: bytes) -> None:
    try:
        hdr = p.decode_option_header(data)
    except p.ProtocolError as exc:
        assert str(exc)
    else:
        assert hdr.length <= p.MAX_OPTION_LEN


@given(st.binary(max_size=300))
def test_fuzz_info_request(data: bytes) -> None:
    try:
        r = p.decode_info_request(data)
    except p.OptionError as exc:
        assert exc.rep is p.Rep.ERR_INVALID
    else:
        assert len(r.name.encode()) + 6 + 2 * len(r.infos) == len(data)


@given(
    st.binary(min_size=28, max_size=28)
    | st.builds(
        req,
        st.integers(0, 0xFFFF),
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**32 - 1),
        st.integers(0, 0xFFFF),
    )
)
def test_fuzz_requests(data: bytes) -> None:
    try:
        r = p.decode_request(data)
        p.check_request(r, SIZE, TF)
    except p.ProtocolError as exc:
        assert str(exc)
    except p.RequestError as exc:
        assert exc.errno in (errno.EINVAL, errno.ENOSPC, errno.EOVERFLOW, errno.EPERM)
    else:
        assert r.offset + r.length <= SIZE
