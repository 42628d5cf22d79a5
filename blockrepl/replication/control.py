"""Control socket: one JSON request per line on a unix socket, one JSON answer per line.

Requests: ``{"cmd": "status"}``, ``{"cmd": "promote", "force": false}``, ``{"cmd": "demote"}``,
``{"cmd": "set-resync-rate", "rate": BYTES_PER_S}`` (0 = unlimited).
Answers: ``{"ok": true, "status": {...}}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from typing import Any

from blockrepl.errors import BlockReplError
from blockrepl.replication.node import ReplicaNode

MAX_REQUEST = 4096


class ControlError(BlockReplError):
    pass


class ControlServer:
    def __init__(self, node: ReplicaNode, path: str) -> None:
        self.node = node
        self.path = path
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._client, path=self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            answer = await self.handle(line[:MAX_REQUEST])
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("request must be a JSON object")
            cmd = req.get("cmd")
            if cmd == "promote":
                await self.node.promote(force=bool(req.get("force", False)))
            elif cmd == "demote":
                await self.node.demote()
            elif cmd == "set-resync-rate":
                rate = req.get("rate")
                if not isinstance(rate, int) or isinstance(rate, bool) or rate < 0:
                    raise ValueError('set-resync-rate needs "rate": bytes per second >= 0')
                self.node.resync_rate = rate
            elif cmd != "status":
                raise ValueError(
                    f"unknown cmd {cmd!r}: use status, promote, demote or set-resync-rate"
                )
        except (ValueError, BlockReplError, OSError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "status": self.node.status()}


def request(path: str, cmd: str, timeout: float = 30.0, **extra: Any) -> dict[str, Any]:
    """Blocking client used by the CLI and tests."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except OSError as exc:
            raise ControlError(
                f"cannot reach {path}: {exc}; is `blockrepl serve` running?"
            ) from None
        s.sendall(json.dumps({"cmd": cmd, **extra}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    answer: dict[str, Any] = json.loads(buf)
    return answer
