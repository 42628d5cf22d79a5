"""The events of a replica's changes, between its stored entry and the next one."""

from __future__ import annotations

from typing import Any

from controller.api.volume import ReplicaStatus, SyncProgress
from nodeagent.volumes.transitions import resync_ended, status_changes


def replica(**fields: Any) -> ReplicaStatus:
    base: dict[str, Any] = {
        "node": "n2",
        "role": "Secondary",
        "disk_state": "UpToDate",
        "connection": "Connected",
    }
    return ReplicaStatus(**{**base, **fields})


def not_answering(error: str = "replica not answering: refused") -> ReplicaStatus:
    return ReplicaStatus(node="n2", last_error=error)


def reasons(before: ReplicaStatus | None, after: ReplicaStatus) -> list[str]:
    return [c.reason for c in status_changes("pgdata", "n1", before, after)]


SYNC = SyncProgress(direction="SyncTarget", done_bytes=0, total_bytes=8 << 20, percent=0.0)


def test_nothing_changed_nothing_said() -> None:
    assert reasons(replica(), replica()) == []
    assert reasons(replica(out_of_sync_bytes=4096), replica(out_of_sync_bytes=8192)) == []
    assert reasons(not_answering(), not_answering("another reason")) == []


def test_the_first_look_says_only_a_split_brain() -> None:
    assert reasons(None, replica(connection="StandAlone")) == []
    assert reasons(None, replica(sync=SYNC, connection="SyncTarget")) == []
    assert reasons(None, replica(connection="SplitBrain", split_brain=True)) == ["SplitBrain"]


def test_the_link_going_down_and_up() -> None:
    down = status_changes("pgdata", "n1", replica(), replica(connection="Connecting"))
    assert [(c.reason, c.type) for c in down] == [("ReplicaDisconnected", "Warning")]
    assert "n1" in down[0].message and "Connected -> Connecting" in down[0].message
    assert reasons(replica(connection="Connecting"), replica()) == ["ReplicaConnected"]
    # Straight into a resync: connected, and the resync begins.
    assert reasons(
        replica(connection="Connecting", disk_state="Outdated"),
        replica(connection="SyncTarget", disk_state="Inconsistent", sync=SYNC),
    ) == ["ReplicaConnected", "ResyncStarted"]
    # A resync's states are linked states: Connected after it is no reconnection.
    assert reasons(replica(connection="SyncSource"), replica()) == []


def test_a_split_brain_is_said_once() -> None:
    split = replica(connection="SplitBrain", split_brain=True)
    changes = status_changes("pgdata", "n1", replica(), split)
    assert [c.reason for c in changes] == ["SplitBrain", "ReplicaDisconnected"]
    assert "blockrepl resolve" in changes[0].message
    assert reasons(split, split) == []


def test_a_replica_that_stops_answering_and_comes_back() -> None:
    gone = status_changes("pgdata", "n1", replica(), not_answering())
    assert [(c.reason, c.type) for c in gone] == [("ReplicaNotAnswering", "Warning")]
    assert "refused" in gone[0].message
    assert reasons(not_answering(), replica()) == ["ReplicaConnected"]
    assert reasons(not_answering(), replica(connection="Connecting")) == []


def test_a_detached_disk() -> None:
    detached = replica(disk_state="Diskless", last_error="EIO at sector 8")
    changes = status_changes("pgdata", "n1", replica(), detached)
    assert [c.reason for c in changes] == ["DiskDetached"]
    assert "EIO at sector 8" in changes[0].message
    assert reasons(detached, detached) == []


def test_a_resync_begun_says_which_way_and_how_much() -> None:
    started = status_changes(
        "pgdata", "n1", replica(connection="SyncTarget", disk_state="Inconsistent"),
        replica(connection="SyncTarget", disk_state="Inconsistent", sync=SYNC),
    )  # fmt: skip
    assert [c.reason for c in started] == ["ResyncStarted"]
    assert started[0].message == "pgdata: resync from n1 to this node, 8.0 MiB to copy"
    source = SyncProgress(direction="SyncSource", done_bytes=0, total_bytes=4096, percent=0.0)
    begun = status_changes("pgdata", "n1", replica(), replica(sync=source))
    assert begun[0].message == "pgdata: resync from this node to n1, 4.0 KiB to copy"


def test_a_resync_end_from_blockrepl_last_sync() -> None:
    done = resync_ended("pgdata", {"kind": "SyncTarget", "seconds": 2.5, "data_bytes": 8 << 20})
    assert (done.reason, done.type) == ("ResyncFinished", "Normal")
    assert done.message == "pgdata: resync done as SyncTarget in 2.5 s, 8.0 MiB of data sent"
    cut = resync_ended("pgdata", {"kind": "SyncSource", "started": 10.0, "interrupted": True})
    assert (cut.reason, cut.type) == ("ResyncInterrupted", "Warning")
