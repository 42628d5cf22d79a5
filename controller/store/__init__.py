"""Vigil's store layer: JSON objects under /vigil/<cluster>/ in etcd (or in memory)."""

from controller.store.base import (
    Check,
    Delete,
    KeyValue,
    Lease,
    Op,
    Put,
    Store,
    StoreStats,
    WatchEvent,
)
from controller.store.errors import (
    CompactedError,
    Conflict,
    ConflictError,
    LeaseNotFoundError,
    StoreError,
    StoreUnavailableError,
    TxnTooLargeError,
)
from controller.store.lease_keeper import LeaseKeeper, keep_alive
from controller.store.memory import MemoryStore

__all__ = [
    "Check",
    "CompactedError",
    "Conflict",
    "ConflictError",
    "Delete",
    "KeyValue",
    "Lease",
    "LeaseKeeper",
    "LeaseNotFoundError",
    "MemoryStore",
    "Op",
    "Put",
    "Store",
    "StoreError",
    "StoreStats",
    "StoreUnavailableError",
    "TxnTooLargeError",
    "WatchEvent",
    "keep_alive",
]
