"""Join tokens: ``<id>.<secret>@<ca-sha256>@<host:port>`` (pure logic, no I/O).

The id names the record in the store (``tokens/<id>``, on a lease so etcd drops it when
it expires); the store keeps only the sha256 of the secret. The CA fingerprint lets the
joiner trust the join endpoint before it has the CA; host:port says where that is.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

TOKEN_PREFIX = "tokens/"
_ALPHABET = string.ascii_lowercase + string.digits
_ID = re.compile(r"^[a-z0-9]{6}$")
_SECRET = re.compile(r"^[a-z0-9]{16}$")
_FPR = re.compile(r"^[0-9a-f]{64}$")
FORMAT_HINT = (
    "expected <id>.<secret>@<ca-sha256>@<host:port>, as printed by `ha cluster token create`"
)


class TokenError(ValueError):
    """A token is malformed, unknown, expired or wrong."""


@dataclass(frozen=True)
class JoinToken:
    id: str
    secret: str
    ca_sha256: str
    endpoint: str  # host:port of the join endpoint

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}@{self.ca_sha256}@{self.endpoint}"

    @property
    def host(self) -> str:
        return split_endpoint(self.endpoint)[0]

    @property
    def port(self) -> int:
        return split_endpoint(self.endpoint)[1]


def split_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TokenError(f"join endpoint {text!r} must be HOST:PORT, e.g. 10.0.0.1:2378")
    return host, int(port)


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_token(ca_sha256: str, endpoint: str) -> JoinToken:
    split_endpoint(endpoint)
    return JoinToken(_random(6), _random(16), ca_sha256, endpoint)


def parse_token(text: str) -> JoinToken:
    parts = text.strip().split("@")
    if len(parts) != 3:
        raise TokenError(f"malformed join token: {FORMAT_HINT}")
    cred, fpr, endpoint = parts
    tid, sep, secret = cred.partition(".")
    if not sep or not _ID.match(tid) or not _SECRET.match(secret):
        raise TokenError(
            f"malformed join token: the part before the first '@' must be a 6-character id, "
            f"a dot and a 16-character secret; {FORMAT_HINT}"
        )
    fpr = fpr.lower()
    if not _FPR.match(fpr):
        raise TokenError(
            "malformed join token: the CA fingerprint must be 64 hex digits (sha256); "
            + FORMAT_HINT
        )
    split_endpoint(endpoint)
    return JoinToken(tid, secret, fpr, endpoint)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_record(token: JoinToken, now: float, ttl: float, created_by: str) -> dict[str, Any]:
    """What the store holds for a token (never the secret itself)."""
    return {
        "secretSha256": secret_hash(token.secret),
        "createdAt": now,
        "expiresAt": now + ttl,
        "createdBy": created_by,
    }


def check_secret(record: dict[str, Any] | None, token_id: str, secret: str, now: float) -> None:
    """Raise TokenError unless record (the store's, or None) accepts secret at time now."""
    if record is None:
        raise TokenError(
            f"join token {token_id} is unknown or expired; create a new one with "
            "`ha cluster token create` on a member"
        )
    expires = float(record.get("expiresAt", 0))
    # The lease normally removes the record; a leader change can postpone that, so check too.
    if now >= expires:
        raise TokenError(
            f"join token {token_id} expired {now - expires:.0f}s ago; create a new one with "
            "`ha cluster token create`"
        )
    want = str(record.get("secretSha256", ""))
    if not hmac.compare_digest(want, secret_hash(secret)):
        raise TokenError(f"join token {token_id}: wrong secret; copy the whole token again")
