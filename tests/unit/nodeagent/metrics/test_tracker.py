"""Placement and leader changes counted from the informer's copy; a failover timed from
this node first seeing the old node lost to the group started here."""

from __future__ import annotations

from nodeagent.metrics.instruments import (
    ACTION_FAILURES,
    FAILOVER_DURATION,
    LEADER_CHANGES,
    PLACEMENT_CHANGES,
    action_failed,
)
from nodeagent.metrics.tracker import ChangeTracker
from tests.unit.nodeagent.metrics.helpers import Copy, link, membership, peer


def placement(group: str, node: str | None, epoch: int, recovered: str | None = None) -> dict:  # type: ignore[type-arg]
    data = {"group": group, "node": node, "epoch": epoch, "reason": "r", "leader": "n1"}
    if recovered:
        data["recoveredFrom"] = recovered
    return data


def value(metric: object, suffix: str = "_total", **labels: str) -> float:
    for family in metric.collect():  # type: ignore[attr-defined]
        for s in family.samples:
            if s.name.endswith(suffix) and s.labels == labels:
                return float(s.value)
    return 0.0


def test_placement_and_leader_changes_are_counted_not_first_sights() -> None:
    copy, (lk, _peer_end) = Copy(), link()
    tracker = ChangeTracker("n2", copy.informer, lk)
    before = value(PLACEMENT_CHANGES, group="g-count")
    leaders = value(LEADER_CHANGES)
    copy.set("placement/g-count", placement("g-count", "n1", 1))
    copy.set("leader", {"node": "n1", "lease": 7})
    tracker.store_changed()
    assert value(PLACEMENT_CHANGES, group="g-count") == before
    assert series(PLACEMENT_CHANGES, "g-count")  # exported at 0 from the first sight
    assert value(LEADER_CHANGES) == leaders
    copy.set("placement/g-count", placement("g-count", "n2", 2))
    copy.set("leader", {"node": "n1", "lease": 9})  # the same node, elected again
    tracker.store_changed()
    tracker.store_changed()  # no change since: nothing more
    assert value(PLACEMENT_CHANGES, group="g-count") == before + 1
    assert value(LEADER_CHANGES) == leaders + 1
    copy.set("placement/g-count", placement("g-count", "n2", 3))  # epoch only
    tracker.store_changed()
    assert value(PLACEMENT_CHANGES, group="g-count") == before + 1
    # Deleted: its series go.
    action_failed("g-count", "ip", "start")
    copy.set("placement/g-count", None)
    tracker.store_changed()
    assert not series(PLACEMENT_CHANGES, "g-count") and not series(ACTION_FAILURES, "g-count")


def series(metric: object, group: str) -> list[object]:
    return [
        s
        for family in metric.collect()  # type: ignore[attr-defined]
        for s in family.samples
        if s.labels.get("group") == group
    ]


def test_a_failover_is_timed_once_from_the_loss_seen_here() -> None:
    copy, (lk, _peer_end) = Copy(), link()
    now = [100.0]
    tracker = ChangeTracker("n2", copy.informer, lk, clock=lambda: now[0])
    tracker.start()
    count = value(FAILOVER_DURATION, "_count")
    total = value(FAILOVER_DURATION, "_sum")
    lk.state = membership({"n1": peer("dead", lost=True), "n3": peer()})
    tracker.peers_changed()
    assert tracker.lost_at == {"n1": 100.0}
    now[0] = 104.5
    copy.set("placement/g-fo", placement("g-fo", "n2", 4, recovered="n1"))
    tracker.group_started("g-fo")
    tracker.group_started("g-fo")  # a restart of the same placement is not a failover
    assert value(FAILOVER_DURATION, "_count") == count + 1
    assert value(FAILOVER_DURATION, "_sum") == total + 4.5
    # A group started without a lost node behind it, or placed elsewhere: not timed.
    copy.set("placement/g-move", placement("g-move", "n2", 1))
    copy.set("placement/g-else", placement("g-else", "n3", 5, recovered="n1"))
    tracker.group_started("g-move")
    tracker.group_started("g-else")
    assert value(FAILOVER_DURATION, "_count") == count + 1
    # Heard again: its loss is forgotten.
    lk.state = membership({"n1": peer(), "n3": peer()})
    tracker.peers_changed()
    assert tracker.lost_at == {}
    tracker.stop()
