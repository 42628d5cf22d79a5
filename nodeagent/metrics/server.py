"""/metrics over HTTP(S), on the agent's event loop; beside it, the status page
(nodeagent/web/) when metrics.status_page is on, behind the same TLS and users.

An asyncio server rather than prometheus_client's threaded one: the collector then reads
the agent's state on the loop that changes it, never half-way through a change. A scrape
costs the loop the time to render the text (a few ms for a small cluster; measured by
tests/bench/metrics.py). A bcrypt check, slow by design, runs in a thread, and a
password once accepted is remembered (as the exporter toolkit does) so that a scrape
every few seconds does not pay it again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from nodeagent.metrics.webconfig import WebConfig
from nodeagent.web.source import PATHS, StatusPages

log = logging.getLogger(__name__)

HEAD_LIMIT = 8192
READ_TIMEOUT = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip


class MetricsServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        web: WebConfig | None = None,
        pages: StatusPages | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.web = web or WebConfig(None, {})
        self.pages = pages  # the status page (metrics.status_page), behind the same auth
        self._server: asyncio.Server | None = None
        self._accepted: set[bytes] = set()  # digests of credentials bcrypt accepted

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self.web.ssl_context, limit=HEAD_LIMIT
        )
        scheme = "https" if self.web.ssl_context else "http"
        auth = " with basic auth" if self.web.users else ""
        log.info("metrics on %s://%s:%d/metrics%s", scheme, self.host, self.port, auth)
        if self.pages is not None:
            log.info("status page on %s://%s:%d/", scheme, self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, headers, body = await self._answer(head)
            writer.write(_response(status, headers, body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sends no complete request gets no answer
        except (OSError, ValueError) as exc:
            log.debug("metrics request: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> tuple[int, dict[str, str], bytes]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return 400, {}, b"bad request\n"
        method, target, _version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if self.web.users and not await self._authorized(headers.get("authorization", "")):
            return 401, {"WWW-Authenticate": 'Basic realm="vigil-agent"'}, b"unauthorized\n"
        if method != "GET":
            return 405, {"Allow": "GET"}, b"method not allowed\n"
        path = target.split("?", 1)[0]
        if path == "/metrics":
            body = generate_latest(self.registry)
            return 200, {"Content-Type": CONTENT_TYPE_LATEST}, body
        if self.pages is not None and path in PATHS:
            try:
                return await self.pages.answer(path)
            except Exception:
                # A bug in the page must not look like a dead agent: say so, log it.
                log.exception("status page %s", path)
                return 500, {}, b"status page failed; the agent's log says why\n"
        if path == "/":
            return 200, {"Content-Type": "text/plain"}, b"vigil-agent: metrics at /metrics\n"
        return 404, {}, b"not found\n"

    async def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.web.users.get(user)
        if not sep or hashed is None:
            return False
        digest = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed])).digest()
        if any(hmac.compare_digest(digest, known) for known in self._accepted):
            return True
        ok = await asyncio.get_running_loop().run_in_executor(
            None, _checkpw, password.encode(), hashed
        )
        if ok:
            self._accepted.add(digest)
        return ok


def _checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:
        return False


def _response(status: int, headers: dict[str, Any], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body
