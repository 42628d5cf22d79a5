"""Frames sent as header + untouched body equal the old concatenated frames, and big
payload buffers handed back after use are reused without mixing frames."""

from __future__ import annotations

import asyncio
import os

from blockrepl.replication import wire
from blockrepl.replication.link import ReplicationLink
from blockrepl.replication.wire import MsgType
from tests.unit.blockrepl.replication.test_link import _pair

MiB = 1024 * 1024


def test_heads_plus_data_equal_the_concatenated_payloads() -> None:
    data = os.urandom(4096)
    assert wire.rs_data_head(7 * 4096) + data == wire.rs_data(7 * 4096, data)
    assert wire.read_reply_head(9, 0) + data == wire.encode_read_reply(9, 0, data)
    assert wire.read_reply_head(9, 5) == wire.encode_read_reply(9, 5)
    assert wire.decode_rs_data(wire.rs_data_head(4096) + data, 1 << 30)[1] == data


async def _authed() -> tuple[ReplicationLink, ReplicationLink]:
    a, b = await _pair()
    await asyncio.gather(a.authenticate(b"k" * 32, True, 5), b.authenticate(b"k" * 32, False, 5))
    return a, b


async def test_parts_frames_arrive_as_whole_frames_small_and_big() -> None:
    a, b = await _authed()
    small, big = os.urandom(100), bytearray(os.urandom(3 * MiB + 1))
    a.send_parts(MsgType.RS_DATA, wire.rs_data_head(0), small)
    a.send_parts(MsgType.RS_DATA, wire.rs_data_head(4096), big)
    want_big = bytes(big)
    big[:] = bytes(len(big))  # the sender may reuse its buffer once send_parts returned
    a.send_parts(MsgType.READ_REPLY, wire.read_reply_head(3, 0), memoryview(want_big)[:MiB])
    recv = asyncio.create_task(_recv_n(b, 3))
    await a.drain()
    got = await recv
    assert got[0] == (MsgType.RS_DATA, wire.rs_data(0, small))
    assert got[1] == (MsgType.RS_DATA, wire.rs_data(4096, want_big))
    assert got[2] == (MsgType.READ_REPLY, wire.encode_read_reply(3, 0, want_big[:MiB]))
    await a.close()
    await b.close()


async def _recv_n(link: ReplicationLink, n: int) -> list[tuple[MsgType, bytes]]:
    out = []
    for _ in range(n):
        mtype, payload = await link.recv()
        out.append((mtype, bytes(payload)))
    return out


async def test_a_released_payload_buffer_receives_a_later_frame_intact() -> None:
    a, b = await _authed()
    frames = [os.urandom(MiB) for _ in range(4)]
    for f in frames:
        a.send(MsgType.RS_DATA, wire.rs_data(0, f))
    await a.drain()
    first_buf = None
    for f in frames:
        mtype, payload = await b.recv()
        assert (mtype, payload[8:]) == (MsgType.RS_DATA, f)
        if first_buf is None:
            first_buf = payload
        else:
            assert payload is first_buf  # the buffer released below came back
        b.release(payload)
    # Payloads not released (kept by their reader) are never handed out again.
    a.send(MsgType.RS_DATA, wire.rs_data(0, frames[0]))
    await a.drain()
    kept = (await b.recv())[1]
    a.send(MsgType.RS_DATA, wire.rs_data(0, frames[1]))
    await a.drain()
    other = (await b.recv())[1]
    assert other is not kept and kept[8:] == frames[0] and other[8:] == frames[1]
    await a.close()
    await b.close()
