"""Eligibility verdicts and failure counting (scoring.py)."""

from __future__ import annotations

from controller.scheduler.model import Failure, NodeState
from controller.scheduler.scoring import Why, describe_ineligible, failure_counts, verdict
from tests.unit.controller.scheduler.clusters import NOW, PG_NODES, cluster, pg


def by_name(states: list[NodeState]) -> dict[str, NodeState]:
    return {s.name: s for s in states}


def test_the_first_reason_wins_in_a_fixed_order() -> None:
    group = pg()
    nodes = by_name(cluster(*PG_NODES, "other", standby=("host-s",), fencing=("host-m",)))
    assert verdict(group, "nowhere", nodes, {}).why is Why.NOT_MEMBER  # type: ignore[union-attr]
    assert verdict(group, "host-m", nodes, {}).why is Why.FENCING  # type: ignore[union-attr]
    assert verdict(group, "host-s", nodes, {}).why is Why.STANDBY  # type: ignore[union-attr]
    assert verdict(group, "other", nodes, {}).why is Why.EXCLUDED  # type: ignore[union-attr]
    alive = by_name(cluster(*PG_NODES))
    assert verdict(group, "host-m", alive, {}) is None
    banned = verdict(group, "host-m", alive, {("pg", "host-m"): 3})
    assert banned is not None and banned.sentence("pg") == (
        "pg failed 3 times on host-m (migration threshold 3)"
    )


def test_failures_expire_whole_after_the_timeout_and_add_up_otherwise() -> None:
    groups = {"pg": pg(failure_timeout=600.0)}
    failures = [
        Failure("pg", "host-m", 2, NOW - 60),
        Failure("pg", "host-m", 1, NOW - 30),
        Failure("pg", "host-s", 5, NOW - 600),  # exactly the timeout: forgotten
        Failure("gone", "host-m", 9, NOW),  # no such group
    ]
    assert failure_counts(failures, groups, NOW) == {("pg", "host-m"): 3}
    never = {"pg": pg(failure_timeout=None)}
    assert failure_counts(failures, never, NOW + 10**6)[("pg", "host-s")] == 5


def test_ineligible_nodes_are_listed_by_name() -> None:
    nodes = by_name(cluster(*PG_NODES, dead=("host-s",), standby=("host-m",)))
    found = [verdict(pg(), n, nodes, {}) for n in PG_NODES]
    assert describe_ineligible(v for v in found if v) == "host-m: standby; host-s: lost"
