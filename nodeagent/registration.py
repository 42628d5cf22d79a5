"""nodes/<node>: this agent is connected to the store, and how it hears its peers.

The record lives on a short lease, so that it vanishes with the agent. It is level-
triggered like everything else: whenever the informer's copy of the store lacks it (its
lease expired during an etcd leader change, someone deleted it), or what it says changed,
it is written again, on a new lease if the old one is gone. A node whose registration was
lost therefore re-registers at once, not only when something else about it changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from controller.store import keys
from controller.store.base import Store
from controller.store.errors import LeaseNotFoundError, StoreError
from controller.store.informer import Informer, wait_any
from controller.store.lease_keeper import LeaseKeeper
from controller.store.records import NodeRecord

log = logging.getLogger(__name__)

TTL = 3  # seconds
WRITE_GAP = 0.5  # at most two writes a second
RETRY_MAX = 2.0
SEEN_WITHIN = 1.0  # seconds the informer has to show a write before it counts as missing


class Registration:
    def __init__(
        self,
        store: Store,
        informer: Informer,
        node: str,
        record: Callable[[], NodeRecord],
        changed: asyncio.Event,
    ) -> None:
        self.store = store
        self.informer = informer
        self.node = node
        self.record = record
        self.changed = changed  # set when what the record says may have changed
        self.key = keys.node_key(node)
        self.leases = 0  # leases granted: each loss costs one

    def _missing(self) -> bool:
        return self.informer.connected and self.informer.get(self.key) is None

    async def run(self) -> None:
        store_changed = self.informer.subscribe()
        retry = 0.2
        while True:
            try:
                lease = await self.store.grant_lease(TTL)
                self.leases += 1
                async with LeaseKeeper(lease, TTL / 3) as keeper:
                    written: NodeRecord | None = None
                    written_at = 0.0
                    while not keeper.lost.is_set():
                        record = self.record()
                        # Missing, once the informer had time to see the last write: gone
                        # since, or never there for long (a copy that saw neither its write
                        # nor its deletion waited forever when this waited to see it once).
                        late = time.monotonic() - written_at > SEEN_WITHIN
                        if record != written or (late and self._missing()):
                            await self.store.put(self.key, record.to_dict(), lease=lease.id)
                            written, written_at = record, time.monotonic()
                        retry = 0.2
                        # A write the informer has not shown yet is looked at again soon.
                        within = SEEN_WITHIN if self._missing() else 5.0
                        await wait_any([self.changed, store_changed, keeper.lost], within)
                        await asyncio.sleep(WRITE_GAP)
                log.warning("registration of %s lost (%s): registering again", self.node,
                            keeper.lost_reason)  # fmt: skip
            except LeaseNotFoundError:
                continue  # the lease went while writing: a new one at once
            except StoreError as exc:
                log.info("registration of %s: %s; again in %.1f s", self.node, exc, retry)
                await asyncio.sleep(retry)
                retry = min(2 * retry, RETRY_MAX)
