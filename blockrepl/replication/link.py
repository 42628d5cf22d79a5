"""One TCP replication connection: framed send/receive, byte counters, mutual HMAC auth.

Authentication runs before anything else is read at full size: each side sends a random
32-byte challenge and answers the peer's with HMAC-SHA256(secret, tag | challenge | own
challenge), where the tag differs per direction so a response cannot be reflected back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import socket
import time

from blockrepl.errors import BlockReplError
from blockrepl.replication import wire
from blockrepl.replication.wire import MsgType

CORK_MAX = 64 * 1024
SEND_BUFFER = 16 * 1024 * 1024


class AuthError(BlockReplError):
    """The peer does not know the volume's shared secret (or is not a blockrepl peer)."""


class PeerError(BlockReplError):
    """The peer sent ERROR (it refused us) or broke the protocol."""


def auth_response(secret: bytes, challenge: bytes, own_challenge: bytes, dialer: bool) -> bytes:
    tag = b"blockrepl-auth-v1/" + (b"dialer" if dialer else b"acceptor")
    return hmac.new(secret, tag + challenge + own_challenge, hashlib.sha256).digest()


class Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.bytes_in = 0
        self.bytes_out = 0
        self.authenticated = False
        self.last_rx = time.monotonic()
        self.closed = False
        self._cork: list[bytes] = []
        self._cork_scheduled = False
        transport = getattr(writer, "transport", None)
        if transport is not None:
            # Protocol A acks once a write is queued for the socket; a 64 KiB high-water mark
            # would make every 1 MiB write wait for the peer (cf. DRBD's sndbuf-size).
            transport.set_write_buffer_limits(high=SEND_BUFFER)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def peername(self) -> str:
        return str(self.writer.get_extra_info("peername"))

    def send(self, mtype: MsgType, payload: bytes | memoryview = b"") -> None:
        """Queue one frame (atomic w.r.t. other coroutines: no await in between)."""
        self.send_parts(mtype, b"", payload)

    def send_parts(self, mtype: MsgType, head: bytes, body: bytes | memoryview) -> None:
        """One frame whose payload is head + body. Small frames are corked until the end of
        this event-loop iteration (one syscall for a burst of acks); big ones go out at once
        after whatever is corked, without copying the body."""
        if self.closed:
            raise ConnectionError("replication link is closed")
        length = len(head) + len(body)
        self.bytes_out += wire.HEADER_SIZE + length
        hdr = wire.encode_header(mtype, length) + head
        if len(body) >= CORK_MAX:
            self.flush()
            self.writer.write(hdr)
            self.writer.write(body)
            return
        self._cork.append(hdr)
        if body:
            self._cork.append(bytes(body))
        if not self._cork_scheduled:
            self._cork_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._cork_scheduled = False
        if self._cork and not self.closed:
            self.writer.write(b"".join(self._cork))
        self._cork.clear()

    async def drain(self) -> None:
        self.flush()
        await self.writer.drain()

    async def recv(self) -> tuple[MsgType, bytes]:
        raw = await self.reader.readexactly(wire.HEADER_SIZE)
        hdr = wire.decode_header(raw, self.authenticated)
        payload = await self.reader.readexactly(hdr.length) if hdr.length else b""
        self.bytes_in += wire.HEADER_SIZE + hdr.length
        self.last_rx = time.monotonic()
        if hdr.type is MsgType.ERROR:
            raise PeerError(f"peer refused: {wire.decode_text(payload, 'ERROR')}")
        return hdr.type, payload

    async def expect(self, mtype: MsgType) -> bytes:
        got, payload = await self.recv()
        if got is not mtype:
            raise wire.BadType(f"expected {mtype.name}, got {got.name}")
        return payload

    async def authenticate(self, secret: bytes, dialer: bool, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            mine = os.urandom(wire.NONCE_LEN)
            self.send(MsgType.HELLO, mine)
            await self.drain()
            theirs = await self.expect(MsgType.HELLO)
            self.send(MsgType.AUTH, auth_response(secret, theirs, mine, dialer))
            await self.drain()
            answer = await self.expect(MsgType.AUTH)
            want = auth_response(secret, mine, theirs, not dialer)
            if not hmac.compare_digest(answer, want):
                await self.refuse("authentication failed: shared secrets differ")
                raise AuthError(
                    f"peer {self.peername} failed authentication: its --secret-file differs"
                )
            self.authenticated = True

    async def refuse(self, reason: str) -> None:
        """Tell the peer why, then close (best effort)."""
        try:
            self.send(MsgType.ERROR, reason.encode()[: wire.PREAUTH_MAX])
            await asyncio.wait_for(self.drain(), 1.0)
        except (ConnectionError, TimeoutError, OSError):
            pass
        await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        self.writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
