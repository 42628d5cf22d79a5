"""A replica's entry in its volume's status, from what `blockrepl status` says. Pure.

Each node writes only its own entry (`merge`), so the two replicas of a volume never
overwrite each other's view; the write is a compare-and-swap on the status key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from controller.api.volume import ReplicaStatus, ReplicatedVolumeStatus, SyncProgress

_DISKS = {"UpToDate", "Outdated", "Inconsistent", "Diskless", "Consistent"}


def replica_status(
    node: str, raw: dict[str, Any] | None, error: str | None, now: datetime
) -> ReplicaStatus:
    """This node's entry: from the replica's own status, or, when it does not answer
    (`raw` None), Unknown with the reason."""
    if raw is None:
        return ReplicaStatus(node=node, last_error=error, observed_at=now)
    sync = raw.get("sync")
    progress = None
    if isinstance(sync, dict) and sync.get("kind") in ("SyncSource", "SyncTarget"):
        total = int(sync.get("total_bytes") or 0)
        done = min(int(sync.get("done_bytes") or 0), total)
        progress = SyncProgress(
            direction=sync["kind"],
            done_bytes=done,
            total_bytes=total,
            percent=round(100 * done / total, 1) if total else 100.0,
            rate=sync.get("rate_bytes_per_s"),
            eta_seconds=sync.get("eta_seconds"),
        )
    disk = raw.get("disk")
    role = raw.get("role")
    peer_role = raw.get("peer_role")
    return ReplicaStatus(
        node=node,
        role=role if role in ("Primary", "Secondary") else "Unknown",
        disk_state=disk if disk in _DISKS else "Unknown",
        connection=str(raw.get("connection") or "Unknown"),
        peer_role=peer_role if peer_role in ("Primary", "Secondary") else None,
        sync=progress,
        out_of_sync_bytes=int(raw.get("out_of_sync_bytes") or 0),
        split_brain=raw.get("connection") == "SplitBrain",
        last_error=error or raw.get("last_error") or None,
        observed_at=now,
    )


def same(a: ReplicaStatus, b: ReplicaStatus | None) -> bool:
    """Equal but for when it was observed: what decides whether to write again."""
    if b is None:
        return False
    return a.model_copy(update={"observed_at": None}) == b.model_copy(update={"observed_at": None})


def entry(stored: dict[str, Any] | None, node: str) -> ReplicaStatus | None:
    """This node's entry in the stored status, if any (an unreadable status counts as none)."""
    if not stored:
        return None
    try:
        status = ReplicatedVolumeStatus.model_validate(stored)
    except ValueError:
        return None
    return next((r for r in status.replicas if r.node == node), None)


def merge(stored: dict[str, Any] | None, mine: ReplicaStatus, order: list[str]) -> dict[str, Any]:
    """The stored status with this node's entry replaced; replicas in the spec's order."""
    try:
        status = ReplicatedVolumeStatus.model_validate(stored or {})
    except ValueError:
        status = ReplicatedVolumeStatus()
    others = [r for r in status.replicas if r.node != mine.node and r.node in order]
    replicas = sorted([*others, mine], key=lambda r: order.index(r.node))
    return status.model_copy(update={"replicas": replicas}).to_dict()
