"""Replication link framing: strict pure encoders/decoders.

Every frame is a 12-byte header followed by ``length`` payload bytes (big-endian)::

    0   4s  magic    b"BRPL"
    4   u8  version  1
    5   u8  type     MsgType
    6   u16 flags    0 (reserved; any other value is refused)
    8   u32 length   payload bytes, at most MAX_PAYLOAD (and PREAUTH_MAX before auth)

Payloads (``seq`` orders a Primary's replicated requests; acks echo it):

* HELLO   32-byte random challenge            AUTH   32-byte HMAC-SHA256 response
* HANDSHAKE  UTF-8 JSON (see handshake.py)     ERROR  UTF-8 text, the peer's reason
* DATA    u64 seq | u64 offset | u32 dflags | data        (application write)
* ZERO    u64 seq | u64 offset | u32 dflags | u32 length  (write-zeroes / trim)
* RECV_ACK, WRITE_ACK, FLUSH, FLUSH_ACK   u64 seq
* BITMAP  the sender's bitmap bytes (bit n = 4 KiB block n, LSB first)
* SYNC_UUID u64 uuid               SYNC_DONE  4 x u64 generation of the source
* RS_DATA u64 offset | data        RS_ACK     u64 offset | u32 length
* PING, PONG  u64 nonce            STATE      UTF-8 JSON {"role": ..., "disk": ...}
* READ_REQ u64 id | u64 offset | u32 length   READ_REPLY u64 id | u32 errno | data
* RS_CSUM u64 offset | u32 length | digests   RS_CSUM_REPLY u64 offset | u32 length | mask
* WRITE_ACK_RANGE u64 first seq | u32 count   (= WRITE_ACK for seq first .. first+count-1;
  sent only to a peer whose HANDSHAKE has ``ack_ranges``)

Decoders raise a :class:`FrameError` subclass naming the byte at fault; the connection
is then dropped. Nothing is written to disk from a frame that failed to decode.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import NamedTuple

from blockrepl.errors import BlockReplError

MAGIC = b"BRPL"
VERSION = 1
HEADER = struct.Struct(">4sBBHI")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 32 * 1024 * 1024 + 64
PREAUTH_MAX = 4096  # before authentication only tiny frames are read at all
NONCE_LEN = 32
MAC_LEN = 32


class FrameError(BlockReplError):
    """The byte stream is not a valid replication frame; drop the connection."""


class BadMagic(FrameError):
    pass


class BadVersion(FrameError):
    pass


class BadLength(FrameError):
    pass


class BadType(FrameError):
    pass


class BadPayload(FrameError):
    pass


class MsgType(IntEnum):
    HELLO = 1
    AUTH = 2
    HANDSHAKE = 3
    ERROR = 4
    DATA = 5
    ZERO = 6
    RECV_ACK = 7
    WRITE_ACK = 8
    FLUSH = 9
    FLUSH_ACK = 10
    BITMAP = 11
    SYNC_UUID = 12
    SYNC_DONE = 13
    RS_DATA = 14
    RS_ACK = 15
    PING = 16
    PONG = 17
    STATE = 18
    VERIFY_REQ = 19  # online verify (verify.py): u64 offset | u32 length | u32 run id
    VERIFY_REPLY = 20  # the same 16 bytes | one 16-byte digest per 4 KiB block
    READ_REQ = 21  # Diskless Primary reads through the peer: u64 id | u64 offset | u32 length
    READ_REPLY = 22  # u64 id | u32 errno (0 = ok) | data (length bytes when errno is 0)
    RS_CSUM = 23  # checksum resync (csum_resync.py): u64 offset | u32 length | digests
    RS_CSUM_REPLY = 24  # u64 offset | u32 length | bitmask of the blocks that differ
    WRITE_ACK_RANGE = 25  # u64 first seq | u32 count: WRITE_ACK for count consecutive seqs


class DFlag(IntFlag):
    FUA = 1
    TRIM = 2  # ZERO frames: the range may be deallocated
    ALL = 3


PREAUTH_TYPES = frozenset({MsgType.HELLO, MsgType.AUTH, MsgType.ERROR})
# Plain dict lookups: MsgType(x), DFlag(x) and IntFlag & are Python-level calls, a few
# microseconds per frame on the Secondary's hot path.
_BY_VALUE: dict[int, MsgType] = {int(t): t for t in MsgType}
_DFLAGS: dict[int, DFlag] = {v: DFlag(v) for v in range(int(DFlag.ALL) + 1)}
FUA_BIT = int(DFlag.FUA)
TRIM_BIT = int(DFlag.TRIM)
_U64 = struct.Struct(">Q")
_SEQ_OFF = struct.Struct(">QQI")
_ZERO = struct.Struct(">QQII")
_RS_ACK = struct.Struct(">QI")
_GEN = struct.Struct(">QQQQ")
_ACK_RANGE = struct.Struct(">QI")
ACK_RANGE_MAX = 2**32 - 1
# Exact payload sizes for fixed-size messages; None = variable (checked by its decoder).
FIXED_LEN: dict[MsgType, int | None] = {
    MsgType.HELLO: NONCE_LEN,
    MsgType.AUTH: MAC_LEN,
    MsgType.HANDSHAKE: None,
    MsgType.ERROR: None,
    MsgType.DATA: None,
    MsgType.ZERO: _ZERO.size,
    MsgType.RECV_ACK: 8,
    MsgType.WRITE_ACK: 8,
    MsgType.FLUSH: 8,
    MsgType.FLUSH_ACK: 8,
    MsgType.BITMAP: None,
    MsgType.SYNC_UUID: 8,
    MsgType.SYNC_DONE: _GEN.size,
    MsgType.RS_DATA: None,
    MsgType.RS_ACK: _RS_ACK.size,
    MsgType.PING: 8,
    MsgType.PONG: 8,
    MsgType.STATE: None,
    MsgType.VERIFY_REQ: 16,
    MsgType.VERIFY_REPLY: None,
    MsgType.READ_REQ: 20,
    MsgType.READ_REPLY: None,
    MsgType.RS_CSUM: None,
    MsgType.RS_CSUM_REPLY: None,
    MsgType.WRITE_ACK_RANGE: 12,
}


class Header(NamedTuple):  # a frozen dataclass's __init__ costs a microsecond per frame
    type: MsgType
    length: int


def encode_header(mtype: MsgType, length: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, int(mtype), 0, length)


def decode_header(raw: bytes, authenticated: bool = True) -> Header:
    if len(raw) != HEADER_SIZE:
        raise BadLength(f"frame header is {len(raw)} bytes, expected {HEADER_SIZE}")
    magic, version, mtype, flags, length = HEADER.unpack(raw)
    if magic != MAGIC:
        raise BadMagic(
            f"bytes 0-3 of the frame header are {magic!r}, expected {MAGIC!r}: "
            "not a blockrepl replication peer (check --peer/--listen-repl addresses)"
        )
    if version != VERSION:
        raise BadVersion(f"byte 4 (version) is {version}, this node speaks {VERSION}")
    t = _BY_VALUE.get(mtype)
    if t is None:
        raise BadType(f"byte 5 (type) is {mtype}: unknown message type")
    if flags:
        raise BadPayload(f"bytes 6-7 (flags) are 0x{flags:x}; reserved, must be 0")
    if not authenticated and t not in PREAUTH_TYPES:
        raise BadType(f"byte 5 (type) is {t.name} before authentication; expected HELLO/AUTH")
    limit = MAX_PAYLOAD if authenticated else PREAUTH_MAX
    if length > limit:
        raise BadLength(f"bytes 8-11 (length) = {length} exceed the {limit}-byte maximum")
    want = FIXED_LEN[t]
    if want is not None and length != want:
        raise BadLength(f"bytes 8-11 (length) = {length}: {t.name} payload must be {want} bytes")
    return Header(t, length)


def frame(mtype: MsgType, payload: bytes = b"") -> bytes:
    return encode_header(mtype, len(payload)) + payload


# ---------------------------------------------------------------- payload codecs
def u64(value: int) -> bytes:
    return _U64.pack(value)


def decode_u64(payload: bytes) -> int:
    if len(payload) != 8:
        raise BadPayload(f"expected an 8-byte payload, got {len(payload)}")
    return int(_U64.unpack(payload)[0])


def encode_ack_range(first: int, count: int) -> bytes:
    return _ACK_RANGE.pack(first, count)


def decode_ack_range(payload: bytes) -> range:
    """The acknowledged sequence numbers."""
    if len(payload) != _ACK_RANGE.size:
        raise BadPayload(f"WRITE_ACK_RANGE payload is {len(payload)} bytes, expected 12")
    first, count = _ACK_RANGE.unpack(payload)
    if count == 0:
        raise BadPayload("WRITE_ACK_RANGE bytes 8-11 (count) are 0: must acknowledge >= 1 seq")
    if first == 0 or first + count - 1 >= 2**64:
        raise BadPayload(
            f"WRITE_ACK_RANGE bytes 0-7 (first seq) = {first} with count {count}: "
            "sequence numbers run from 1 to 2**64-1"
        )
    return range(first, first + count)


def data_header(seq: int, offset: int, dflags: int) -> bytes:
    return _SEQ_OFF.pack(seq, offset, dflags)


class Data(NamedTuple):
    seq: int
    offset: int
    dflags: DFlag
    data: memoryview


def _check_range(what: str, offset: int, length: int, size: int) -> None:
    if offset + length > size:
        raise BadPayload(f"{what} [{offset}, +{length}) is outside the {size}-byte volume")


def _dflags(raw: int) -> DFlag:
    flags = _DFLAGS.get(raw)
    if flags is None:
        raise BadPayload(f"unknown write flags 0x{raw:x}")
    return flags


def decode_data(payload: bytes, size: int) -> Data:
    if len(payload) <= _SEQ_OFF.size:
        raise BadPayload(f"DATA payload of {len(payload)} bytes carries no data")
    seq, offset, raw = _SEQ_OFF.unpack_from(payload)
    view = memoryview(payload)[_SEQ_OFF.size :]
    _check_range("DATA", offset, len(view), size)
    return Data(seq, offset, _dflags(raw), view)


@dataclass(frozen=True)
class Zero:
    seq: int
    offset: int
    dflags: DFlag
    length: int


def encode_zero(seq: int, offset: int, length: int, dflags: int) -> bytes:
    return _ZERO.pack(seq, offset, dflags, length)


def decode_zero(payload: bytes, size: int) -> Zero:
    seq, offset, raw, length = _ZERO.unpack(payload)
    _check_range("ZERO", offset, length, size)
    return Zero(seq, offset, _dflags(raw), length)


def rs_data(offset: int, data: bytes) -> bytes:
    return rs_data_head(offset) + data


def rs_data_head(offset: int) -> bytes:
    """The part of an RS_DATA payload before the data (sent with ``send_parts``, so the
    data is not copied into a concatenation)."""
    return _U64.pack(offset)


def decode_rs_data(payload: bytes, size: int) -> tuple[int, memoryview]:
    if len(payload) <= 8:
        raise BadPayload(f"RS_DATA payload of {len(payload)} bytes carries no data")
    offset = int(_U64.unpack_from(payload)[0])
    view = memoryview(payload)[8:]
    _check_range("RS_DATA", offset, len(view), size)
    return offset, view


def encode_rs_ack(offset: int, length: int) -> bytes:
    return _RS_ACK.pack(offset, length)


def decode_rs_ack(payload: bytes) -> tuple[int, int]:
    offset, length = _RS_ACK.unpack(payload)
    return int(offset), int(length)


def encode_gen(gen: tuple[int, int, int, int]) -> bytes:
    return _GEN.pack(*gen)


def decode_gen(payload: bytes) -> tuple[int, int, int, int]:
    c, b, h1, h2 = _GEN.unpack(payload)
    return int(c), int(b), int(h1), int(h2)


def decode_text(payload: bytes, what: str) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"{what} payload is not UTF-8 (byte {exc.start})") from None


# ---------------------------------------------------------------- diskless reads
_READ_REQ = struct.Struct(">QQI")
_READ_REPLY = struct.Struct(">QI")
READ_MAX = 32 * 1024 * 1024  # one NBD request at most


def encode_read_req(req_id: int, offset: int, length: int) -> bytes:
    return _READ_REQ.pack(req_id, offset, length)


def decode_read_req(payload: bytes, size: int) -> tuple[int, int, int]:
    req_id, offset, length = _READ_REQ.unpack(payload)
    if length == 0 or length > READ_MAX:
        raise BadPayload(f"READ_REQ length {length} (bytes 16-19) must be 1..{READ_MAX}")
    _check_range("READ_REQ", offset, length, size)
    return int(req_id), int(offset), int(length)


def encode_read_reply(req_id: int, err: int, data: bytes = b"") -> bytes:
    return read_reply_head(req_id, err) + data


def read_reply_head(req_id: int, err: int) -> bytes:
    """The part of a READ_REPLY payload before the data."""
    return _READ_REPLY.pack(req_id, err)


def decode_read_reply(payload: bytes) -> tuple[int, int, memoryview]:
    if len(payload) < _READ_REPLY.size:
        raise BadPayload(f"READ_REPLY payload of {len(payload)} bytes is < {_READ_REPLY.size}")
    req_id, err = _READ_REPLY.unpack_from(payload)
    data = memoryview(payload)[_READ_REPLY.size :]
    if err and data:
        raise BadPayload(f"READ_REPLY with errno {err} carries {len(data)} data bytes")
    return int(req_id), int(err), data
