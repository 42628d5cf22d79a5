"""This node's etcd member, asked every POLL_EVERY seconds while metrics are served:
healthy (it has a leader), the leader's id (a change counted), the database size."""

from __future__ import annotations

import asyncio
import math

from controller.bootstrap.etcd_admin import member_status
from controller.store.etcd_channel import TLSFiles
from nodeagent.metrics.instruments import ETCD_LEADER_CHANGES

POLL_EVERY = 10.0


class EtcdPoll:
    def __init__(self, endpoint: str, tls: TLSFiles) -> None:
        self.endpoint = endpoint
        self.tls = tls
        self.healthy = math.nan  # unknown until the first answer
        self.db_size = math.nan
        self._leader = 0

    async def once(self) -> None:
        status = await member_status(self.endpoint, self.tls)
        self.healthy = 1.0 if status.healthy else 0.0
        if status.member_id:  # answered: its size is known
            self.db_size = float(status.db_size)
        leader = status.leader
        if leader and self._leader and leader != self._leader:
            ETCD_LEADER_CHANGES.inc()
        if leader:
            self._leader = leader

    async def run(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(POLL_EVERY)
