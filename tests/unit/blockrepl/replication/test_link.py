"""Mutual HMAC authentication and the strict reader over real asyncio streams."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockrepl.replication import wire
from blockrepl.replication.link import AuthError, PeerError, ReplicationLink, auth_response
from blockrepl.replication.wire import MsgType


async def _pair() -> tuple[ReplicationLink, ReplicationLink]:
    s1, s2 = socket.socketpair()
    r1, w1 = await asyncio.open_connection(sock=s1)
    r2, w2 = await asyncio.open_connection(sock=s2)
    return ReplicationLink(r1, w1), ReplicationLink(r2, w2)


async def test_same_secret_authenticates_both_directions() -> None:
    a, b = await _pair()
    await asyncio.gather(a.authenticate(b"k" * 32, True, 5), b.authenticate(b"k" * 32, False, 5))
    assert a.authenticated and b.authenticated
    a.send(MsgType.PING, wire.u64(1))
    assert await b.recv() == (MsgType.PING, wire.u64(1))
    await a.close()
    await b.close()


async def test_wrong_secret_fails_on_both_sides() -> None:
    a, b = await _pair()
    res = await asyncio.gather(
        a.authenticate(b"k" * 32, True, 5),
        b.authenticate(b"x" * 32, False, 5),
        return_exceptions=True,
    )
    assert all(isinstance(r, AuthError | PeerError | ConnectionError) for r in res), res
    assert any(isinstance(r, AuthError) and "secret" in str(r) for r in res)
    assert not a.authenticated and not b.authenticated


def test_responses_are_direction_bound() -> None:
    c1, c2 = os.urandom(32), os.urandom(32)
    assert auth_response(b"s", c1, c2, True) != auth_response(b"s", c1, c2, False)


async def test_unauthenticated_peer_cannot_send_data() -> None:
    a, b = await _pair()
    a.writer.write(wire.frame(MsgType.DATA, wire.data_header(1, 0, 0) + b"x"))
    with pytest.raises(wire.BadType, match="before authentication"):
        await b.recv()
    await a.close()
    await b.close()


async def test_consecutive_write_acks_coalesce_in_frame_order() -> None:
    a, b = await _pair()
    a.authenticated = b.authenticated = True
    a.ack_ranges = True
    for seq in (5, 6, 7):
        a.send_write_ack(seq)
    a.send(MsgType.PING, wire.u64(1))  # a frame in between ends the run
    for seq in (8, 10, 11):  # a gap ends it too
        a.send_write_ack(seq)
    await a.drain()
    got = [await b.recv() for _ in range(4)]
    assert got == [
        (MsgType.WRITE_ACK_RANGE, wire.encode_ack_range(5, 3)),
        (MsgType.PING, wire.u64(1)),
        (MsgType.WRITE_ACK, wire.u64(8)),  # a run of one keeps the old frame
        (MsgType.WRITE_ACK_RANGE, wire.encode_ack_range(10, 2)),
    ]
    assert a.bytes_out == b.bytes_in
    a.ack_ranges = False  # a peer without ack_ranges gets one WRITE_ACK per seq
    a.send_write_ack(12)
    a.send_write_ack(13)
    await a.drain()
    assert [await b.recv() for _ in range(2)] == [
        (MsgType.WRITE_ACK, wire.u64(12)),
        (MsgType.WRITE_ACK, wire.u64(13)),
    ]
    await a.close()
    await b.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=300))
def test_fuzz_garbage_stream_gives_typed_error(garbage: bytes) -> None:
    async def run() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(garbage)
        reader.feed_eof()
        link = ReplicationLink(reader, _NullWriter())  # type: ignore[arg-type]
        with pytest.raises((wire.FrameError, asyncio.IncompleteReadError, PeerError)):
            for _ in range(50):
                await link.expect(MsgType.HELLO)
                await link.expect(MsgType.AUTH)
        assert not link.authenticated

    asyncio.run(run())


class _NullWriter:
    def get_extra_info(self, name: str) -> None:
        return None


async def test_a_refusal_received_before_our_write_fails_is_reported_as_such() -> None:
    # The peer refuses (ERROR, then close) while this side still writes: the write meets a
    # closed connection, but the refusal is already here and is the reason to report.
    a, b = await _pair()
    await b.refuse("peer certificate is for CN='x', not --tls-peer-name 'y'")
    for _ in range(500):  # until the ERROR frame is in this side's receive buffer
        if a.unread_refusal():
            break
        await asyncio.sleep(0.01)
    a.writer.transport.abort()  # as a reset by the peer would leave it
    a.send(MsgType.HELLO, os.urandom(wire.NONCE_LEN))
    with pytest.raises(PeerError, match="peer refused: .*tls-peer-name 'y'"):
        await a.drain()


async def test_without_a_refusal_a_lost_connection_stays_a_connection_error() -> None:
    a, b = await _pair()
    await b.close()
    a.writer.transport.abort()
    a.send(MsgType.HELLO, os.urandom(wire.NONCE_LEN))
    with pytest.raises(ConnectionError):
        await a.drain()
