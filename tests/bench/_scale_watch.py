"""Watches every ResourceGroup's status and prints how many are Running, for the scale bench.

Runs in the lab's client namespace (where the store is reachable) with the lab's client
config. A watch, not polling: listing thousands of statuses every fraction of a second
would load the very cluster being measured. One JSON line per change of the counts, at
most every 50 ms: {"t": CLOCK_MONOTONIC (shared by every namespace), "phases": {...}}.

    python -m tests.bench._scale_watch --config CLIENT_CONFIG [--prefix g-]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter

from controller.store import keys
from controller.store.client_config import resolve
from controller.store.informer import Informer

PRINT_EVERY = 0.05


async def watch(config_path: str, prefix: str) -> None:
    store = resolve(config_path=config_path).open_store()
    informer = Informer(store, prefix=keys.status_prefix("ResourceGroup"))
    changed = informer.subscribe()
    task = asyncio.create_task(informer.run())
    status_prefix = keys.status_prefix("ResourceGroup")
    last: dict[str, int] | None = None
    try:
        while True:
            await changed.wait()
            changed.clear()
            phases: Counter[str] = Counter()
            for kv in informer.under(status_prefix):
                if kv.key[len(status_prefix) :].startswith(prefix):
                    phases[str(kv.value.get("phase"))] += 1
            counts = dict(phases)
            if counts != last:
                sys.stdout.write(json.dumps({"t": time.monotonic(), "phases": counts}) + "\n")
                sys.stdout.flush()
                last = counts
            await asyncio.sleep(PRINT_EVERY)
    finally:
        task.cancel()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--prefix", default="", help="count only groups whose name starts so")
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(args.config, args.prefix))


if __name__ == "__main__":
    main()
