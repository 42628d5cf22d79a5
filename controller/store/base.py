"""Store interface shared by the etcd store and the in-memory fake.

Keys are relative to ``/vigil/<cluster>/``. Values are JSON objects stored as compact
UTF-8 JSON. Revisions follow etcd: one global counter, bumped once per write
transaction; ``expect_revision`` None = no precondition, 0 = key must be absent,
N > 0 = the key's mod_revision must be N.
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from controller.store.errors import Conflict, StoreError
from controller.store.keys import check_relative_key

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: JSONDict
    mod_revision: int
    create_revision: int
    version: int
    lease: int  # 0 when the key has no lease


@dataclass(frozen=True)
class Put:
    key: str
    value: Mapping[str, Any]
    expect_revision: int | None = None
    lease: int | None = None


@dataclass(frozen=True)
class Delete:
    key: str
    expect_revision: int | None = None


@dataclass(frozen=True)
class Check:
    key: str
    expect_revision: int


Op = Put | Delete | Check


@dataclass(frozen=True)
class WatchEvent:
    type: Literal["PUT", "DELETE"]
    key: str
    value: JSONDict | None
    mod_revision: int
    prev_value: JSONDict | None


@dataclass
class StoreStats:
    """Requests issued to the backend (the etcd round trips an operation cost)."""

    txns: int = 0
    ranges: int = 0
    puts: int = 0
    deletes: int = 0
    watch_streams: int = 0  # watch streams opened, including resumes after a disconnect
    lease_ops: int = 0


def encode_value(key: str, value: Mapping[str, Any]) -> bytes:
    if not isinstance(value, Mapping):
        raise TypeError(
            f"value of {key!r} must be a JSON object (dict), got {type(value).__name__}"
        )
    try:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as e:
        raise TypeError(f"value of {key!r} is not JSON-serialisable: {e}") from e


def decode_value(key: str, raw: bytes) -> JSONDict:
    try:
        value = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError) as e:
        raise StoreError(f"value of store key {key!r} is not valid UTF-8 JSON: {e}") from e
    if not isinstance(value, dict):
        raise StoreError(
            f"value of store key {key!r} is JSON {type(value).__name__}, expected an object; "
            "it was not written by Vigil: delete or fix it"
        )
    return value


def check_revision(key: str, expect_revision: int | None) -> None:
    if expect_revision is None:
        return
    if isinstance(expect_revision, bool) or not isinstance(expect_revision, int):
        raise TypeError(f"expect_revision of {key!r} must be an int or None")
    if expect_revision < 0:
        raise ValueError(
            f"expect_revision of {key!r} is {expect_revision}: use None (no check), "
            "0 (must not exist) or a mod_revision > 0"
        )


def validate_ops(ops: Sequence[Op]) -> None:
    """Reject what etcd would reject: malformed ops and two writes to one key."""
    written: set[str] = set()
    for op in ops:
        if not isinstance(op, Put | Delete | Check):
            raise TypeError(f"commit() takes Put/Delete/Check ops, got {type(op).__name__}")
        check_relative_key(op.key)
        check_revision(op.key, op.expect_revision)
        if isinstance(op, Check) and op.expect_revision is None:
            raise ValueError(f"Check({op.key!r}) needs an expect_revision")
        if isinstance(op, Put | Delete):
            if op.key in written:
                raise ValueError(
                    f"key {op.key!r} is written twice in one transaction; etcd refuses that "
                    "(merge the two operations)"
                )
            written.add(op.key)


def preconditions(ops: Sequence[Op]) -> list[tuple[str, int]]:
    return [(op.key, op.expect_revision) for op in ops if op.expect_revision is not None]


def find_conflicts(
    conds: Sequence[tuple[str, int]], actual: Mapping[str, int | None]
) -> list[Conflict]:
    """Preconditions that do not hold, given each key's actual mod_revision (None = absent)."""
    out = []
    for key, expected in conds:
        got = actual.get(key)
        holds = got is None if expected == 0 else got == expected
        if not holds:
            out.append(Conflict(key, expected, got))
    return out


class Lease(abc.ABC):
    id: int
    ttl: int

    @abc.abstractmethod
    async def refresh(self, timeout: float | None = None) -> int:
        """Renew the lease; return the TTL granted. LeaseNotFoundError if it is gone.
        `timeout` shortens the store's own: a keeper must not wait past the lease's end."""

    @abc.abstractmethod
    async def revoke(self) -> None:
        """Revoke the lease, deleting its keys. Revoking a gone lease is not an error."""


class Store(abc.ABC):
    cluster: str
    stats: StoreStats

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None: ...

    @abc.abstractmethod
    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """All keys under prefix, sorted, and the revision of that single consistent read."""

    @abc.abstractmethod
    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        expect_revision: int | None = None,
        lease: int | None = None,
    ) -> int: ...

    @abc.abstractmethod
    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool: ...

    @abc.abstractmethod
    async def commit(self, ops: Sequence[Op], timeout: float | None = None) -> int:
        """Apply all ops in one transaction, all-or-nothing; return the new revision.
        `timeout` shortens the store's own for callers that retry (a timed-out commit may
        still have been applied: retry with the same preconditions)."""

    @abc.abstractmethod
    async def revision(self) -> int: ...

    @abc.abstractmethod
    def watch(
        self, prefix: str, start_revision: int, *, give_up_after: float | None = None
    ) -> AsyncIterator[WatchEvent]:
        """Events under prefix from start_revision (0 = from the first iteration on),
        resuming across disconnects; CompactedError when that history is gone.
        give_up_after: seconds without a connection before StoreUnavailableError
        (None = retry forever)."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Drop history before revision (watches from older revisions then fail)."""

    @abc.abstractmethod
    async def grant_lease(self, ttl_seconds: int, timeout: float | None = None) -> Lease:
        """A new lease; `timeout` shortens the store's own for callers that retry (a timed-out
        grant may still have happened: that lease expires unused)."""

    @abc.abstractmethod
    async def revoke_lease(self, lease_id: int, timeout: float | None = None) -> None:
        """Revoke a lease by id, deleting its keys; for a holder known to be gone (a lost
        node's leadership). Revoking a gone lease is not an error. `timeout` shortens the
        store's own for callers that retry."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


__all__ = [
    "Check",
    "Delete",
    "JSONDict",
    "KeyValue",
    "Lease",
    "Op",
    "Put",
    "Store",
    "StoreStats",
    "WatchEvent",
]
