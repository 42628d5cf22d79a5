"""A replica's status entry: from blockrepl's words, merged beside its peer's entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.api.volume import ReplicatedVolumeStatus
from nodeagent.volumes.status import entry, merge, replica_status, same

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SYNCING = {
    "role": "Primary",
    "connection": "SyncSource",
    "disk": "UpToDate",
    "peer_role": "Secondary",
    "sync": {
        "kind": "SyncSource",
        "total_bytes": 4 << 20,
        "done_bytes": 1 << 20,
        "percent": 25,
        "rate_bytes_per_s": 1 << 20,
        "eta_seconds": 3.0,
    },
    "out_of_sync_bytes": 3 << 20,
    "last_error": None,
}


def test_a_resync_is_reported_with_progress_rate_and_eta() -> None:
    mine = replica_status("n1", SYNCING, None, NOW)
    assert (mine.role, mine.disk_state, mine.connection, mine.peer_role) == (
        "Primary",
        "UpToDate",
        "SyncSource",
        "Secondary",
    )
    assert mine.sync is not None and mine.sync.direction == "SyncSource"
    assert (mine.sync.percent, mine.sync.rate, mine.sync.eta_seconds) == (25.0, 1 << 20, 3.0)
    assert mine.out_of_sync_bytes == 3 << 20 and not mine.split_brain


def test_a_split_brain_is_named_as_such() -> None:
    raw = {"role": "Primary", "connection": "SplitBrain", "disk": "UpToDate", "sync": None}
    assert replica_status("n1", raw, None, NOW).split_brain


def test_a_replica_that_does_not_answer_is_unknown_with_the_reason() -> None:
    mine = replica_status("n2", None, "blockrepl serve ended (exit status 1): no metadata", NOW)
    assert (mine.role, mine.disk_state, mine.connection) == ("Unknown", "Unknown", "Unknown")
    assert mine.last_error is not None and "no metadata" in mine.last_error


def test_each_node_replaces_only_its_own_entry_in_spec_order() -> None:
    peer = replica_status("n2", {"role": "Secondary", "disk": "UpToDate"}, None, NOW)
    stored = ReplicatedVolumeStatus(replicas=[peer]).to_dict()
    mine = replica_status("n1", SYNCING, None, NOW)
    merged = ReplicatedVolumeStatus.model_validate(merge(stored, mine, ["n1", "n2"]))
    assert [r.node for r in merged.replicas] == ["n1", "n2"]
    assert merged.replicas[1] == peer
    # A node no longer in the spec drops out.
    merged = ReplicatedVolumeStatus.model_validate(merge(stored, mine, ["n1", "n3"]))
    assert [r.node for r in merged.replicas] == ["n1"]


def test_only_a_change_other_than_the_time_calls_for_a_write() -> None:
    a = replica_status("n1", SYNCING, None, NOW)
    stored = ReplicatedVolumeStatus(replicas=[a]).to_dict()
    later = replica_status("n1", SYNCING, None, NOW + timedelta(seconds=5))
    assert same(later, entry(stored, "n1"))
    moved = replica_status("n1", {**SYNCING, "out_of_sync_bytes": 0}, None, NOW)
    assert not same(moved, entry(stored, "n1"))
    assert entry(stored, "n2") is None and not same(a, None)
