"""One NBD connection as a BufferedProtocol: big payloads land straight in their own buffer.

asyncio's StreamReader copies every received byte three times (recv -> its bytearray ->
a slice -> bytes) and pauses/resumes the socket every 128 KiB; for 1 MiB WRITEs that cost
more CPU than the disk write. Here the kernel copies a big payload directly into the
request's buffer (``recv_into``), while small messages (headers, options, small writes)
share one reusable receive buffer, so a burst of 4 KiB requests still needs few syscalls.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

SMALL = 256 * 1024  # shared receive buffer (headers, options, small payloads)
DIRECT_MIN = 64 * 1024  # payload remainders at least this big are received in place
# asyncio < 3.12 copies unsent data into the transport's bytearray; 3.12+ keeps a reference.
TRANSPORT_COPIES = sys.version_info < (3, 12)


def write_through(
    transport: asyncio.WriteTransport, fd: int, head: bytes, body: bytes | bytearray | memoryview
) -> None:
    """`head` then `body` in one ``writev`` on the socket `fd` (-1: TLS, never) when the
    transport holds nothing to send before them; what the socket does not take goes
    through the transport. The caller may reuse `body` once this returned."""
    sent = 0
    if fd >= 0 and not transport.get_write_buffer_size() and not transport.is_closing():
        try:
            sent = os.writev(fd, [head, body])
        except OSError:  # would block, or broken: the transport's write handles it
            sent = 0
    rest = memoryview(body)[max(0, sent - len(head)) :]
    if rest and not TRANSPORT_COPIES and not isinstance(body, bytes):
        rest = memoryview(bytes(rest))  # the transport would keep a view of the buffer
    if sent < len(head):
        transport.write(head[sent:])
    if rest:
        transport.write(rest)


class Conn(asyncio.BufferedProtocol):
    """Reader and writer of one connection (the subset of StreamReader/StreamWriter the
    NBD server uses). ``serve`` runs as a task once the connection is made."""

    def __init__(self, serve: Callable[[Conn], Coroutine[Any, Any, None]] | None) -> None:
        self._serve = serve
        self._buf = bytearray(SMALL)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._target: memoryview | None = None  # where recv_into writes in direct mode
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._exc: BaseException | None = None
        self._read_paused = False
        self._write_paused = False
        self._drainers: deque[asyncio.Future[None]] = deque()
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self._cork: list[bytes] = []
        self._fd = -1  # the plain socket's fd for writev (-1: TLS or no socket)

    def _attach(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        plain = sock is not None and transport.get_extra_info("ssl_object") is None
        self._fd = sock.fileno() if plain else -1

    @classmethod
    def adopt(cls, transport: asyncio.Transport, pending: bytes, eof: bool) -> Conn:
        """Take over a connection from a StreamReaderProtocol, with the bytes its reader
        had already received (``pending``)."""
        conn = cls(None)
        if len(pending) > SMALL // 2:
            conn._buf = bytearray(len(pending) * 2)
            conn._view = memoryview(conn._buf)
        conn._buf[: len(pending)] = pending
        conn._end = len(pending)
        conn._eof = eof or transport.is_closing()
        conn._attach(transport)
        transport.set_protocol(conn)
        if transport.is_closing():
            conn._closed.set_result(None)  # its connection_lost went to the old protocol
        elif not transport.is_reading():
            transport.resume_reading()
        return conn

    # ------------------------------------------------------------------ protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._attach(transport)
        if self._serve is not None:
            self.task = self._loop.create_task(self._serve(self))

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._target is not None:
            return self._target
        if self._end == len(self._buf) and self._start:
            self._compact()
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._target is not None:
            rest = self._target[nbytes:]
            self._target = rest if len(rest) else None
            if self._target is None:
                self._wake()
            return
        self._end += nbytes
        if self._end == len(self._buf):
            if self._start:
                self._compact()
            else:
                self._pause_reading()  # full: the consumer is behind (in-flight limit)
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep the write side open: replies to accepted requests still go out

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._exc = exc
        self._wake()
        while self._drainers:
            fut = self._drainers.popleft()
            if not fut.done():
                fut.set_exception(ConnectionResetError("connection lost"))
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        while self._drainers:
            fut = self._drainers.popleft()
            if not fut.done():
                fut.set_result(None)

    # ------------------------------------------------------------------ reading
    async def readexactly(self, n: int) -> bytes:
        if n > SMALL:
            buf = bytearray(n)
            await self.readinto(memoryview(buf))
            return bytes(buf)
        await self._fill(n)
        data = bytes(self._view[self._start : self._start + n])
        self._consumed(n)
        return data

    def peek(self) -> bytes:
        """What was received and not read yet (the connection may be lost already)."""
        return bytes(self._view[self._start : self._end])

    async def readinto(self, dest: memoryview) -> None:
        """Fill ``dest`` completely (IncompleteReadError on EOF)."""
        got = min(self._end - self._start, len(dest))
        if got:
            dest[:got] = self._view[self._start : self._start + got]
            self._consumed(got)
        rest = dest[got:]
        if not len(rest):
            return
        # The shared buffer is empty now.
        if len(rest) < DIRECT_MIN:
            await self._fill(len(rest))
            rest[:] = self._view[self._start : self._start + len(rest)]
            self._consumed(len(rest))
            return
        self._target = rest
        self._resume_reading()
        while self._target is not None:
            if self._eof:
                self._target = None
                raise self._exc or asyncio.IncompleteReadError(b"", len(dest))
            await self._wait()

    async def _fill(self, n: int) -> None:
        while self._end - self._start < n:
            if self._eof:
                partial = bytes(self._view[self._start : self._end])
                raise self._exc or asyncio.IncompleteReadError(partial, n)
            if len(self._buf) - self._start < n:
                self._compact()
            self._resume_reading()  # paused while half full, but this read needs more
            await self._wait()

    def _consumed(self, n: int) -> None:
        self._start += n
        if self._start == self._end:
            self._start = self._end = 0
        if self._read_paused and self._end - self._start < len(self._buf) // 2:
            if self._start:
                self._compact()
            self._resume_reading()

    def _compact(self) -> None:
        n = self._end - self._start
        self._buf[:n] = self._view[self._start : self._end]
        self._start, self._end = 0, n

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()

    # ------------------------------------------------------------------ writing
    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self.transport is not None
        if self._cork:
            self._flush_cork()
        self.transport.write(data)

    def write_corked(self, data: bytes) -> None:
        """Queue a small message until the end of this event-loop iteration: the replies
        of a burst of small requests leave in one send instead of one each."""
        if not self._cork:
            self._loop.call_soon(self._flush_cork)
        self._cork.append(data)

    def write_reply(self, head: bytes, body: bytes | bytearray) -> None:
        """A reply's header and payload, each copied in user space as little as possible.

        A small payload joins the cork (copied first unless it is immutable ``bytes``), so
        a burst of 4 KiB READ replies costs one send instead of two each. A big one goes
        out with its header in one ``writev`` straight from ``body`` when nothing is queued
        before it; only what the socket did not take then goes through the transport (which
        copies it before Python 3.12). ``body`` may be reused once this returned."""
        if len(body) < DIRECT_MIN:
            self.write_corked(head)
            self._cork.append(body if isinstance(body, bytes) else bytes(body))
            return
        assert self.transport is not None
        if self._cork:
            self._flush_cork()
        write_through(self.transport, self._fd, head, body)

    def _flush_cork(self) -> None:
        if self._cork and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self._cork))
        self._cork.clear()

    @property
    def must_drain(self) -> bool:
        """False when :meth:`drain` would return at once (saves a coroutine per reply)."""
        return (
            self._write_paused
            or self.transport is None
            or self.transport.is_closing()
            or self._closed.done()
        )

    async def drain(self) -> None:
        if self.transport is None or self.transport.is_closing() or self._closed.done():
            # Let the loop run so a lost connection is noticed (as StreamWriter.drain does).
            await asyncio.sleep(0)
            if self._closed.done():
                raise ConnectionResetError("connection lost")
        if not self._write_paused:
            return
        fut = self._loop.create_future()
        self._drainers.append(fut)
        await fut

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        self._flush_cork()
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default if self.transport is None else self.transport.get_extra_info(name, default)


class PoolShare:
    """What the pools of all connections may keep together: an idle connection's cached
    buffers are memory too, and they are outside the byte budgets of requests."""

    def __init__(self, max_bytes: int) -> None:
        self.max = max_bytes
        self.bytes = 0


class BufferPool:
    """Payload buffers of big WRITEs, reused once their request has completed.

    A fresh 1 MiB bytearray costs more than receiving into it: glibc hands it out as new
    pages (mmap / heap trimmed on free) which fault in while being zeroed. Backends must not
    keep a reference to a payload after ``pwrite`` returned (BlockBackend contract)."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024, share: PoolShare | None = None) -> None:
        self._free: dict[int, list[bytearray]] = {}
        self._bytes = 0
        self._max = max_bytes
        self._share = share

    def get(self, n: int) -> bytearray:
        free = self._free.get(n)
        if free:
            self._count(-n)
            return free.pop()
        return bytearray(n)

    def put(self, buf: bytearray) -> None:
        n = len(buf)
        if n < DIRECT_MIN or self._bytes + n > self._max:
            return
        if self._share is not None and self._share.bytes + n > self._share.max:
            return
        self._free.setdefault(n, []).append(buf)
        self._count(n)

    def clear(self) -> None:
        """Drop every cached buffer (the connection ended)."""
        self._free.clear()
        self._count(-self._bytes)

    def _count(self, n: int) -> None:
        self._bytes += n
        if self._share is not None:
            self._share.bytes += n
