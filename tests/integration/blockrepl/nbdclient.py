"""A small pipelined NBD client (fixed newstyle, EXPORT_NAME, simple replies) for tests/bench.

Many requests may be in flight; each ``write``/``read``/``flush`` returns when *its*
reply arrived, so callers can record exactly which writes the server acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513
REPLY_MAGIC = 0x67446698
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
FLAG_FUA = 1


class NbdError(Exception):
    pass


class NbdClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.size = 0
        self._cookie = 0
        self._waiting: dict[int, tuple[asyncio.Future[bytes], int]] = {}
        self._rx: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, unix: str | None = None, host: str = "", port: int = 0, export: str = "blockrepl"
    ) -> NbdClient:
        if unix:
            reader, writer = await asyncio.open_unix_connection(unix, limit=64 << 20)
        else:
            reader, writer = await asyncio.open_connection(host, port, limit=64 << 20)
        c = cls(reader, writer)
        await c._handshake(export)
        c._rx = asyncio.create_task(c._receive())
        return c

    async def _handshake(self, export: str) -> None:
        hdr = await self.reader.readexactly(18)
        magic, opt, _flags = struct.unpack(">QQH", hdr)
        if magic != NBDMAGIC or opt != IHAVEOPT:
            raise NbdError("not a fixed-newstyle NBD server")
        name = export.encode()
        self.writer.write(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
        self.writer.write(struct.pack(">QII", IHAVEOPT, 1, len(name)) + name)
        await self.writer.drain()
        try:
            self.size, _tflags = struct.unpack(">QH", await self.reader.readexactly(10))
        except asyncio.IncompleteReadError:
            raise NbdError(f"server refused export {export!r}") from None

    async def _receive(self) -> None:
        try:
            while True:
                magic, err, cookie = struct.unpack(">IIQ", await self.reader.readexactly(16))
                if magic != REPLY_MAGIC:
                    raise NbdError(f"bad reply magic {magic:#x}")
                fut, rlen = self._waiting.pop(cookie)
                data = await self.reader.readexactly(rlen) if rlen and not err else b""
                if err:
                    fut.set_exception(NbdError(f"server error {err}"))
                else:
                    fut.set_result(data)
        except (asyncio.IncompleteReadError, ConnectionError, NbdError) as exc:
            for fut, _ in self._waiting.values():
                if not fut.done():
                    fut.set_exception(NbdError(f"connection lost: {exc!r}"))
            self._waiting.clear()

    async def _request(
        self,
        cmd: int,
        offset: int,
        length: int,
        payload: bytes = b"",
        flags: int = 0,
        rlen: int = 0,
    ) -> bytes:
        if self._rx is not None and self._rx.done():
            raise NbdError("connection lost")
        self._cookie += 1
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[self._cookie] = (fut, rlen)
        self.writer.write(
            struct.pack(">IHHQQI", REQUEST_MAGIC, flags, cmd, self._cookie, offset, length)
        )
        if payload:
            self.writer.write(payload)
        await self.writer.drain()
        return await fut

    async def write(self, offset: int, data: bytes, fua: bool = False) -> None:
        await self._request(CMD_WRITE, offset, len(data), data, FLAG_FUA if fua else 0)

    async def read(self, offset: int, length: int) -> bytes:
        return await self._request(CMD_READ, offset, length, rlen=length)

    async def flush(self) -> None:
        await self._request(CMD_FLUSH, 0, 0)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_DISC, 0, 0, 0))
            await self.writer.drain()
        if self._rx is not None:
            self._rx.cancel()
            with contextlib.suppress(BaseException):
                await self._rx
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
