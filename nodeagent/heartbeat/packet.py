"""Heartbeat wire format: one authenticated UDP datagram (or serial frame) per packet.

All integers are big-endian. A packet is at most ``MAX_PACKET`` (1400) bytes, so it fits
one Ethernet frame without IP fragmentation.

    offset  size  field
    0       4     magic b"VGHB"
    4       1     version (1)
    5       1     type: 1 HEARTBEAT, 2 ACK
    6       2     total length of the packet in bytes, MAC included
    8       8     cluster id: first 8 bytes of SHA-256(cluster name)
    16      8     sender incarnation (random, chosen when the sender's membership starts)
    24      8     sequence number (per incarnation, from 1; an ACK repeats the sender's last)
    32      1     L = length of the sender's node name (1..63)
    33      L     sender node name, UTF-8
    then, for HEARTBEAT:
            1     N = number of peer entries (0..255)
            N x   peer entry:
                  1     length of the peer's name (1..63), then the name, UTF-8
                  8     the peer's incarnation as the sender knows it (0: none)
                  8     highest sequence the sender accepted from that incarnation
                        (its acknowledgement of the peer; 0: no acknowledgement)
                  4     heard age in ms: how long ago, on the sender's clock, the sender
                        last heard that peer; 0xFFFFFFFF: never, or beyond the u32 range
                  1     flags: bit 0 REFUSED (the sender will never acknowledge this
                        incarnation again: the peer must rejoin with a new incarnation);
                        other bits must be 0
    or, for ACK:
            1     length of the acknowledged node's name, then the name, UTF-8
            8     acknowledged incarnation
            8     acknowledged sequence
    last    16    HMAC-SHA256(cluster key, every byte before the MAC), truncated to 16 bytes

The decoder is strict: any deviation raises `PacketError`, whose `reason` is a short
counter label (``truncated``, ``magic``, ``version``, ``length``, ``cluster``, ``mac``,
``type``, ``name``, ``field``) and whose message names the offending byte and the fix.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass

MAGIC = b"VGHB"
VERSION = 1
MAX_PACKET = 1400
MAC_SIZE = 16
MAX_NAME = 63
MAX_PEERS = 255
NEVER_MS = 0xFFFFFFFF
FLAG_REFUSED = 0x01

_HEADER = struct.Struct(">4sBBH8sQQ")
_ENTRY_TAIL = struct.Struct(">QQIB")
_ACK_TAIL = struct.Struct(">QQ")
MIN_PACKET = _HEADER.size + 2 + MAC_SIZE  # header, a 1-byte name, its length byte, MAC


class PacketType(enum.IntEnum):
    HEARTBEAT = 1
    ACK = 2


class PacketError(ValueError):
    """A datagram that is not a valid heartbeat packet; `reason` labels the counter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PeerReport:
    """What a HEARTBEAT's sender knows about one peer."""

    name: str
    incarnation: int
    seq: int
    heard_age_ms: int
    refused: bool = False


@dataclass(frozen=True)
class AckBody:
    node: str
    incarnation: int
    seq: int


@dataclass(frozen=True)
class Packet:
    type: PacketType
    sender: str
    incarnation: int
    seq: int
    peers: tuple[PeerReport, ...] = ()
    ack: AckBody | None = None


def cluster_id(cluster_name: str) -> bytes:
    return hashlib.sha256(cluster_name.encode()).digest()[:8]


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()[:MAC_SIZE]


def _encode_name(name: str, what: str) -> bytes:
    raw = name.encode()
    if not 1 <= len(raw) <= MAX_NAME:
        raise PacketError(
            "name", f"{what} {name!r} is {len(raw)} bytes; node names must be 1..{MAX_NAME} bytes"
        )
    return bytes([len(raw)]) + raw


def _check_u(value: int, bits: int, what: str) -> None:
    if not 0 <= value < 2**bits:
        raise PacketError("field", f"{what}={value} does not fit an unsigned {bits}-bit field")


class Codec:
    """Encodes and decodes packets of one cluster, authenticated with its key."""

    def __init__(self, cluster_name: str, key: bytes) -> None:
        if not key:
            raise ValueError("the cluster key is empty; give the key bytes from the cluster secret")
        self.cluster = cluster_id(cluster_name)
        self._key = key

    def encode(self, pkt: Packet) -> bytes:
        for value, what in ((pkt.incarnation, "incarnation"), (pkt.seq, "seq")):
            _check_u(value, 64, what)
        body = bytearray(_encode_name(pkt.sender, "sender"))
        if pkt.type is PacketType.HEARTBEAT:
            if pkt.ack is not None or len(pkt.peers) > MAX_PEERS:
                raise PacketError("field", f"a HEARTBEAT carries no ack and <= {MAX_PEERS} peers")
            body.append(len(pkt.peers))
            for p in pkt.peers:
                _check_u(p.incarnation, 64, f"peer {p.name} incarnation")
                _check_u(p.seq, 64, f"peer {p.name} seq")
                _check_u(p.heard_age_ms, 32, f"peer {p.name} heard_age_ms")
                body += _encode_name(p.name, "peer")
                flags = FLAG_REFUSED if p.refused else 0
                body += _ENTRY_TAIL.pack(p.incarnation, p.seq, p.heard_age_ms, flags)
        else:
            if pkt.ack is None or pkt.peers:
                raise PacketError("field", "an ACK carries exactly one ack body and no peers")
            _check_u(pkt.ack.incarnation, 64, "acked incarnation")
            _check_u(pkt.ack.seq, 64, "acked seq")
            body += _encode_name(pkt.ack.node, "acked node")
            body += _ACK_TAIL.pack(pkt.ack.incarnation, pkt.ack.seq)
        total = _HEADER.size + len(body) + MAC_SIZE
        if total > MAX_PACKET:
            raise PacketError(
                "length",
                f"packet would be {total} bytes, over {MAX_PACKET}: fewer or shorter names",
            )
        head = _HEADER.pack(
            MAGIC, VERSION, int(pkt.type), total, self.cluster, pkt.incarnation, pkt.seq
        )
        data = head + bytes(body)
        return data + _mac(self._key, data)

    def decode(self, data: bytes) -> Packet:
        n = len(data)
        if n < MIN_PACKET:
            raise PacketError(
                "truncated", f"{n} bytes is shorter than the {MIN_PACKET}-byte minimum"
            )
        magic, version, ptype, total, cluster, incarnation, seq = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise PacketError("magic", f"bytes 0..3 are {magic!r}, not {MAGIC!r}: not a heartbeat")
        if version != VERSION:
            raise PacketError(
                "version", f"byte 4: version {version}, this agent speaks {VERSION}: upgrade"
            )
        if total != n:
            reason = "truncated" if total > n else "length"
            raise PacketError(reason, f"bytes 6..7 announce {total} bytes but the datagram has {n}")
        if n > MAX_PACKET:
            raise PacketError("length", f"{n} bytes is over the {MAX_PACKET}-byte maximum")
        if cluster != self.cluster:
            raise PacketError(
                "cluster", "bytes 8..15: packet of another cluster (check the cluster name)"
            )
        if not hmac.compare_digest(data[-MAC_SIZE:], _mac(self._key, data[:-MAC_SIZE])):
            raise PacketError(
                "mac",
                "HMAC mismatch: the sender uses another cluster key, or the packet was altered",
            )
        try:
            kind = PacketType(ptype)
        except ValueError:
            raise PacketError("type", f"byte 5: unknown packet type {ptype}") from None
        reader = _Reader(data, _HEADER.size, n - MAC_SIZE)
        sender = reader.name("sender")
        if kind is PacketType.HEARTBEAT:
            peers = []
            for i in range(reader.byte("peer count")):
                name = reader.name(f"peer {i} name")
                p_inc, p_seq, age, flags = reader.struct(_ENTRY_TAIL, f"peer {i} entry")
                if flags & ~FLAG_REFUSED:
                    raise PacketError("field", f"peer {i} flags {flags:#x}: unknown bits set")
                peers.append(PeerReport(name, p_inc, p_seq, age, bool(flags & FLAG_REFUSED)))
            reader.end()
            return Packet(kind, sender, incarnation, seq, peers=tuple(peers))
        acked = reader.name("acked node")
        a_inc, a_seq = reader.struct(_ACK_TAIL, "ack")
        reader.end()
        return Packet(kind, sender, incarnation, seq, ack=AckBody(acked, a_inc, a_seq))


class _Reader:
    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.limit = data, pos, end

    def _take(self, size: int, what: str) -> bytes:
        if self.pos + size > self.limit:
            raise PacketError(
                "truncated", f"{what} at byte {self.pos} needs {size} bytes past the body's end"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def byte(self, what: str) -> int:
        return self._take(1, what)[0]

    def name(self, what: str) -> str:
        at = self.pos
        size = self.byte(what)
        if not 1 <= size <= MAX_NAME:
            raise PacketError("name", f"{what} at byte {at}: length {size}, not 1..{MAX_NAME}")
        try:
            return self._take(size, what).decode()
        except UnicodeDecodeError:
            raise PacketError("name", f"{what} at byte {at + 1} is not UTF-8") from None

    def struct(self, layout: struct.Struct, what: str) -> tuple[int, ...]:
        return tuple(layout.unpack(self._take(layout.size, what)))

    def end(self) -> None:
        if self.pos != self.limit:
            raise PacketError(
                "length", f"{self.limit - self.pos} unexpected bytes at byte {self.pos}"
            )


__all__ = [
    "FLAG_REFUSED",
    "MAX_PACKET",
    "NEVER_MS",
    "AckBody",
    "Codec",
    "Packet",
    "PacketError",
    "PacketType",
    "PeerReport",
    "cluster_id",
]
