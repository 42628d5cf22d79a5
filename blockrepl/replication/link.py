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
from typing import cast

from blockrepl.errors import BlockReplError
from blockrepl.nbd.bufstream import DIRECT_MIN, BufferPool, Conn, write_through
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


class ReplicationLink:
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
        # WRITE_ACKs for consecutive seqs queued since the last frame, sent as one
        # WRITE_ACK_RANGE when the peer accepts it (its HANDSHAKE says ack_ranges).
        self.ack_ranges = False
        self._ack_first = 0
        self._ack_count = 0
        self._conn: Conn | None = None
        # Big payloads the reader handed back once applied (DATA, RS_DATA): a fresh 1 MiB
        # bytearray per frame costs a zero-fill and page faults before the kernel copies
        # the frame into it. 16 MiB: enough for the Secondary's few frames in flight.
        self._pool = BufferPool(16 * 1024 * 1024)
        self._fd = -1
        transport = getattr(writer, "transport", None)
        sock = writer.get_extra_info("socket")
        if isinstance(transport, asyncio.Transport) and sock is not None:
            # Frames are read by a BufferedProtocol straight into their own buffer: the
            # StreamReader's three copies of every 1 MiB DATA frame cost more CPU than
            # writing it to disk. The bytes the StreamReader already holds move along.
            pending = bytes(getattr(reader, "_buffer", b""))
            self._conn = Conn.adopt(transport, pending, bool(getattr(reader, "_eof", False)))
            # Over TLS every byte must go through the transport (no raw writev).
            self._fd = sock.fileno() if writer.get_extra_info("ssl_object") is None else -1
        if transport is not None:
            # Protocol A acks once a write is queued for the socket; a 64 KiB high-water mark
            # would make every 1 MiB write wait for the peer (cf. DRBD's sndbuf-size).
            transport.set_write_buffer_limits(high=SEND_BUFFER)
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
        if self._ack_count:
            self._cork_acks()  # frames leave in the order they were queued
        length = len(head) + len(body)
        self.bytes_out += wire.HEADER_SIZE + length
        hdr = wire.encode_header(mtype, length) + head
        if len(body) >= CORK_MAX:
            self.flush()
            self._write_big(hdr, body)
            return
        self._cork.append(hdr)
        if body:
            self._cork.append(bytes(body))
        if not self._cork_scheduled:
            self._cork_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def send_write_ack(self, seq: int) -> None:
        """WRITE_ACK for ``seq``; a run of consecutive seqs queued within one event-loop
        iteration (and not separated by another frame) goes out as one WRITE_ACK_RANGE,
        saving the Primary one frame to decode per 4 KiB write."""
        if not self.ack_ranges:
            self.send(MsgType.WRITE_ACK, wire.u64(seq))
            return
        if self.closed:
            raise ConnectionError("replication link is closed")
        if self._ack_count:
            if seq == self._ack_first + self._ack_count and self._ack_count < wire.ACK_RANGE_MAX:
                self._ack_count += 1
                return
            self._cork_acks()
        self._ack_first, self._ack_count = seq, 1
        if not self._cork_scheduled:
            self._cork_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def _cork_acks(self) -> None:
        first, count = self._ack_first, self._ack_count
        self._ack_count = 0
        if count == 1:
            payload, mtype = wire.u64(first), MsgType.WRITE_ACK
        else:
            payload, mtype = wire.encode_ack_range(first, count), MsgType.WRITE_ACK_RANGE
        self.bytes_out += wire.HEADER_SIZE + len(payload)
        self._cork.append(wire.encode_header(mtype, len(payload)) + payload)

    def _write_big(self, hdr: bytes, body: bytes | memoryview) -> None:
        """Header and body in one writev when nothing is queued before them: no segment
        holding just the header, and no copy of the body into the transport's buffer
        (asyncio 3.11 copies whatever the socket does not take at once)."""
        write_through(self.writer.transport, self._fd, hdr, body)

    def flush(self) -> None:
        self._cork_scheduled = False
        if self._ack_count and not self.closed:
            self._cork_acks()
        if self._cork and not self.closed:
            self.writer.write(b"".join(self._cork))
        self._cork.clear()

    async def drain(self) -> None:
        self.flush()
        try:
            if self._conn is not None:
                await self._conn.drain()
            else:
                await self.writer.drain()
        except ConnectionError:
            # A peer that refuses us sends ERROR and closes; our own write can meet the
            # closed socket before we read that ERROR. Its reason is the real story.
            reason = self.unread_refusal()
            if reason is None:
                raise
            raise PeerError(f"peer refused: {reason}") from None

    def unread_refusal(self) -> str | None:
        """The reason in an ERROR frame received but not read yet, if there is one."""
        if self._conn is not None:
            data = self._conn.peek()
        else:
            data = bytes(getattr(self.reader, "_buffer", b""))
        pos = 0
        while len(data) - pos >= wire.HEADER_SIZE:
            try:
                hdr = wire.decode_header(data[pos : pos + wire.HEADER_SIZE], self.authenticated)
            except wire.FrameError:
                return None
            start = pos + wire.HEADER_SIZE
            if start + hdr.length > len(data):
                return None
            if hdr.type is MsgType.ERROR:
                return data[start : start + hdr.length].decode("utf-8", "replace")
            pos = start + hdr.length
        return None

    async def recv(self) -> tuple[MsgType, bytes]:
        if self._conn is None:
            raw = await self.reader.readexactly(wire.HEADER_SIZE)
            hdr = wire.decode_header(raw, self.authenticated)
            payload = await self.reader.readexactly(hdr.length) if hdr.length else b""
        else:
            raw = await self._conn.readexactly(wire.HEADER_SIZE)
            hdr = wire.decode_header(raw, self.authenticated)
            if hdr.length < DIRECT_MIN:
                payload = await self._conn.readexactly(hdr.length) if hdr.length else b""
            else:
                buf = self._pool.get(hdr.length)
                await self._conn.readinto(memoryview(buf))
                # A bytearray supports every read-only bytes operation the decoders use
                # (slicing, memoryview, struct, decode); returning it saves a copy of each
                # big frame. Nobody hashes payloads or keeps them as dict keys.
                payload = cast(bytes, buf)
        self.bytes_in += wire.HEADER_SIZE + hdr.length
        self.last_rx = time.monotonic()
        if hdr.type is MsgType.ERROR:
            raise PeerError(f"peer refused: {wire.decode_text(payload, 'ERROR')}")
        return hdr.type, payload

    def release(self, payload: bytes) -> None:
        """``payload``, returned by :meth:`recv`, is no longer used (nor any view of it):
        its buffer may receive a later frame."""
        if isinstance(payload, bytearray):
            self._pool.put(payload)

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
        # The adopted transport reports its end to our Conn, not to the StreamWriter.
        closed = self._conn.wait_closed() if self._conn is not None else self.writer.wait_closed()
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            await asyncio.wait_for(closed, 1.0)
