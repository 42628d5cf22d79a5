"""What changed in a replica worth an event: its link to the peer, a split brain, a
detached disk, a replica that stopped answering, a resync begun or ended. Pure.

Most are read between this node's stored status entry and the one about to be written,
so that the events go into the same transaction as the entry: a write that conflicts is
redone from the stored entry, and its events with it, neither lost nor doubled. A resync
can begin and end between two looks; its end is read from the replica's `last_sync`,
which changes once per resync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from controller.api.volume import ReplicaStatus
from controller.status.volume_text import human_bytes

# Connection states in which the replication link is up (DRBD's Connected and resyncs).
LINKED = frozenset({"Connected", "SyncSource", "SyncTarget"})


@dataclass(frozen=True)
class Change:
    reason: str
    type: Literal["Normal", "Warning"]
    message: str


def answering(entry: ReplicaStatus) -> bool:
    """A replica that answered reports its connection; one that did not is Unknown."""
    return entry.connection != "Unknown"


def status_changes(
    volume: str, peer: str | None, before: ReplicaStatus | None, after: ReplicaStatus
) -> list[Change]:
    """The events between this node's stored entry (`before`, None if it never wrote
    one) and the entry it is about to write."""
    out: list[Change] = []
    if after.split_brain and not (before is not None and before.split_brain):
        out.append(
            Change(
                "SplitBrain",
                "Warning",
                f"{volume}: split brain with {peer or 'the peer'}: both sides changed the data "
                "apart; nothing is resynced until one side is resolved (ha status names the "
                "blockrepl resolve commands)",
            )
        )
    if before is None:
        return out  # the first entry: nothing to compare with (an agent's first look)
    if answering(before) and not answering(after):
        out.append(
            Change(
                "ReplicaNotAnswering",
                "Warning",
                f"{volume}: the replica does not answer: {after.last_error or 'no reason given'}",
            )
        )
        return out
    if not answering(after):
        return out
    was_linked = answering(before) and before.connection in LINKED
    if after.connection in LINKED and not was_linked:
        out.append(
            Change(
                "ReplicaConnected",
                "Normal",
                f"{volume}: replication link to {peer or 'the peer'} up ({after.connection})",
            )
        )
    elif was_linked and after.connection not in LINKED:
        out.append(
            Change(
                "ReplicaDisconnected",
                "Warning",
                f"{volume}: replication link to {peer or 'the peer'} down "
                f"({before.connection} -> {after.connection})",
            )
        )
    if after.disk_state == "Diskless" and before.disk_state != "Diskless":
        why = f": {after.last_error}" if after.last_error else ""
        out.append(
            Change(
                "DiskDetached",
                "Warning",
                f"{volume}: the replica's disk is detached (Diskless; I/O goes to the peer){why}",
            )
        )
    if after.sync is not None and (before.sync is None or not answering(before)):
        source, target = (
            ("this node", peer) if after.sync.direction == "SyncSource" else (peer, "this node")
        )
        out.append(
            Change(
                "ResyncStarted",
                "Normal",
                f"{volume}: resync from {source or 'the peer'} to {target or 'the peer'}, "
                f"{human_bytes(after.sync.total_bytes)} to copy",
            )
        )
    return out


def resync_ended(volume: str, last_sync: dict[str, Any]) -> Change:
    """The event of a resync's end, from the replica's `last_sync` (blockrepl's record of
    its latest resync)."""
    kind = last_sync.get("kind") or "resync"
    seconds = last_sync.get("seconds")
    took = f" in {seconds:g} s" if isinstance(seconds, int | float) else ""
    moved = last_sync.get("data_bytes", last_sync.get("payload_bytes"))
    amount = f", {human_bytes(moved)} of data sent" if isinstance(moved, int) else ""
    if last_sync.get("interrupted"):
        cut = f"{volume}: the resync ({kind}) was cut off; it resumes on reconnect"
        return Change("ResyncInterrupted", "Warning", cut)
    return Change("ResyncFinished", "Normal", f"{volume}: resync done as {kind}{took}{amount}")
