from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeagent.heartbeat.packet import (
    MAX_PACKET,
    NEVER_MS,
    AckBody,
    Codec,
    Packet,
    PacketError,
    PacketType,
    PeerReport,
)

KEY = b"cluster-key-0123456789"
codec = Codec("pg-cluster", KEY)

names = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=20
).filter(lambda s: 1 <= len(s.encode()) <= 63)
u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)

heartbeats = st.builds(
    Packet,
    type=st.just(PacketType.HEARTBEAT),
    sender=names,
    incarnation=u64,
    seq=u64,
    peers=st.lists(st.builds(PeerReport, names, u64, u64, u32, st.booleans()), max_size=8).map(
        tuple
    ),
)
acks = st.builds(
    Packet,
    type=st.just(PacketType.ACK),
    sender=names,
    incarnation=u64,
    seq=u64,
    ack=st.builds(AckBody, names, u64, u64),
)
packets = heartbeats | acks


def remac(data: bytes, key: bytes = KEY) -> bytes:
    """Re-authenticate a (possibly malformed) body so the parser past the MAC is exercised."""
    body = bytearray(data[:-16])
    if len(body) >= 8:
        struct.pack_into(">H", body, 6, len(body) + 16)
    return bytes(body) + hmac.new(key, bytes(body), hashlib.sha256).digest()[:16]


@given(packets)
def test_roundtrip(pkt: Packet) -> None:
    data = codec.encode(pkt)
    assert len(data) <= MAX_PACKET
    assert codec.decode(data) == pkt


def test_layout_of_an_ack() -> None:
    pkt = Packet(PacketType.ACK, "a", 7, 9, ack=AckBody("b", 5, 3))
    data = codec.encode(pkt)
    assert data[:4] == b"VGHB" and data[4] == 1 and data[5] == 2
    assert struct.unpack_from(">H", data, 6)[0] == len(data) == 32 + 2 + 2 + 16 + 16
    assert data[8:16] == hashlib.sha256(b"pg-cluster").digest()[:8]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d[:10], "truncated"),
        (lambda d: b"XXXX" + d[4:], "magic"),
        (lambda d: d[:4] + b"\x02" + d[5:], "version"),
        (lambda d: d + b"\x00", "length"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d[:-16] + bytes(16), "mac"),
        (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "mac"),
        (lambda d: d[:8] + bytes(8) + d[16:], "cluster"),
        (lambda d: remac(d[:5] + b"\x09" + d[6:]), "type"),
        (lambda d: remac(d[:-17] + b"\x00\x00" + d[-16:]), "length"),
        (lambda d: remac(d[:-18] + d[-16:]), "truncated"),
        (lambda d: remac(d[:32] + b"\x00" + d[33:]), "name"),
    ],
)
def test_bad_packets_are_typed_errors(mutate: object, reason: str) -> None:
    pkt = Packet(PacketType.HEARTBEAT, "a", 1, 2, (PeerReport("b", 3, 4, NEVER_MS),))
    data = codec.encode(pkt)
    with pytest.raises(PacketError) as err:
        codec.decode(mutate(data))  # type: ignore[operator]
    assert err.value.reason == reason, str(err.value)
    assert str(err.value)


def test_oversize_and_bad_fields_refused_by_encoder() -> None:
    many = tuple(PeerReport("p" * 60 + f"{i:03d}", 1, 1, 1) for i in range(20))
    with pytest.raises(PacketError, match="over 1400"):
        codec.encode(Packet(PacketType.HEARTBEAT, "a", 1, 1, many))
    with pytest.raises(PacketError, match="1..63"):
        codec.encode(Packet(PacketType.HEARTBEAT, "x" * 64, 1, 1))
    with pytest.raises(PacketError, match="64-bit"):
        codec.encode(Packet(PacketType.HEARTBEAT, "a", 2**64, 1))


def test_wrong_key_is_a_mac_error_and_empty_key_refused() -> None:
    data = Codec("pg-cluster", b"other").encode(Packet(PacketType.HEARTBEAT, "a", 1, 1))
    with pytest.raises(PacketError) as err:
        codec.decode(data)
    assert err.value.reason == "mac"
    with pytest.raises(ValueError, match="empty"):
        Codec("c", b"")


def test_unknown_flag_bits_are_rejected() -> None:
    data = bytearray(
        codec.encode(Packet(PacketType.HEARTBEAT, "a", 1, 1, (PeerReport("b", 1, 1, 1),)))
    )
    data[-17] = 0x80
    with pytest.raises(PacketError) as err:
        codec.decode(remac(bytes(data)))
    assert err.value.reason == "field"


@settings(max_examples=500)
@given(st.binary(max_size=1500))
def test_random_bytes_only_raise_packet_error(data: bytes) -> None:
    with pytest.raises(PacketError):
        codec.decode(data)


@settings(max_examples=500)
@given(packets, st.data())
def test_mutated_valid_packets_never_crash(pkt: Packet, data: st.DataObject) -> None:
    raw = bytearray(codec.encode(pkt))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos : pos + data.draw(st.integers(1, 8))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    for candidate in (bytes(raw), remac(bytes(raw))):
        try:
            codec.decode(candidate)
        except PacketError as err:
            assert err.reason and str(err)
