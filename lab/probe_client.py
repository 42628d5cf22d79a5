"""A client that asks the floating address every few milliseconds, for failover timing.

Every `--interval` it opens a NEW TCP connection (attempts overlap; each gives up after
`--timeout`), sends a GET and reads the answer, the node's name. One JSON line per
attempt: start and end on CLOCK_MONOTONIC (shared by every namespace of the machine, so
the lab can compare with the moment it cut the power), and who answered.
Standard library only: it runs inside the lab's client namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time


async def attempt(address: str, port: int, timeout: float) -> None:
    started = time.monotonic()
    node = None
    error = None
    connected = False
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
            connected = True
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await writer.drain()
            data = await reader.read(4096)
            writer.close()
            node = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip() or None
    except TimeoutError:
        error = "timeout"
    except OSError as exc:
        error = exc.strerror or type(exc).__name__
    # connected: the address answered (the kernel of a node holding it), whatever the
    # service did; a timeout before that means nobody held it or the network stalled.
    record = {
        "t0": started,
        "t1": time.monotonic(),
        "node": node,
        "error": error,
        "connected": connected,
    }
    sys.stdout.write(json.dumps(record) + "\n")


async def run(address: str, port: int, interval: float, timeout: float, duration: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks: set[asyncio.Task[None]] = set()
    deadline = time.monotonic() + duration
    next_at = time.monotonic()
    while not stop.is_set() and time.monotonic() < deadline:
        task = asyncio.create_task(attempt(address, port, timeout))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    if tasks:
        await asyncio.wait(tasks)
    sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("address")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=0.3)
    p.add_argument("--duration", type=float, default=3600.0)
    args = p.parse_args()
    asyncio.run(run(args.address, args.port, args.interval, args.timeout, args.duration))


if __name__ == "__main__":
    main()
