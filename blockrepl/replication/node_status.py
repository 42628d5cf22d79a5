"""A replica's status as `blockrepl status`, the control socket and the metrics show it.

Read-only: built from the node's fields at the moment it is asked for.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from blockrepl.layout import BM_BYTES_PER_BIT
from blockrepl.replication import diskless

if TYPE_CHECKING:
    from blockrepl.replication.node import ReplicaNode


def _sync_speed(node: ReplicaNode, remaining: int) -> dict[str, float | None]:
    now, window = time.monotonic(), node.sync_rate
    rate = window.rate(now) if window is not None else None
    eta = window.eta(now, remaining) if window is not None else None
    return {
        "rate_bytes_per_s": None if rate is None else round(rate),
        "eta_seconds": None if eta is None else round(eta, 1),
    }


def describe(node: ReplicaNode) -> dict[str, Any]:
    conn = node.conn
    g = node.store.generation
    peer_role = None if conn is None else ("Primary" if conn.peer_primary else "Secondary")
    sync = None
    if node.sync_state is not None:
        total = node.sync_state["total_bytes"] or 1
        sync = dict(node.sync_state, percent=round(100 * node.sync_state["done_bytes"] / total))
        sync.pop("started", None)
        sync.update(_sync_speed(node, sync["total_bytes"] - sync["done_bytes"]))
    return {
        "volume": node.cfg.volume,
        "role": "Primary" if node.is_primary else "Secondary",
        "connection": node.state,
        "disk": node.disk_state(),
        "peer_role": peer_role,
        "peer_disk": None
        if conn is None
        else ("Inconsistent" if sync and sync["kind"] == "SyncSource" else conn.peer_disk),
        "protocol": node.cfg.protocol,
        "resync_rate": node.resync_rate,
        "sync": sync,
        "last_sync": node.last_sync,
        "verify": None if node.verify is None else node.verify.progress(),
        "last_verify": node.last_verify,
        "out_of_sync_bytes": node.store.bitmap.count() * BM_BYTES_PER_BIT,
        "generation": g.describe(),
        "wire": {
            "bytes_in": node.totals["bytes_in"] + (conn.link.bytes_in if conn else 0),
            "bytes_out": node.totals["bytes_out"] + (conn.link.bytes_out if conn else 0),
            "connections": node.totals["connections"],
        },
        "repl_port": node.bound_port,
        "tls": node.tls_status,
        "last_error": node.last_error,
        "disk_error": diskless.error_status(node),
        "outdatePeer": node.outdate_status,
        "peer_id": node.cfg.peer_id or None,
    }
