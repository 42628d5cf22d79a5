"""Length-prefixed JSON framing of the join endpoint."""

from __future__ import annotations

import asyncio
import struct

import pytest

from controller.bootstrap.protocol import (
    MAX_MESSAGE,
    JoinProtocolError,
    encode_message,
    read_message,
)


def reader_with(data: bytes) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    r.feed_eof()
    return r


async def test_round_trip() -> None:
    msg = {"op": "join", "csrs": {"server": "x" * 1000}}
    assert await read_message(reader_with(encode_message(msg))) == msg


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "closed before"),
        (struct.pack(">I", 10) + b"{}", "middle of a message"),
        (struct.pack(">I", MAX_MESSAGE + 1), "exceeds"),
        (struct.pack(">I", 2) + b"[]", "JSON object"),
        (struct.pack(">I", 2) + b"\xff\xfe", "not UTF-8 JSON"),
    ],
)
async def test_bad_input(data: bytes, match: str) -> None:
    with pytest.raises(JoinProtocolError, match=match):
        await read_message(reader_with(data))
