"""One heartbeat node for the integration tests, run inside a network namespace.

    python -m tests.integration.heartbeat.hb_node '<json config>'

Prints one JSON object per line on stdout: {"type": "ready"}, then {"type": "event"} for
every ChangeEvent and {"type": "snapshot"} every 200 ms. Times are time.monotonic(),
which all namespaces share with the test process. Exits when stdin closes, so a dying
test never leaves it behind.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from nodeagent.heartbeat.config import HeartbeatConfig, PeerAddress
from nodeagent.heartbeat.service import HeartbeatService
from nodeagent.heartbeat.timing import HeartbeatTiming
from nodeagent.heartbeat.udp import UdpLinkConfig
from nodeagent.realtime import make_realtime


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def config_from(raw: dict[str, Any]) -> HeartbeatConfig:
    return HeartbeatConfig(
        node=raw["node"],
        cluster=raw["cluster"],
        key=bytes.fromhex(raw["key"]),
        timing=HeartbeatTiming(**raw["timing"]),
        address=raw["address"],
        port=raw["port"],
        peers=tuple(PeerAddress(p["name"], p["address"], raw["port"]) for p in raw["peers"]),
        extra_links=tuple(
            UdpLinkConfig(
                name=link["name"],
                bind=link["bind"],
                port=raw["port"],
                destinations=tuple((d, raw["port"]) for d in link["destinations"]),
                interface=link["interface"],
            )
            for link in raw.get("extra_links", [])
        ),
    )


async def main(raw: dict[str, Any]) -> None:
    sched = make_realtime()
    svc = HeartbeatService(config_from(raw))
    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def wait_stdin() -> None:
        while await reader.read(1024):
            pass
        stdin_closed.set()

    async def events() -> None:
        async for ev in svc.watch():
            emit({"type": "event", **asdict(ev)})

    async def snapshots() -> None:
        while True:
            emit({"type": "snapshot", **svc.snapshot()})
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(events())
    await asyncio.sleep(0)  # the watcher registers before the first change
    async with svc:
        emit({"type": "ready", "at": time.monotonic(), "sched": sched})
        tasks = [asyncio.create_task(wait_stdin()), asyncio.create_task(snapshots())]
        await stdin_closed.wait()
        for task in [*tasks, watcher]:
            task.cancel()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
