"""The store's typed records read what they write, and what older or newer agents wrote."""

from __future__ import annotations

from controller.store.records import (
    FailureRecord,
    LeaderRecord,
    NodeRecord,
    PeerView,
    PlacementRecord,
)


def test_every_record_round_trips() -> None:
    placement = PlacementRecord(
        "pg", "host-s", 5, "recovered", None, "host-m", "host-s", "t", "inc-s", "inc-m"
    )
    assert PlacementRecord.from_dict(placement.to_dict()) == placement
    failure = FailureRecord("pg", "host-m", 2, 1_800_000_000.5, "probe failed")
    assert FailureRecord.from_dict(failure.to_dict()) == failure
    node = NodeRecord(
        "n1", 42, "0.1.0", "00ab", "2026-12-04T00:00:00+00:00", True,
        {"n2": PeerView("up", {"cluster": "up", "udp0-eth1": "down"})},
    )  # fmt: skip
    assert NodeRecord.from_dict(node.to_dict()) == node
    leader = LeaderRecord("n1", 7587, 42, "2026-12-04T00:00:00+00:00")
    assert LeaderRecord.from_dict(leader.to_dict()) == leader


def test_missing_and_unknown_fields_do_not_break_a_reader() -> None:
    node = NodeRecord.from_dict({"node": "n1", "peers": {"n2": {"state": "bogus"}}, "new": 1})
    assert node.pid == 0 and not node.serving
    assert node.peers["n2"] == PeerView("unknown", {})
    assert LeaderRecord.from_dict({"node": "n2", "lease": 9}) == LeaderRecord("n2", 9)
    placement = PlacementRecord.from_dict({"group": "pg", "node": None})
    assert (placement.node, placement.epoch, placement.recovered_from) == (None, 0, None)
