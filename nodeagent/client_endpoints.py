"""Keep `ha`'s client config on this node listing the endpoint of every etcd member.

`ha cluster init` and `join` write the endpoints known at that moment: the first node's
file would name only itself forever, and `ha` there would fail as soon as that one member
is down although two others serve. The agent compares the file with etcd's member list
now and then and rewrites its endpoints when members joined or left.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from controller.bootstrap.etcd_admin import EtcdAdmin
from controller.bootstrap.node_config import NodeConfig, update_client_endpoints
from controller.store.errors import StoreError

log = logging.getLogger(__name__)

REFRESH = 10.0  # seconds; membership changes are rare, and `ha` tries every endpoint


async def refresh_client_endpoints(admin: EtcdAdmin, path: Path) -> bool:
    """Rewrite the endpoints of the client config at ``path`` if etcd's members differ;
    True if it changed. Members that never started have no endpoint yet and are left out."""
    members = await admin.members()
    endpoints = sorted({url for m in members for url in m.client_urls})
    if not endpoints:
        return False
    changed = update_client_endpoints(path, endpoints)
    if changed:
        log.info("client config %s now lists %s", path, ", ".join(endpoints))
    return changed


async def keep_client_endpoints(config: NodeConfig, interval: float = REFRESH) -> None:
    if config.client_config is None:
        return
    path = Path(config.client_config)
    async with EtcdAdmin(config.etcd.client_urls, config.client_tls()) as admin:
        while True:
            try:
                await refresh_client_endpoints(admin, path)
            except StoreError as exc:  # no quorum or no member yet: the next turn retries
                log.debug("cannot list etcd members for %s: %s", path, exc)
            await asyncio.sleep(interval)
