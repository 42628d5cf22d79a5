"""Errors raised by the store layer; no grpc/aetcd exception ever leaves it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

ENDPOINTS_HINT = "is etcd running? check `--endpoints` / VIGIL_ENDPOINTS"


class StoreError(Exception):
    """Base class of every store failure."""


class StoreUnavailableError(StoreError):
    """etcd is down, unreachable, without quorum, or did not answer in time."""

    def __init__(self, endpoints: Sequence[str], cause: str, hint: str = ENDPOINTS_HINT) -> None:
        self.endpoints = list(endpoints)
        self.cause = cause
        self.hint = hint
        where = ", ".join(self.endpoints) or "(no endpoints)"
        super().__init__(f"etcd unavailable at {where}: {cause}; {hint}")


class Conflict(NamedTuple):
    key: str
    expected_revision: int
    actual_revision: int | None  # None: the key does not exist

    def describe(self) -> str:
        if self.expected_revision == 0:
            return f"{self.key}: expected absent, but it exists at revision {self.actual_revision}"
        if self.actual_revision is None:
            return f"{self.key}: expected revision {self.expected_revision}, but it does not exist"
        return (
            f"{self.key}: expected revision {self.expected_revision}, "
            f"found revision {self.actual_revision}"
        )


class ConflictError(StoreError):
    """A compare-and-swap precondition failed; nothing was written."""

    def __init__(self, conflicts: Sequence[Conflict]) -> None:
        self.conflicts = list(conflicts)
        details = "; ".join(c.describe() for c in self.conflicts)
        super().__init__(f"conflict: {details} (someone else changed it; re-read and retry)")


class TxnTooLargeError(StoreError):
    """etcd refused a transaction: too many operations or too many bytes."""

    def __init__(self, cause: str, ops: int | None = None, size: int | None = None) -> None:
        self.cause = cause
        self.ops = ops
        self.size = size
        parts = []
        if ops is not None:
            parts.append(f"{ops} operations")
        if size is not None:
            parts.append(f"~{size} bytes")
        what = f" ({', '.join(parts)})" if parts else ""
        super().__init__(
            f"etcd refused the transaction{what}: {cause}; raise etcd's --max-txn-ops / "
            "--max-request-bytes or apply fewer objects at once"
        )


class CompactedError(StoreError):
    """A watch asked for history etcd has already compacted; relist, then watch again."""

    def __init__(self, revision: int, requested: int | None = None) -> None:
        self.revision = revision
        self.requested = requested
        asked = f" (asked for revision {requested})" if requested is not None else ""
        super().__init__(
            f"store history before revision {revision} was compacted{asked}; "
            "relist and watch again from the list's revision"
        )


class LeaseNotFoundError(StoreError):
    """The lease expired or was revoked (or never existed)."""

    def __init__(self, lease_id: int) -> None:
        self.lease_id = lease_id
        super().__init__(f"lease {lease_id:x} not found: it expired or was revoked")


class PermissionDeniedError(StoreError):
    """etcd's auth refused the request: the client certificate's user lacks the role.

    etcd refuses a transaction whole, so nothing was changed.
    """

    def __init__(self, message: str, cause: str = "") -> None:
        self.cause = cause or message
        super().__init__(message)
