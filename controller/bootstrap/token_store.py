"""Join tokens in the store: ``tokens/<id>`` under a lease that expires with the token.

Creating and revoking one is recorded (JoinTokenCreated, JoinTokenRevoked) in the same
transaction, on the Cluster object; without a Cluster spec yet, there is no object to
record it on, and the token is written alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.bootstrap.membership_events import cluster_name, token_created, token_revoked
from controller.bootstrap.token import (
    TOKEN_PREFIX,
    JoinToken,
    check_secret,
    new_token,
    token_record,
)
from controller.store.base import Delete, Put, Store
from controller.store.errors import ConflictError
from controller.store.objects import ObjectStore

DEFAULT_TTL = 3600.0
MAX_TTL = 24 * 3600.0


@dataclass(frozen=True)
class TokenInfo:
    id: str
    expires_at: float
    created_by: str


async def create_token(
    store: Store, ca_sha256: str, endpoint: str, *, ttl: float = DEFAULT_TTL, created_by: str = ""
) -> JoinToken:
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"token ttl {ttl:g}s must be above 0 and at most {MAX_TTL:g}s (24h)")
    token = new_token(ca_sha256, endpoint)
    now = time.time()
    cluster = await cluster_name(store)
    lease = await store.grant_lease(max(1, math.ceil(ttl)))
    put = Put(TOKEN_PREFIX + token.id, token_record(token, now, ttl, created_by), lease=lease.id)
    expires = datetime.fromtimestamp(now + ttl, UTC)
    events = [token_created(cluster, token.id, expires, created_by)] if cluster else []
    await ObjectStore(store).commit_with_events([put], events)
    return token


async def verify_token(store: Store, token_id: str, secret: str) -> None:
    """Raise TokenError unless the store holds an unexpired token with this secret."""
    kv = await store.get(TOKEN_PREFIX + token_id)
    check_secret(kv.value if kv is not None else None, token_id, secret, time.time())


async def list_tokens(store: Store) -> list[TokenInfo]:
    kvs, _ = await store.list(TOKEN_PREFIX)
    now = time.time()
    out = [
        TokenInfo(
            kv.key[len(TOKEN_PREFIX) :],
            float(kv.value.get("expiresAt", 0)),
            str(kv.value.get("createdBy", "")),
        )
        for kv in kvs
    ]
    return [t for t in out if t.expires_at > now]


async def delete_token(store: Store, token_id: str, revoked_by: str = "") -> bool:
    """Whether there was such a token (False also when it expired while being revoked)."""
    kv = await store.get(TOKEN_PREFIX + token_id)
    if kv is None:
        return False
    cluster = await cluster_name(store)
    events = [token_revoked(cluster, token_id, revoked_by)] if cluster else []
    try:
        await ObjectStore(store).commit_with_events(
            [Delete(TOKEN_PREFIX + token_id, expect_revision=kv.mod_revision)], events
        )
    except ConflictError:
        return False  # it expired (or went) meanwhile: nothing was revoked
    return True
