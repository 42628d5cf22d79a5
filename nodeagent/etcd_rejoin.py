"""A store member the cluster removed joins again as a fresh member.

In two-node mode the survivor restarts etcd as a one-member cluster after fencing its
peer (nodeagent/two_node.py). When the fenced node comes back, its etcd finds itself
removed ("data-dir used by this member must be removed") and exits. Its data is stale: it
may hold placements from before the fence, and it must never serve them. So the agent
sets the old data directory aside, asks the cluster (any reachable member, over the node's
client certificate) to add this node again, and starts etcd empty with the member list it
was given; etcd then copies the survivor's data. DRBD's and etcd's own advice for a
member whose disk is stale is the same: wipe it, add it again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from controller.bootstrap.etcd_admin import EtcdAdmin
from controller.bootstrap.etcd_config import EtcdStartError, host_port
from controller.bootstrap.node_config import url
from controller.store.errors import StoreError
from controller.store.etcd_channel import TLSFiles
from controller.store.informer import Informer
from nodeagent.etcd_member import EtcdMember

log = logging.getLogger(__name__)


def was_removed(member: EtcdMember) -> bool:
    """Whether etcd exited because the cluster no longer has this member."""
    return member.state == "removed"


def set_aside(data_dir: Path) -> Path | None:
    """Move the stale data dir to `<dir>.removed` (replacing an older one): kept for a
    post-mortem, never read again."""
    if not data_dir.exists():
        return None
    aside = data_dir.with_name(data_dir.name + ".removed")
    shutil.rmtree(aside, ignore_errors=True)
    data_dir.rename(aside)
    return aside


async def rejoin(
    member: EtcdMember, peers: Sequence[str], tls: TLSFiles, *, within: float = 30.0
) -> None:
    """Join the cluster again through `peers` (client URLs of the other members) as a
    fresh member; raises StoreError or EtcdStartError when it cannot."""
    await member.stop()
    cfg = member.config
    aside = set_aside(cfg.data_dir)
    log.warning(
        "etcd member %s was removed from the cluster; its data set aside in %s, joining again",
        cfg.name,
        aside,
    )
    async with EtcdAdmin(list(peers), tls) as admin:
        for stale in await admin.members():
            if cfg.peer_url in stale.peer_urls:
                # An entry of an earlier try that never started, or the old self.
                await admin.remove(stale.id)
        _, members = await admin.add(cfg.peer_url)
    initial = ",".join(f"{m.name or cfg.name}={m.peer_urls[0]}" for m in members if m.peer_urls)
    member.config = dataclasses.replace(
        cfg, initial_cluster=initial, initial_cluster_state="existing"
    )
    await member.start()
    await member.wait_healthy(within)
    log.warning("etcd member %s joined again: %s", cfg.name, initial)


async def keep_member(
    member: EtcdMember, informer: Informer, node: str, tls: TLSFiles, every: float = 1.0
) -> None:
    """In two-node mode, join again whenever the cluster removed this member (after the
    peer fenced this node and carried on alone). In majority mode a removed member was
    removed by an operator (`ha cluster leave`): it stays out."""
    _, port = host_port(member.client_url)
    while True:
        await asyncio.sleep(every)
        view = informer.view()
        if view.cluster is None or view.cluster.spec.quorum.mode != "two-node":
            continue
        if not was_removed(member):
            continue
        peers = [url(m.address, port) for m in view.cluster.spec.nodes if m.name != node]
        try:
            await rejoin(member, peers, tls)
        except (StoreError, EtcdStartError, OSError) as exc:
            log.error("etcd member %s could not join again: %s; retrying in 5 s", node, exc)
            await asyncio.sleep(5.0)
