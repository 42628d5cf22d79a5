"""Asyncio NBD server (fixed newstyle, simple replies) on unix sockets and TCP.

Requests are processed concurrently (up to ``max_in_flight`` per connection, and as many
payload bytes as the byte budgets of :mod:`blockrepl.nbd.budget` allow) and replied to as
they complete, so replies may be out of order; the client matches them by cookie.
Any protocol violation closes the connection before any data is touched. A client must
finish the handshake within ``handshake_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from blockrepl.backend import BlockBackend
from blockrepl.nbd import protocol as p
from blockrepl.nbd.budget import (
    CONNECTION_BYTES,
    CONNECTION_RESERVE,
    POOLED_BYTES,
    TOTAL_BYTES,
    ByteBudget,
)
from blockrepl.nbd.bufstream import BufferPool, Conn, PoolShare

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
SEND_BUFFER = 4 * 1024 * 1024
OFFERED = p.HandshakeFlag.FIXED_NEWSTYLE | p.HandshakeFlag.NO_ZEROES
BASE_TFLAGS = (
    p.TFlag.HAS_FLAGS
    | p.TFlag.SEND_FLUSH
    | p.TFlag.SEND_FUA
    | p.TFlag.SEND_TRIM
    | p.TFlag.SEND_WRITE_ZEROES
    | p.TFlag.CAN_MULTI_CONN  # one fd per backend, FLUSH = fdatasync: visible to all
)


@dataclass
class Export:
    name: str
    backend: BlockBackend
    description: str = ""
    # Only the Primary serves: returns None if serving is allowed, else the reason.
    refuse: Callable[[], str | None] = field(default=lambda: None)

    @property
    def tflags(self) -> p.TFlag:
        flags = BASE_TFLAGS
        if self.backend.read_only:
            flags |= p.TFlag.READ_ONLY
        return flags


class _Close(Exception):
    """End the connection quietly (ABORT, EXPORT_NAME failure)."""


class NbdServer:
    def __init__(
        self,
        exports: list[Export],
        max_in_flight: int = 64,
        *,
        connection_bytes: int = CONNECTION_BYTES,
        total_bytes: int = TOTAL_BYTES,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        if not exports:
            raise ValueError("at least one export is required")
        self.exports = {e.name: e for e in exports}
        self.default = exports[0]
        self.max_in_flight = max_in_flight
        self.connection_bytes = connection_bytes
        self.budget = ByteBudget(total_bytes)
        self.pooled = PoolShare(POOLED_BYTES)
        self.handshake_timeout = handshake_timeout
        self._servers: list[asyncio.Server] = []
        self._conns: set[asyncio.Task[None]] = set()
        self._attached: set[asyncio.Task[None]] = set()  # past the handshake, on an export
        self._shutting_down = False
        self.stats = {"connections": 0, "protocol_errors": 0, "requests": 0}

    @property
    def clients(self) -> int:
        """Open client connections, negotiating or attached."""
        return len(self._conns)

    @property
    def attached(self) -> int:
        """Connections that chose an export (not those still negotiating, which a demote
        turns away): what holds the device open."""
        return len(self._attached)

    # ------------------------------------------------------------------ listeners
    async def listen_unix(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_unix_server(self._protocol, path=path))

    async def listen_tcp(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._protocol, host=host, port=port)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._shutting_down = True
        for server in self._servers:
            server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    def _protocol(self) -> Conn:
        return Conn(self._on_connect)

    async def _on_connect(self, conn: Conn) -> None:
        reader = writer = conn
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.stats["connections"] += 1
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        elif sock is not None and sock.family == socket.AF_UNIX:
            # Room in the kernel for a few big READ replies: what the socket does not take
            # at once asyncio copies into its own buffer (and sends from there piecemeal).
            # Capped by net.core.wmem_max. Not on TCP: setting it would end the kernel's
            # autotuning, which grows the buffer up to net.ipv4.tcp_wmem's maximum.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        try:
            try:
                async with asyncio.timeout(self.handshake_timeout):
                    export = await self._handshake(reader, writer)
            except TimeoutError:
                log.warning(
                    "NBD client %s did not finish the handshake within %g s; closing",
                    _peer(writer),
                    self.handshake_timeout,
                )
                return
            await self._transmission(export, reader, writer)
        except (_Close, asyncio.IncompleteReadError, ConnectionError):
            pass
        except p.ProtocolError as exc:
            self.stats["protocol_errors"] += 1
            log.warning("NBD protocol error from %s: %s; closing", _peer(writer), exc)
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            self._attached.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # ------------------------------------------------------------------ handshake
    async def _handshake(self, reader: Conn, writer: Conn) -> Export:
        writer.write(p.encode_greeting(OFFERED))
        await writer.drain()
        cflags = p.decode_client_flags(await reader.readexactly(4), OFFERED)
        no_zeroes = bool(cflags & p.ClientFlag.C_NO_ZEROES)
        while True:
            hdr = p.decode_option_header(await reader.readexactly(16))
            data = await reader.readexactly(hdr.length)
            if hdr.option == p.Opt.EXPORT_NAME:
                export = self._lookup(p.decode_export_name(data))
                if export is None or export.refuse() is not None or self._shutting_down:
                    raise _Close()  # the only legal error for EXPORT_NAME
                self._attach()
                writer.write(
                    p.encode_export_name_reply(export.backend.size, export.tflags, no_zeroes)
                )
                await writer.drain()
                return export
            try:
                export = self._option(hdr, data, writer)
            except p.OptionError as exc:
                msg = exc.message.encode()
                writer.write(p.encode_option_reply(hdr.option, exc.rep, msg))
                export = None
            await writer.drain()
            if hdr.option == p.Opt.ABORT:
                raise _Close()
            if export is not None:
                return export

    def _attach(self) -> None:
        # Counted in the same step as export.refuse() said yes, with no await in between:
        # a demote that found no client attached then turns every later one away.
        task = asyncio.current_task()
        assert task is not None
        self._attached.add(task)

    def _lookup(self, name: str) -> Export | None:
        return self.default if name == "" else self.exports.get(name)

    def _option(self, hdr: p.OptionHeader, data: bytes, writer: Conn) -> Export | None:
        opt = hdr.option
        if self._shutting_down and opt != p.Opt.ABORT:
            raise p.OptionError(p.Rep.ERR_SHUTDOWN, "server is shutting down")
        if opt == p.Opt.ABORT:
            writer.write(p.encode_option_reply(opt, p.Rep.ACK))
            return None
        if opt == p.Opt.LIST:
            if data:
                raise p.OptionError(p.Rep.ERR_INVALID, "LIST takes no data")
            for name in self.exports:
                writer.write(p.encode_option_reply(opt, p.Rep.SERVER, p.encode_rep_server(name)))
            writer.write(p.encode_option_reply(opt, p.Rep.ACK))
            return None
        if opt in (p.Opt.INFO, p.Opt.GO):
            req = p.decode_info_request(data)
            export = self._lookup(req.name)
            if export is None:
                raise p.OptionError(p.Rep.ERR_UNKNOWN, f"no export named {req.name!r}")
            reason = export.refuse()
            if reason is not None:
                raise p.OptionError(p.Rep.ERR_POLICY, reason)
            size = export.backend.size
            writer.write(
                p.encode_option_reply(opt, p.Rep.INFO, p.encode_info_export(size, export.tflags))
            )
            if p.Info.NAME in req.infos:
                writer.write(
                    p.encode_option_reply(opt, p.Rep.INFO, p.encode_info_name(export.name))
                )
            block = p.encode_info_block_size(1, 4096, p.MAX_PAYLOAD)
            writer.write(p.encode_option_reply(opt, p.Rep.INFO, block))
            writer.write(p.encode_option_reply(opt, p.Rep.ACK))
            if opt != p.Opt.GO:
                return None
            self._attach()
            return export
        name = p.Opt(opt).name if opt in p.Opt._value2member_map_ else str(opt)
        raise p.OptionError(p.Rep.ERR_UNSUP, f"option {name} is not supported")

    # ------------------------------------------------------------------ transmission
    async def _transmission(self, export: Export, reader: Conn, writer: Conn) -> None:
        # A counter and one done callback instead of a Semaphore and two callbacks: each
        # done callback is one more event-loop handle per request.
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        room: list[asyncio.Future[None]] = []  # set when max_in_flight was reached
        pool = BufferPool(share=self.pooled)
        mine = ByteBudget(self.connection_bytes)

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if room and not room[0].done():
                room[0].set_result(None)

        def give_back(held: tuple[int, int]) -> None:
            mine.release(held[0])
            if held[1]:
                self.budget.release(held[1])

        try:
            while True:
                req = p.decode_request(await reader.readexactly(p.REQUEST_SIZE))
                # Taken before the payload is allocated or read: while this client's
                # replies sit unsent, it gets no further request read (back-pressure).
                held = await self._take(mine, _payload_bytes(req))
                try:
                    payload = pool.get(req.length if req.cmd == p.Cmd.WRITE else 0)
                    if payload:
                        await reader.readinto(memoryview(payload))
                    if req.cmd == p.Cmd.DISC:
                        break
                    while len(tasks) >= self.max_in_flight:
                        room.append(loop.create_future())
                        try:
                            await room[0]
                        finally:
                            room.clear()
                except BaseException:
                    give_back(held)
                    raise
                task = loop.create_task(
                    self._serve(export, req, payload, writer, pool, held, give_back)
                )
                tasks.add(task)
                task.add_done_callback(finished)
        finally:
            # Complete everything already accepted (DISC semantics; also on errors).
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            pool.clear()

    async def _take(self, mine: ByteBudget, n: int) -> tuple[int, int]:
        """Bytes taken from the connection's budget and from the server-wide one."""
        n = min(n, mine.limit, self.budget.limit)
        if not n:
            return 0, 0
        await mine.acquire(n)
        if mine.used <= CONNECTION_RESERVE:
            return n, 0
        try:
            await self.budget.acquire(n)
        except BaseException:
            mine.release(n)
            raise
        return n, n

    async def _serve(
        self,
        export: Export,
        req: p.Request,
        payload: bytearray,
        writer: Conn,
        pool: BufferPool,
        held: tuple[int, int],
        give_back: Callable[[tuple[int, int]], None],
    ) -> None:
        self.stats["requests"] += 1
        data = b""
        try:
            try:
                p.check_request(req, export.backend.size, export.tflags)
                data = await self._dispatch(export.backend, req, payload) or b""
                error = 0
            except p.RequestError as exc:
                log.info("NBD request refused: %s", exc)
                error = exc.errno
            except OSError as exc:
                log.error("NBD %s I/O error: %s", req.cmd, exc)
                error = exc.errno if exc.errno in (errno.ENOSPC, errno.EINVAL) else errno.EIO
            except Exception:
                # A bug must cost one request (EIO), never a lost reply that hangs the client.
                log.exception("NBD %s failed unexpectedly", req.cmd)
                error = errno.EIO
            pool.put(payload)  # the backend is done with it (also when it failed)
            if writer.is_closing():
                return
            if data:
                writer.write_reply(p.encode_simple_reply(req.cookie, error), data)
                data = b""
            else:
                writer.write_corked(p.encode_simple_reply(req.cookie, error))
            if writer.must_drain:
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        finally:
            # Only now is the reply out of user space (drained below the transport's
            # low-water mark), or the connection gone.
            if held[0]:
                give_back(held)

    def _dispatch(
        self, b: BlockBackend, req: p.Request, payload: bytearray
    ) -> Awaitable[bytes | None]:
        """The backend's coroutine itself, not one wrapping it: every coroutine layer is
        walked again each time a request suspends and resumes (per write: twice)."""
        fua = bool(req.flags & p.FUA_BIT)
        cmd = p.CMD_BY_VALUE[req.cmd]  # check_request accepted it
        if cmd is p.Cmd.READ:
            return b.pread(req.offset, req.length)
        if cmd is p.Cmd.WRITE:
            return b.pwrite(req.offset, payload, fua)
        if cmd is p.Cmd.FLUSH:
            return b.flush()
        if cmd is p.Cmd.TRIM:
            return b.trim(req.offset, req.length, fua)
        if cmd is p.Cmd.WRITE_ZEROES:
            may_trim = not req.flags & p.NO_HOLE_BIT
            return b.write_zeroes(req.offset, req.length, fua, may_trim)
        return _nothing()


def _payload_bytes(req: p.Request) -> int:
    """The payload a request makes the server hold: a WRITE's (read from the client) or
    a READ's (its reply); a READ above the maximum is refused before it reads anything."""
    if req.cmd == p.Cmd.WRITE or (req.cmd == p.Cmd.READ and req.length <= p.MAX_PAYLOAD):
        return req.length
    return 0


async def _nothing() -> None:
    return None


def _peer(writer: Conn) -> str:
    return str(writer.get_extra_info("peername") or "unix client")
