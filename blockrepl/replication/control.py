"""Control socket: one JSON request per line on a unix socket, one JSON answer per line.

Requests: ``{"cmd": "status"}``, ``{"cmd": "promote", "force": false, "peer_lost": false,
"peer_wait": 1.0}`` (peer_lost: the cluster knows the peer is gone; peer_wait: seconds to
wait for a peer still Primary to announce its demotion, 0 for a caller that retries by
itself; node.py ``promote``),
``{"cmd": "demote", "wait": SECONDS}`` (refused while NBD clients stay attached after
``wait``; default :data:`DEMOTE_WAIT`),
``{"cmd": "set-resync-rate", "rate": BYTES_PER_S}`` (0 = unlimited),
``{"cmd": "outdate"}`` (outdating.py),
``{"cmd": "verify", "resync": false, "start": 0}``, ``{"cmd": "verify-stop"}`` (verify.py),
``{"cmd": "resolve", "discard_mine": false}`` (leave StandAlone after a split brain).
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
# An NBD client stopped just before the demote (its socket closed) is seen gone within
# milliseconds; this covers that race without making a real refusal slow.
DEMOTE_WAIT = 1.0
# Seconds a promote waits by default for a peer still Primary to announce its demotion:
# `demote` there then `promote` here, as an operator types them, must not fail on a STATE
# still on the wire. The cluster's volume actuator retries by itself and passes 0.
PEER_ROLE_WAIT = 1.0


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
                await self.node.promote(
                    force=bool(req.get("force", False)),
                    peer_lost=bool(req.get("peer_lost", False)),
                    peer_wait=_seconds(req, "promote", "peer_wait", PEER_ROLE_WAIT),
                )
            elif cmd == "demote":
                await self.node.demote(wait=_seconds(req, "demote", "wait", DEMOTE_WAIT))
            elif cmd == "outdate":
                from blockrepl.replication.outdating import outdate_self

                await outdate_self(self.node)
            elif cmd == "set-resync-rate":
                rate = req.get("rate")
                if not isinstance(rate, int) or isinstance(rate, bool) or rate < 0:
                    raise ValueError('set-resync-rate needs "rate": bytes per second >= 0')
                self.node.resync_rate = rate
            elif cmd in ("verify", "verify-stop"):
                await _verify(self.node, cmd, req)
            elif cmd == "resolve":
                from blockrepl.replication.splitbrain import resolve

                discard = req.get("discard_mine", False)
                if not isinstance(discard, bool):
                    raise ValueError('resolve "discard_mine" must be true or false')
                resolve(self.node, discard_mine=discard)
            elif cmd != "status":
                raise ValueError(
                    f"unknown cmd {cmd!r}: use status, promote, demote, set-resync-rate, "
                    "verify, verify-stop, resolve or outdate"
                )
        except (ValueError, BlockReplError, OSError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "status": self.node.status()}


def _seconds(req: dict[str, Any], cmd: str, field: str, default: float) -> float:
    value = req.get(field, default)
    # bool is an int to Python; `true` seconds is a caller's mistake, not 1.
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f'{cmd} "{field}" must be seconds >= 0, not {value!r}')
    return float(value)


async def _verify(node: ReplicaNode, cmd: str, req: dict[str, Any]) -> None:
    from blockrepl.replication import verify

    if cmd == "verify-stop":
        await verify.stop_verify(node)
        return
    resync = req.get("resync", False)
    if not isinstance(resync, bool):
        raise ValueError('verify "resync" must be true or false')
    verify.start_verify(node, resync, req.get("start", 0))


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
