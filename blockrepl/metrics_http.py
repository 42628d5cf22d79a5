"""Minimal asyncio HTTP endpoint: ``GET /metrics`` answers the exposition text, nothing else.

HTTP/1.0 semantics (one request, then close): Prometheus scrapers handle that fine and it
keeps a hostile or stuck client from holding anything beyond its own bounded read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from blockrepl.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)
MAX_HEAD = 8192  # request line + headers
READ_TIMEOUT = 5.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def respond(request_head: bytes, render: Callable[[], str]) -> tuple[int, bytes, bool]:
    """(status, body, send body?) for the raw request head; pure apart from *render*."""
    line = request_head.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return 400, b"bad request line\n", True
    method, target = parts[0], parts[1]
    path = target.split(b"?", 1)[0]
    if path != b"/metrics":
        return 404, b"not found: only /metrics is served\n", method != b"HEAD"
    if method not in (b"GET", b"HEAD"):
        return 405, b"use GET\n", True
    return 200, render().encode(), method == b"GET"


class MetricsServer:
    def __init__(self, render: Callable[[], str]) -> None:
        self.render = render
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._client, host, port, limit=MAX_HEAD)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            head = b""
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            writer.close()
            return
        try:
            if len(head) > MAX_HEAD or not head:
                status, body, with_body = 400, b"request head too large\n", True
            else:
                status, body, with_body = respond(head, self.render)
        except Exception:  # a broken status must not kill the daemon, only this scrape
            log.exception("rendering /metrics failed")
            status, body, with_body = 500, b"internal error\n", True
        ctype = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
        reason = REASONS.get(status, "Internal Server Error")
        head_out = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head_out + (body if with_body else b""))
            await writer.drain()
        writer.close()
