"""The events of the store's membership and of join tokens (docs/events.md).

A token's record and its event are one transaction (token_store.py). A member is added
or removed through etcd's cluster API, which no key transaction covers, so MemberJoined
and MemberRemoved are written right after the change; MemberJoined only once the new
member has started, since until then the store has lost its majority (a second member
added to a lone one), so the join endpoint writes it in the background.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from controller.api.cluster import Cluster
from controller.api.meta import format_timestamp
from controller.store.base import Store
from controller.store.errors import StoreError
from controller.store.objects import Event, ObjectStore, make_event

log = logging.getLogger(__name__)

JOINED_PATIENCE = 300.0  # seconds the join endpoint tries to record a join
ATTEMPT = 3.0  # seconds for one attempt


async def cluster_name(store: Store) -> str | None:
    """The Cluster object's name, on which the token events are recorded; None before a
    Cluster spec was applied."""
    found, _ = await ObjectStore(store).list_objects([Cluster.KIND])
    return found[0].obj.name if found else None


def token_created(cluster: str, token_id: str, expires_at: datetime, by: str) -> Event:
    # The id only: the secret is what lets a node in, and events are readable by anyone
    # who can read the store.
    by_whom = f" on {by}" if by else ""
    message = f"join token {token_id} created{by_whom}; expires {format_timestamp(expires_at)}"
    return make_event(Cluster.KIND, cluster, "JoinTokenCreated", message)


def token_revoked(cluster: str, token_id: str, by: str) -> Event:
    by_whom = f" on {by}" if by else ""
    return make_event(
        Cluster.KIND, cluster, "JoinTokenRevoked", f"join token {token_id} revoked{by_whom}"
    )


def member_joined(node: str, member_id: int, peer_url: str, token_id: str, by: str) -> Event:
    message = (
        f"{node} admitted as store member {member_id:x} ({peer_url}) with join token "
        f"{token_id} by the join endpoint on {by}"
    )
    return make_event("Node", node, "MemberJoined", message, component="agent", node=by)


def member_removed(node: str, member_id: int) -> Event:
    message = f"{node} left the cluster: store member {member_id:x} removed by `ha cluster leave`"
    return make_event("Node", node, "MemberRemoved", message, node=node)


async def record_patiently(store: Store, event: Event, within: float = JOINED_PATIENCE) -> bool:
    """Try to record `event` until it lands or `within` seconds passed; whether it did."""
    objects = ObjectStore(store)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            await objects.commit_with_events([], [event], ATTEMPT)
            return True
        except StoreError as exc:
            if loop.time() >= deadline:
                log.warning("%s not recorded: %s", event.reason, exc)
                return False
            log.info("recording %s: %s; trying again", event.reason, exc)
        await asyncio.sleep(1.0)


async def record_once(store: Store, event: Event, within: float = ATTEMPT) -> str | None:
    """Record `event` in at most `within` seconds; None, or why it was not recorded."""
    try:
        async with asyncio.timeout(within):
            await ObjectStore(store).commit_with_events([], [event], within)
        return None
    except (StoreError, TimeoutError) as exc:
        return str(exc) or type(exc).__name__
