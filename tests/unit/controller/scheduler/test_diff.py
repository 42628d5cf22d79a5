"""The dry-run plan: start, stop and move, stops first, in dependency order."""

from __future__ import annotations

from controller.scheduler import (
    Decision,
    DecisionStatus,
    Group,
    PlacementChangeKind,
    diff_placements,
    schedule,
    start_order,
)
from tests.unit.controller.scheduler.clusters import NOW, PG_NODES, cluster, pg


def test_failover_plan() -> None:
    groups = [pg(), Group("app", depends_on=("pg",), colocate=("pg",)), Group("old-app")]
    current = {"pg": "host-m", "app": "host-m", "old-app": "host-s", "deleted": "host-s"}
    new = schedule(
        [*groups[:2], Group("old-app", enabled=False)],
        cluster(*PG_NODES, dead=("host-m",)),
        current=current,
        now=NOW,
    )
    changes = diff_placements(current, new, start_order(groups))
    assert [(c.kind, c.group, c.from_node, c.to_node) for c in changes] == [
        (PlacementChangeKind.STOP, "deleted", "host-s", None),
        (PlacementChangeKind.STOP, "old-app", "host-s", None),
        (PlacementChangeKind.MOVE, "pg", "host-m", "host-s"),
        (PlacementChangeKind.MOVE, "app", "host-m", "host-s"),
    ]
    assert str(changes[2]) == (
        "move pg host-m -> host-s: moved to host-s: host-m is lost (no majority hears it); "
        "colocated with app"
    )
    assert str(changes[1]) == "stop old-app on host-s: not placed: disabled"
    assert str(changes[0]) == "stop deleted on host-s: the group no longer exists"


def test_start_and_no_change() -> None:
    current = {"pg": None}
    new = schedule([pg()], cluster(*PG_NODES), current=current, now=NOW)
    (change,) = diff_placements(current, new)
    assert change.kind is PlacementChangeKind.START
    assert str(change) == "start pg on host-m: placed on host-m (score 100 beats host-s score 50)"
    assert diff_placements(new, new) == []


def test_group_awaiting_fencing_changes_nothing() -> None:
    waiting = Decision("pg", "host-m", DecisionStatus.AWAITING_FENCING, "not moved: waiting")
    assert diff_placements({"pg": "host-m"}, {"pg": waiting}) == []


def test_recovery_after_fencing_is_a_move() -> None:
    held = schedule(
        [pg()], cluster(*PG_NODES, fencing=("host-m",)), current={"pg": "host-m"}, now=NOW
    )
    fenced = schedule(
        [pg()], cluster(*PG_NODES, dead=("host-m",)), current={"pg": "host-m"}, now=NOW
    )
    (change,) = diff_placements(held, fenced)
    assert (change.kind, change.from_node, change.to_node) == (
        PlacementChangeKind.MOVE,
        "host-m",
        "host-s",
    )
