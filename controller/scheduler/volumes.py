"""Where a group that uses a replicated volume may run: only where the volume's data is.

The goal is blockrepl's and DRBD's: never promote an Outdated or Inconsistent replica.
blockrepl refuses such a promotion on the node itself; this rule keeps the scheduler
from choosing that node in the first place, so that the group goes to the replica that
has the data, or waits saying why. The rule, and why each part is safe, is written down
in docs/safety.md ("Replicated volumes: which replica may be promoted").

Inputs are the last report of each replica (written by the node that runs it) and
blockrepl's outdate record. A report may be stale (its node is gone): it still counts, as
the last thing known of that replica. A replica's data changes only by a Primary's writes
or by a resync, and each of those shows in the *other* replica's report or in the outdate
record, which is why the rule always reads the peer's report too.
"""

from __future__ import annotations

from controller.scheduler.model import ReplicaReport, VolumeFacts

# A Primary connected to its peer writes to both disks; a SyncTarget Primary (promoted
# over an Inconsistent disk, by an operator) is the one behind, not ahead.
_WITH_PEER = ("Connected", "SyncTarget")


def peer_ahead(peer: ReplicaReport) -> str | None:
    """What in the peer's last report shows it holds writes this replica lacks, or None."""
    if peer.syncing == "SyncSource" or peer.connection == "SyncSource":
        return f"{peer.node} was resyncing it (SyncSource) at its last report"
    if peer.role == "Primary" and peer.connection not in _WITH_PEER:
        return (
            f"{peer.node} was Primary without it ({peer.connection}) at its last report, so "
            f"{peer.node} has writes it lacks"
        )
    return None


def data_verdict(volume: VolumeFacts, node: str, runs_here: bool) -> str | None:
    """None when ``node``'s replica of ``volume`` may be promoted (or stay Primary), else
    why not, in words that follow "no UpToDate replica of <volume>: "."""
    mine = volume.report(node)
    if runs_here and mine.role == "Primary":
        # Already promoted where the group runs: it is the writer, the newest data there
        # is. Moving the group would promote the other replica, which can only be older.
        return None
    if node in volume.outdated:
        return volume.outdated_note or "an outdate record names it"
    peer_name = volume.peer(node)
    peer = volume.report(peer_name) if peer_name else None
    if mine.split_brain or (peer is not None and peer.split_brain):
        return "split brain: both replicas changed apart; resolve it first (ha status says how)"
    if mine.syncing == "SyncTarget" or mine.connection == "SyncTarget":
        return "Inconsistent (resync as SyncTarget under way)"
    if mine.disk not in ("UpToDate", "Unknown"):
        return f"disk {mine.disk}" + (
            " (not known to be UpToDate)" if mine.disk == "Consistent" else ""
        )
    # UpToDate, or Unknown (not running, never reported): either is promotable only if
    # nothing the peer last said shows it went ahead since. A replica's own UpToDate is
    # its belief; a peer that kept writing without it (the outdate record failed) knows
    # better.
    if peer is not None and (ahead := peer_ahead(peer)) is not None:
        state = "" if mine.disk == "UpToDate" else "state unknown; "
        return f"{state}{ahead}"
    return None
