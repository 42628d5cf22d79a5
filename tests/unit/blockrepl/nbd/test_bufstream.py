"""The NBD connection reader: exact reads over a real socket pair, in place and buffered."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from blockrepl.nbd.bufstream import DIRECT_MIN, SMALL, BufferPool, Conn, PoolShare


async def _conn_pair() -> tuple[Conn, socket.socket]:
    ours, theirs = socket.socketpair()
    made: asyncio.Future[Conn] = asyncio.get_running_loop().create_future()

    async def serve(conn: Conn) -> None:
        made.set_result(conn)

    await asyncio.get_running_loop().connect_accepted_socket(lambda: Conn(serve), ours)
    theirs.setblocking(False)
    return await made, theirs


async def _send(sock: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, data)


async def test_mixed_small_and_big_reads_return_the_stream_in_order() -> None:
    conn, peer = await _conn_pair()
    big = os.urandom(3 * SMALL + 5)  # larger than the shared buffer: received in place
    mid = os.urandom(DIRECT_MIN - 1)  # below the in-place threshold: via the shared buffer
    stream = b"HDR1" + big + b"HDR2" + mid + b"T"
    sender = asyncio.create_task(_send(peer, stream))
    assert await conn.readexactly(4) == b"HDR1"
    buf = bytearray(len(big))
    await conn.readinto(memoryview(buf))
    assert buf == big
    assert await conn.readexactly(4) == b"HDR2"
    buf2 = bytearray(len(mid))
    await conn.readinto(memoryview(buf2))
    assert buf2 == mid
    assert await conn.readexactly(1) == b"T"
    await sender
    conn.close()
    peer.close()


async def test_backlog_larger_than_the_buffer_pauses_and_resumes_reading() -> None:
    conn, peer = await _conn_pair()
    chunks = [os.urandom(100) for _ in range(4 * SMALL // 100)]
    sender = asyncio.create_task(_send(peer, b"".join(chunks)))
    await asyncio.sleep(0.05)  # let the shared buffer fill up before anything is consumed
    for chunk in chunks:
        assert await conn.readexactly(100) == chunk
    await sender
    conn.close()
    peer.close()


async def test_eof_in_the_middle_of_a_payload_is_an_incomplete_read() -> None:
    conn, peer = await _conn_pair()
    await _send(peer, b"x" * 1000)
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(asyncio.IncompleteReadError):
        await conn.readinto(memoryview(bytearray(DIRECT_MIN * 2)))
    conn.close()
    await conn.wait_closed()
    peer.close()


async def test_writes_reach_the_peer_and_drain_returns() -> None:
    conn, peer = await _conn_pair()
    conn.write(b"reply")
    await conn.drain()
    got = await asyncio.get_running_loop().sock_recv(peer, 16)
    assert got == b"reply"
    peer.close()
    with pytest.raises(asyncio.IncompleteReadError):
        await conn.readexactly(1)
    conn.close()


def test_pool_reuses_big_buffers_only_and_is_bounded() -> None:
    pool = BufferPool(max_bytes=2 * DIRECT_MIN)
    a = pool.get(DIRECT_MIN)
    pool.put(a)
    assert pool.get(DIRECT_MIN) is a
    small = pool.get(512)
    pool.put(small)
    assert pool.get(512) is not small
    bufs = [pool.get(DIRECT_MIN) for _ in range(3)]
    for b in bufs:
        pool.put(b)
    got = {id(pool.get(DIRECT_MIN)) for _ in range(3)}
    assert len(got & {id(b) for b in bufs}) == 2  # only two fit under max_bytes


async def test_link_adopts_the_stream_with_bytes_already_received() -> None:
    """The replication link takes the socket over from asyncio's StreamReader: frames that
    arrived before (the dialer's HELLO) and big frames after must come out intact."""
    from blockrepl.replication import wire
    from blockrepl.replication.link import ReplicationLink
    from blockrepl.replication.wire import MsgType

    s1, s2 = socket.socketpair()
    r1, w1 = await asyncio.open_connection(sock=s1)
    r2, w2 = await asyncio.open_connection(sock=s2)
    hello = os.urandom(wire.NONCE_LEN)
    w1.write(wire.frame(MsgType.HELLO, hello))
    await w1.drain()
    await asyncio.sleep(0.05)  # the receiving StreamReader buffers the frame
    b = ReplicationLink(r2, w2)
    a = ReplicationLink(r1, w1)
    assert await b.recv() == (MsgType.HELLO, hello)
    a.authenticated = b.authenticated = True
    data = os.urandom(1024 * 1024)
    a.send_parts(MsgType.DATA, wire.data_header(7, 4096, 0), data)
    a.send(MsgType.PING, wire.u64(3))
    mtype, payload = await b.recv()
    d = wire.decode_data(payload, 1 << 30)
    assert (mtype, d.seq, d.offset, bytes(d.data)) == (MsgType.DATA, 7, 4096, data)
    assert await b.recv() == (MsgType.PING, wire.u64(3))
    await a.close()
    with pytest.raises(asyncio.IncompleteReadError):
        await b.recv()
    await b.close()


def test_pools_of_all_connections_share_one_bound() -> None:
    share = PoolShare(max_bytes=3 * DIRECT_MIN)
    one, two = BufferPool(share=share), BufferPool(share=share)
    for pool in (one, two):
        for buf in [pool.get(DIRECT_MIN) for _ in range(2)]:
            pool.put(buf)
    assert share.bytes == 3 * DIRECT_MIN  # the fourth buffer did not fit the share
    one.clear()
    assert share.bytes == DIRECT_MIN
    two.get(DIRECT_MIN)
    assert share.bytes == 0


async def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < n:
        chunk = await loop.sock_recv(sock, n - len(got))
        assert chunk, "peer closed early"
        got += chunk
    return bytes(got)


async def test_replies_arrive_whole_and_in_order_small_corked_big_by_writev() -> None:
    conn, peer = await _conn_pair()
    small = [(b"H%03d" % i, os.urandom(4096)) for i in range(20)]
    big = (b"HBIG", bytearray(os.urandom(4 * 1024 * 1024)))  # more than the socket takes
    want = b""
    for head, body in small[:10]:
        conn.write_reply(head, body)
        want += head + body
    conn.write_reply(*big)  # after the corked ones, although they are still queued
    want += big[0] + bytes(big[1])
    big[1][:] = bytes(len(big[1]))  # the caller may reuse its buffer at once
    for head, body in small[10:]:
        conn.write_reply(head, body)
        want += head + body
    assert await _recv_exactly(peer, len(want)) == want
    await conn.drain()
    conn.close()
    peer.close()


async def test_a_small_mutable_reply_is_copied_before_it_is_corked() -> None:
    conn, peer = await _conn_pair()
    body = bytearray(b"x" * 100)
    conn.write_reply(b"HEAD", body)
    body[:] = b"y" * 100  # reused before the cork is flushed
    assert await _recv_exactly(peer, 104) == b"HEAD" + b"x" * 100
    conn.close()
    peer.close()


async def test_a_big_reply_behind_queued_bytes_goes_through_the_transport() -> None:
    conn, peer = await _conn_pair()
    first = os.urandom(8 * 1024 * 1024)  # fills the socket: the rest waits in the transport
    conn.write(first)
    assert conn.transport is not None and conn.transport.get_write_buffer_size()
    body = bytearray(os.urandom(DIRECT_MIN))
    conn.write_reply(b"HEAD", body)  # must not be written ahead of what is queued
    want = first + b"HEAD" + bytes(body)
    body[:] = bytes(len(body))
    assert await _recv_exactly(peer, len(want)) == want
    conn.close()
    peer.close()
