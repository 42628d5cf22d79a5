"""Asking a running replica over its control socket (blockrepl/replication/control.py):
one JSON request per line, one JSON answer per line. Async, bounded by a timeout."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any


class ReplicaUnreachable(RuntimeError):
    """The replica's control socket does not answer: it is not running (or is stuck)."""


async def request(path: Path, cmd: str, timeout: float = 2.0, **extra: Any) -> dict[str, Any]:
    """The replica's answer: {"ok": true, "status": {...}} or {"ok": false, "error": ...}."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
            writer.write(json.dumps({"cmd": cmd, **extra}).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        raise ReplicaUnreachable(f"{path} did not answer {cmd} within {timeout:g}s") from None
    except OSError as exc:
        raise ReplicaUnreachable(f"cannot reach {path}: {exc.strerror or exc}") from None
    finally:
        if writer is not None:
            writer.close()
    try:
        answer = json.loads(line)
    except ValueError:
        raise ReplicaUnreachable(f"{path} answered {cmd} with {line[:80]!r}") from None
    if not isinstance(answer, dict):
        raise ReplicaUnreachable(f"{path} answered {cmd} with {line[:80]!r}")
    return answer
