"""``ha cluster leave``: remove this node's etcd member, then wipe its data dir.

etcd exits by itself once it learns it was removed (the agent's supervisor then does
not restart it). Its data dir is wiped only after it stopped answering: a running
member's files are never pulled from under it. MemberRemoved is recorded through the
members that stay, right after the removal (etcd's cluster API is no key transaction).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

from controller.api.errors import InputError
from controller.bootstrap.etcd_admin import EtcdAdmin
from controller.bootstrap.etcd_config import port_in_use
from controller.bootstrap.membership_events import member_removed, record_once
from controller.bootstrap.node_config import NodeConfig, save_node_config
from controller.store.etcd import EtcdStore


class LeaveError(Exception):
    """Leaving failed or is only half done; the message says what is left to do."""


async def _wait_stopped(cfg: NodeConfig, within: float) -> bool:
    parts = urlsplit(cfg.etcd.client_urls[0])
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not port_in_use(parts.hostname or "", parts.port or 0):
            return True
        await asyncio.sleep(0.1)
    return False


async def leave_cluster(
    cfg: NodeConfig,
    node_config: Path,
    *,
    endpoints: list[str] | None = None,
    wait_stopped: float = 10.0,
) -> str:
    """Remove cfg.node from etcd; returns a one-line summary. endpoints: members to ask."""
    if cfg.state == "left":
        raise InputError(f"{node_config}: node {cfg.node} already left the cluster")
    tls = cfg.client_tls()
    # Own member first; the others too, so leaving works while the local etcd is down.
    asked = list(dict.fromkeys([*cfg.etcd.client_urls, *(endpoints or [])]))
    async with EtcdAdmin(asked, tls) as local:
        members = await local.members()
    me = next((m for m in members if m.name == cfg.node), None)
    if me is None:
        raise LeaveError(f"node {cfg.node} is not an etcd member (members: "
                         f"{', '.join(m.name or f'{m.id:x}' for m in members)})")  # fmt: skip
    others = [u for m in members if m.id != me.id for u in m.client_urls]
    if not others:
        raise LeaveError(
            f"node {cfg.node} is the last member: leaving would destroy the cluster's data. "
            f"To do that on purpose, stop vigil-agent and remove {cfg.data_dir}"
        )
    # Ask the others, so the answer does not depend on the member being removed.
    async with EtcdAdmin(others, tls) as admin:
        await admin.remove(me.id)
    unrecorded = await _record_removal(cfg, others, me.id)
    stopped = await _wait_stopped(cfg, wait_stopped)
    cfg = cfg.model_copy(update={"state": "left"})
    save_node_config(cfg, node_config)
    if not stopped:
        raise LeaveError(
            f"removed member {cfg.node} ({me.id:x}) from the cluster, but its etcd still "
            f"listens on {cfg.etcd.client_urls[0]}: stop vigil-agent, then remove {cfg.data_dir}"
        )
    shutil.rmtree(cfg.data_dir, ignore_errors=True)
    summary = f"node {cfg.node} left the cluster (member {me.id:x} removed, {cfg.data_dir} wiped)"
    if unrecorded is not None:
        summary += f"; MemberRemoved not recorded: {unrecorded}"
    return summary


async def _record_removal(cfg: NodeConfig, others: list[str], member_id: int) -> str | None:
    """MemberRemoved, through the members that stay; None, or why it was not recorded."""
    p = cfg.pki
    store = EtcdStore(
        others, cfg.cluster, ca_cert=p.ca_cert, cert_key=p.client_key, cert_cert=p.client_cert
    )
    async with store:
        return await record_once(store, member_removed(cfg.node, member_id))
