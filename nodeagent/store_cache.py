"""The on-disk copy of what a node must know through a store outage.

The agent preloads its informer from it at start, so a node knows its groups, their
placements and its fence devices even while the store is unreachable; it is rewritten
at most once a second from the informer while the store is connected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from controller.store import keys
from controller.store.base import KeyValue
from controller.store.informer import Informer

log = logging.getLogger(__name__)

CACHE_NAME = "store-cache.json"
# What a node needs to keep serving through a store outage, and, in two-node mode, to fence
# its peer while the store has no majority; nothing else is cached.
CACHED_PREFIXES = (
    keys.spec_prefix("Cluster"),
    keys.spec_prefix("ResourceGroup"),
    keys.spec_prefix("FenceDevice"),
    keys.PLACEMENT,
    keys.FENCING,
)


def load_cache(path: Path, informer: Informer) -> None:
    try:
        data = json.loads(path.read_text())
        items = [KeyValue(k, v, int(rev), 0, 0, 0) for k, (rev, v) in data["items"].items()]
    except (OSError, ValueError, KeyError, TypeError):
        return
    informer.preload(items)
    log.info("preloaded %d objects from the last store copy", len(items))


async def save_cache_loop(path: Path, informer: Informer) -> None:
    changed = informer.subscribe()
    saved_revision = -1
    while True:
        await changed.wait()
        changed.clear()
        if not informer.connected or informer.revision == saved_revision:
            continue
        items = {
            kv.key: (kv.mod_revision, kv.value)
            for prefix in CACHED_PREFIXES
            for kv in informer.under(prefix)
        }
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"revision": informer.revision, "items": items}))
            tmp.replace(path)
            saved_revision = informer.revision
        except OSError as exc:
            log.warning("cannot save the store copy: %s", exc)
        await asyncio.sleep(1.0)  # at most one write a second
