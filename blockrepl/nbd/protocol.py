"""NBD fixed-newstyle protocol: constants and strict pure encoders/decoders.

Reference: NetworkBlockDevice/nbd doc/proto.md. Big-endian throughout. Decoders raise
:class:`ProtocolError` (connection must be dropped) or :class:`OptionError` /
:class:`RequestError` (answer with an error reply and carry on).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

MAX_OPTION_LEN = 64 * 1024  # names are <= 4096 bytes; anything larger is abuse
MAX_PAYLOAD = 32 * 1024 * 1024  # the kernel's largest request; the spec's minimum maximum
MAX_NAME = 4096


class HandshakeFlag(IntFlag):
    FIXED_NEWSTYLE = 1
    NO_ZEROES = 2


class ClientFlag(IntFlag):
    C_FIXED_NEWSTYLE = 1
    C_NO_ZEROES = 2


class Opt(IntEnum):
    EXPORT_NAME = 1
    ABORT = 2
    LIST = 3
    STARTTLS = 5
    INFO = 6
    GO = 7
    STRUCTURED_REPLY = 8
    LIST_META_CONTEXT = 9
    SET_META_CONTEXT = 10
    EXTENDED_HEADERS = 11


class Rep(IntEnum):
    ACK = 1
    SERVER = 2
    INFO = 3
    ERR_UNSUP = 2**31 + 1
    ERR_POLICY = 2**31 + 2
    ERR_INVALID = 2**31 + 3
    ERR_PLATFORM = 2**31 + 4
    ERR_TLS_REQD = 2**31 + 5
    ERR_UNKNOWN = 2**31 + 6
    ERR_SHUTDOWN = 2**31 + 7
    ERR_BLOCK_SIZE_REQD = 2**31 + 8
    ERR_TOO_BIG = 2**31 + 9


class Info(IntEnum):
    EXPORT = 0
    NAME = 1
    DESCRIPTION = 2
    BLOCK_SIZE = 3


class TFlag(IntFlag):
    HAS_FLAGS = 1 << 0
    READ_ONLY = 1 << 1
    SEND_FLUSH = 1 << 2
    SEND_FUA = 1 << 3
    ROTATIONAL = 1 << 4
    SEND_TRIM = 1 << 5
    SEND_WRITE_ZEROES = 1 << 6
    SEND_DF = 1 << 7
    CAN_MULTI_CONN = 1 << 8
    SEND_CACHE = 1 << 10
    SEND_FAST_ZERO = 1 << 11


class Cmd(IntEnum):
    READ = 0
    WRITE = 1
    DISC = 2
    FLUSH = 3
    TRIM = 4
    CACHE = 5
    WRITE_ZEROES = 6
    BLOCK_STATUS = 7


class CmdFlag(IntFlag):
    FUA = 1 << 0
    NO_HOLE = 1 << 1
    DF = 1 << 2
    REQ_ONE = 1 << 3
    FAST_ZERO = 1 << 4


class ProtocolError(Exception):
    """The peer broke the protocol; the connection must be closed."""


@dataclass
class OptionError(Exception):
    """An option was understood well enough to reply with an error and continue."""

    rep: Rep
    message: str

    def __str__(self) -> str:
        return f"{self.rep.name}: {self.message}"


@dataclass
class RequestError(Exception):
    """A transmission request is answered with ``errno`` (connection stays up)."""

    errno: int
    message: str

    def __str__(self) -> str:
        return f"{errno.errorcode.get(self.errno, self.errno)}: {self.message}"


# ---------------------------------------------------------------- handshake
_GREETING = struct.Struct(">QQH")
_OPT_HDR = struct.Struct(">QII")
_OPT_REPLY = struct.Struct(">QIII")


def encode_greeting(flags: HandshakeFlag) -> bytes:
    return _GREETING.pack(NBDMAGIC, IHAVEOPT, int(flags))


def decode_client_flags(data: bytes, offered: HandshakeFlag) -> ClientFlag:
    if len(data) != 4:
        raise ProtocolError(f"client flags: expected 4 bytes, got {len(data)}")
    (value,) = struct.unpack(">I", data)
    known = int(ClientFlag.C_FIXED_NEWSTYLE | ClientFlag.C_NO_ZEROES)
    if value & ~known:
        raise ProtocolError(f"client flags 0x{value:08x} have unknown bits 0x{value & ~known:x}")
    flags = ClientFlag(value)
    if flags & ClientFlag.C_NO_ZEROES and not offered & HandshakeFlag.NO_ZEROES:
        raise ProtocolError("client set C_NO_ZEROES which the server did not offer")
    if not flags & ClientFlag.C_FIXED_NEWSTYLE:
        raise ProtocolError("client does not speak fixed newstyle (C_FIXED_NEWSTYLE unset)")
    return flags


@dataclass(frozen=True)
class OptionHeader:
    option: int  # may be unknown: the server answers ERR_UNSUP
    length: int


def decode_option_header(data: bytes) -> OptionHeader:
    if len(data) != _OPT_HDR.size:
        raise ProtocolError(f"option header: expected {_OPT_HDR.size} bytes, got {len(data)}")
    magic, option, length = _OPT_HDR.unpack(data)
    if magic != IHAVEOPT:
        raise ProtocolError(f"option header: bad magic 0x{magic:016x} (expected IHAVEOPT)")
    if length > MAX_OPTION_LEN:
        raise ProtocolError(f"option {option}: length {length} exceeds {MAX_OPTION_LEN} bytes")
    return OptionHeader(option, length)


@dataclass(frozen=True)
class InfoRequest:
    name: str
    infos: tuple[int, ...]


def decode_info_request(data: bytes) -> InfoRequest:
    """Payload of NBD_OPT_INFO / NBD_OPT_GO: u32 namelen, name, u16 n, n x u16."""
    if len(data) < 6:
        raise OptionError(Rep.ERR_INVALID, f"INFO/GO payload of {len(data)} bytes is < 6")
    (namelen,) = struct.unpack_from(">I", data)
    if namelen > len(data) - 6:
        raise OptionError(Rep.ERR_INVALID, f"name length {namelen} exceeds payload")
    name_bytes = data[4 : 4 + namelen]
    (count,) = struct.unpack_from(">H", data, 4 + namelen)
    if len(data) != 4 + namelen + 2 + 2 * count:
        raise OptionError(
            Rep.ERR_INVALID, f"{count} info requests do not match payload length {len(data)}"
        )
    infos = struct.unpack_from(f">{count}H", data, 6 + namelen)
    return InfoRequest(_decode_name(name_bytes), tuple(infos))


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OptionError(Rep.ERR_INVALID, f"export name is not UTF-8: {exc}") from exc


def decode_export_name(data: bytes) -> str:
    """EXPORT_NAME has no error reply: a bad name closes the connection."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"EXPORT_NAME: name is not UTF-8: {exc}") from exc


def encode_option_reply(option: int, rep: Rep, payload: bytes = b"") -> bytes:
    return _OPT_REPLY.pack(REPLY_MAGIC, option, int(rep), len(payload)) + payload


def encode_info_export(size: int, tflags: TFlag) -> bytes:
    return struct.pack(">HQH", Info.EXPORT, size, int(tflags))


def encode_info_block_size(minimum: int, preferred: int, maximum: int) -> bytes:
    return struct.pack(">HIII", Info.BLOCK_SIZE, minimum, preferred, maximum)


def encode_info_name(name: str) -> bytes:
    return struct.pack(">H", Info.NAME) + name.encode()


def encode_rep_server(name: str) -> bytes:
    raw = name.encode()
    return struct.pack(">I", len(raw)) + raw


def encode_export_name_reply(size: int, tflags: TFlag, no_zeroes: bool) -> bytes:
    return struct.pack(">QH", size, int(tflags)) + (b"" if no_zeroes else bytes(124))


# ---------------------------------------------------------------- transmission
_REQ = struct.Struct(">IHHQQI")
_SIMPLE = struct.Struct(">IIQ")
REQUEST_SIZE = _REQ.size


@dataclass(frozen=True)
class Request:
    flags: int
    cmd: int
    cookie: int
    offset: int
    length: int


def decode_request(data: bytes) -> Request:
    if len(data) != _REQ.size:
        raise ProtocolError(f"request header: expected {_REQ.size} bytes, got {len(data)}")
    magic, flags, cmd, cookie, offset, length = _REQ.unpack(data)
    if magic != REQUEST_MAGIC:
        raise ProtocolError(
            f"request header: bad magic 0x{magic:08x} (expected 0x{REQUEST_MAGIC:08x})"
        )
    if cmd == Cmd.WRITE and length > MAX_PAYLOAD:
        # We cannot skip that much payload safely, so this one is fatal.
        raise ProtocolError(f"WRITE of {length} bytes exceeds the {MAX_PAYLOAD}-byte maximum")
    return Request(flags, cmd, cookie, offset, length)


# Dict lookups and int masks: Cmd(x) and IntFlag & are Python-level calls per request.
CMD_BY_VALUE: dict[int, Cmd] = {int(c): c for c in Cmd}
FUA_BIT = int(CmdFlag.FUA)
NO_HOLE_BIT = int(CmdFlag.NO_HOLE)
_READ_ONLY = int(TFlag.READ_ONLY)

_ALLOWED_FLAGS = {
    Cmd.READ: CmdFlag.FUA,
    Cmd.WRITE: CmdFlag.FUA,
    Cmd.DISC: CmdFlag.FUA,
    Cmd.FLUSH: CmdFlag.FUA,
    Cmd.TRIM: CmdFlag.FUA,
    Cmd.WRITE_ZEROES: CmdFlag.FUA | CmdFlag.NO_HOLE,
}


def check_request(req: Request, size: int, tflags: TFlag) -> None:
    """Raise RequestError with the errno the spec prescribes; return if acceptable."""
    cmd = CMD_BY_VALUE.get(req.cmd)
    if cmd is None:
        raise RequestError(errno.EINVAL, f"unknown command {req.cmd}")
    allowed = _ALLOWED_FLAGS.get(cmd)
    if allowed is None:
        raise RequestError(errno.EINVAL, f"command {cmd.name} is not supported")
    if req.flags & ~int(allowed):
        raise RequestError(errno.EINVAL, f"flags 0x{req.flags:x} not valid for {cmd.name}")
    if cmd in (Cmd.FLUSH, Cmd.DISC):
        if req.offset or req.length:
            raise RequestError(errno.EINVAL, f"{cmd.name} needs offset = length = 0")
        return
    if req.length == 0:
        raise RequestError(errno.EINVAL, f"{cmd.name} of length 0")
    if cmd is Cmd.READ and req.length > MAX_PAYLOAD:
        raise RequestError(errno.EOVERFLOW, f"READ of {req.length} bytes > {MAX_PAYLOAD}")
    if req.offset + req.length > size:
        code = errno.ENOSPC if cmd in (Cmd.WRITE, Cmd.WRITE_ZEROES) else errno.EINVAL
        raise RequestError(
            code, f"{cmd.name} [{req.offset}, +{req.length}) beyond the export size {size}"
        )
    if cmd in (Cmd.WRITE, Cmd.TRIM, Cmd.WRITE_ZEROES) and int(tflags) & _READ_ONLY:
        raise RequestError(errno.EPERM, f"{cmd.name} on a read-only export")


def encode_simple_reply(cookie: int, error: int = 0) -> bytes:
    return _SIMPLE.pack(SIMPLE_REPLY_MAGIC, error, cookie)
