"""This node's etcd member, asked every POLL_EVERY seconds while metrics are served:
healthy (it has a leader), the leader's id (a change counted), the database size, and how
many voting members its cluster has."""

from __future__ import annotations

import asyncio
import logging
import math

from controller.bootstrap.etcd_admin import EtcdAdmin, member_status
from controller.store.etcd_channel import TLSFiles
from nodeagent.metrics.instruments import ETCD_LEADER_CHANGES

POLL_EVERY = 10.0

log = logging.getLogger(__name__)


class EtcdPoll:
    def __init__(self, endpoint: str, tls: TLSFiles) -> None:
        self.endpoint = endpoint
        self.tls = tls
        self.healthy = math.nan  # unknown until the first answer
        self.db_size = math.nan
        # The quorum is a majority of these, not of the nodes: a two-node survivor that
        # restarted its store alone has one voter, and a quorum of one.
        self.voters = math.nan
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
        await self._count_voters()

    async def _count_voters(self) -> None:
        """etcd 3.4 answers a member list from the member's own copy, quorum or not: the
        count stays known while the store has no quorum, when it is most needed. An
        unanswered list keeps the last count (a member that is down has not changed it)."""
        try:
            async with EtcdAdmin([self.endpoint], self.tls, timeout=2.0) as admin:
                members = await admin.members()
        except Exception as e:  # a stopped member: it said so in healthy already
            log.debug("etcd member list from %s: %s", self.endpoint, e)
            return
        self.voters = float(sum(1 for m in members if not m.is_learner))

    async def run(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(POLL_EVERY)
