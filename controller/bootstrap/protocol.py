"""Wire format of the join endpoint: length-prefixed JSON messages over TLS.

Each message is a 4-byte big-endian length and that many bytes of a UTF-8 JSON object.
One request and one answer per connection. Requests carry ``op``: ``ca`` (answered
before the client can verify anything: the client checks the CA against the token's
fingerprint) or ``join``. Answers carry ``ok`` and either the result or ``error``. Before
its answer to a join, the server may send progress messages, ``progress`` (what it waits
for, to show the administrator) and ``within`` (seconds the next message may take).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

MAX_MESSAGE = 1 << 20
PROTOCOL_VERSION = 2  # 2: progress messages


class JoinProtocolError(Exception):
    """The peer sent something that is not a message of this protocol."""


def encode_message(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE:
        raise JoinProtocolError(
            f"message of {len(body)} bytes exceeds the {MAX_MESSAGE} byte limit"
        )
    return struct.pack(">I", len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(body.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise JoinProtocolError(f"message is not UTF-8 JSON: {e}") from None
    if not isinstance(msg, dict):
        raise JoinProtocolError("message must be a JSON object")
    return msg


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any]:
    try:
        header = await reader.readexactly(4)
    except asyncio.IncompleteReadError:
        raise JoinProtocolError("connection closed before a message arrived") from None
    (size,) = struct.unpack(">I", header)
    if size > MAX_MESSAGE:
        raise JoinProtocolError(f"message length {size} exceeds the {MAX_MESSAGE} byte limit")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise JoinProtocolError("connection closed in the middle of a message") from None
    return decode_body(body)


async def write_message(writer: asyncio.StreamWriter, msg: dict[str, Any]) -> None:
    writer.write(encode_message(msg))
    await writer.drain()
