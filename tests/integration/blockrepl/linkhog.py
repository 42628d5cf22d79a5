"""A stranger on the replication port: keeps N connections open from a given source address,
silent or sending a byte now and then, and opens a new one as soon as one is closed.

Run inside a test's namespace: ``python -m tests.integration.blockrepl.linkhog --src IP
--dst IP:PORT [--conns N] [--dribble]``. Prints one JSON line per connection the server
closed: ``{"lived": seconds}``; ``{"connected": n}`` once a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import time


async def one(src: str, host: str, port: int, dribble: bool, counts: dict[str, int]) -> None:
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((src, 0))
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), 1)
        except (OSError, TimeoutError):
            sock.close()
            await asyncio.sleep(0.05)
            continue
        counts["connected"] += 1
        reader, writer = await asyncio.open_connection(sock=sock)
        started = time.monotonic()
        try:
            while True:
                if dribble:
                    writer.write(b"\x00")
                    await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if not await asyncio.wait_for(reader.read(4096), 0.3):
                        break
        except OSError:
            pass
        print(json.dumps({"lived": round(time.monotonic() - started, 3)}), flush=True)
        writer.close()
        await asyncio.sleep(0.05)  # persistent, without spinning the shared 2-core machine


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--dribble", action="store_true")
    args = ap.parse_args()
    host, port = args.dst.rsplit(":", 1)
    counts = {"connected": 0}
    tasks = [  # referenced: the loop keeps only weak references to tasks
        asyncio.create_task(one(args.src, host, int(port), args.dribble, counts))
        for _ in range(args.conns)
    ]
    while True:
        await asyncio.sleep(1)
        print(json.dumps(counts), flush=True)
        assert not any(t.done() for t in tasks), "a hog connection task ended"


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    sys.exit(0)
