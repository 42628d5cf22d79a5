"""Join tokens in the store: ``tokens/<id>`` under a lease that expires with the token."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from controller.bootstrap.token import (
    TOKEN_PREFIX,
    JoinToken,
    check_secret,
    new_token,
    token_record,
)
from controller.store.base import Store

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
    lease = await store.grant_lease(max(1, math.ceil(ttl)))
    await store.put(
        TOKEN_PREFIX + token.id, token_record(token, now, ttl, created_by), lease=lease.id
    )
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


async def delete_token(store: Store, token_id: str) -> bool:
    return await store.delete(TOKEN_PREFIX + token_id)
