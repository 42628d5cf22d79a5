"""Single-group placement: scores, stickiness, fail-back, liveness, standby, bans, moves."""

from __future__ import annotations

from controller.scheduler import DecisionStatus, Failure, Group, Move, schedule
from tests.unit.controller.scheduler.clusters import (
    NOW,
    PG_NODES,
    WEB_NODES,
    cluster,
    pg,
    web,
    where,
)


def test_fresh_start_goes_to_the_highest_score() -> None:
    result = schedule([pg()], cluster(*PG_NODES), now=NOW)
    assert result["pg"].runs_on == "host-m"
    assert result["pg"].reason == "placed on host-m (score 100 beats host-s score 50)"


def test_failover_when_the_node_dies() -> None:
    result = schedule(
        [pg()], cluster(*PG_NODES, dead=("host-m",)), current={"pg": "host-m"}, now=NOW
    )
    assert result["pg"].runs_on == "host-s"
    assert result["pg"].reason == "moved to host-s: host-m is lost (no majority hears it)"


def test_stickiness_keeps_the_group_after_the_preferred_node_returns() -> None:
    result = schedule([pg()], cluster(*PG_NODES), current={"pg": "host-s"}, now=NOW)
    assert result["pg"].runs_on == "host-s"
    assert result["pg"].reason == (
        "stays on host-s (score 50 + stickiness 100 = 150 beats host-m score 100)"
    )


def test_stickiness_zero_fails_back_to_the_best_node() -> None:
    result = schedule([pg(stickiness=0)], cluster(*PG_NODES), current={"pg": "host-s"}, now=NOW)
    assert result["pg"].runs_on == "host-m"
    assert result["pg"].reason == (
        "moved to host-m: score 100 beats host-s score 50 (stickiness 0: fail back)"
    )


def test_small_stickiness_is_only_a_bonus() -> None:
    # 50 + 30 = 80 < 100: like Pacemaker's resource-stickiness, a bonus, not a pin.
    result = schedule([pg(stickiness=30)], cluster(*PG_NODES), current={"pg": "host-s"}, now=NOW)
    assert result["pg"].runs_on == "host-m"
    assert "score 100 beats host-s score 50 + stickiness 30 = 80" in result["pg"].reason


def test_standby_drains_the_node() -> None:
    result = schedule(
        [pg()], cluster(*PG_NODES, standby=("host-m",)), current={"pg": "host-m"}, now=NOW
    )
    assert result["pg"].runs_on == "host-s"
    assert result["pg"].reason == "moved to host-s: host-m is in standby"


def test_restricted_group_never_runs_on_an_unlisted_node() -> None:
    nodes = cluster("host-m", "host-s", "host-w", dead=("host-m", "host-s"))
    result = schedule([pg()], nodes, now=NOW)
    assert result["pg"].runs_on is None
    assert result["pg"].status is DecisionStatus.UNPLACED
    assert result["pg"].reason == (
        "not placed: no eligible node (host-m: lost; host-s: lost;"
        " host-w: not in placement.nodes (restricted))"
    )


def test_unrestricted_group_may_use_an_unlisted_node_at_score_zero() -> None:
    nodes = cluster("host-m", "host-s", "host-w", dead=("host-m", "host-s"))
    result = schedule([pg(restricted=False)], nodes, now=NOW)
    assert result["pg"].runs_on == "host-w"
    assert result["pg"].reason == "placed on host-w (only eligible node)"


def test_migration_threshold_bans_the_node() -> None:
    failures = [Failure("pg", "host-m", 3, NOW - 5)]
    result = schedule(
        [pg()], cluster(*PG_NODES), failures=failures, current={"pg": "host-m"}, now=NOW
    )
    assert result["pg"].runs_on == "host-s"
    assert result["pg"].reason == (
        "moved to host-s: pg failed 3 times on host-m (migration threshold 3)"
    )


def test_failures_below_the_threshold_do_not_move_the_group() -> None:
    failures = [Failure("pg", "host-m", 1, NOW - 5), Failure("pg", "host-m", 1, NOW - 1)]
    result = schedule(
        [pg()], cluster(*PG_NODES), failures=failures, current={"pg": "host-m"}, now=NOW
    )
    assert result["pg"].runs_on == "host-m"


def test_failures_expire_after_the_failure_timeout() -> None:
    failures = [Failure("pg", "host-m", 3, NOW - 601)]
    expired = schedule([pg(failure_timeout=600.0)], cluster(*PG_NODES), failures=failures, now=NOW)
    assert expired["pg"].runs_on == "host-m"
    forever = schedule([pg(failure_timeout=None)], cluster(*PG_NODES), failures=failures, now=NOW)
    assert forever["pg"].runs_on == "host-s"


def test_banned_everywhere_reports_every_node() -> None:
    failures = [Failure("pg", "host-s", 3, NOW)]
    result = schedule([pg()], cluster(*PG_NODES, standby=("host-m",)), failures=failures, now=NOW)
    assert result["pg"].runs_on is None
    assert result["pg"].reason == (
        "not placed: no eligible node (host-m: standby;"
        " host-s: failed 3 times, migration threshold 3)"
    )


def test_disabled_group_is_placed_nowhere() -> None:
    result = schedule([pg(enabled=False)], cluster(*PG_NODES), current={"pg": "host-m"}, now=NOW)
    assert result["pg"].runs_on is None
    assert result["pg"].reason == "not placed: disabled"


def test_move_beats_scores_and_stickiness_until_it_expires() -> None:
    moved = pg(move_to=Move("host-s", until=NOW + 60))
    during = schedule([moved], cluster(*PG_NODES), current={"pg": "host-m"}, now=NOW)
    assert during["pg"].runs_on == "host-s"
    assert during["pg"].reason == "moved to host-s: ha move to host-s"
    after = schedule([moved], cluster(*PG_NODES), current={"pg": "host-s"}, now=NOW + 60)
    # Expired: no orphaned constraint, ordinary rules apply (stickiness keeps it on host-s).
    assert after["pg"].runs_on == "host-s"
    assert "ha move" not in after["pg"].reason
    back = schedule([pg(stickiness=0, move_to=moved.move_to)], cluster(*PG_NODES), now=NOW + 61)
    assert back["pg"].runs_on == "host-m"


def test_move_to_an_ineligible_node_is_ignored_with_a_reason() -> None:
    moved = pg(move_to=Move("host-s"))
    result = schedule(
        [moved], cluster(*PG_NODES, dead=("host-s",)), current={"pg": "host-m"}, now=NOW
    )
    assert result["pg"].runs_on == "host-m"
    assert result["pg"].reason == (
        "stays on host-m (only eligible node; ha move to host-s ignored: host-s is lost "
        "(no majority hears it))"
    )


def test_current_node_removed_from_the_cluster() -> None:
    result = schedule([pg()], cluster(*PG_NODES), current={"pg": "host-x"}, now=NOW)
    assert result["pg"].runs_on == "host-m"
    assert result["pg"].reason == "moved to host-m: host-x is not a cluster member"


def test_equal_scores_spread_groups_over_nodes() -> None:
    groups = [web(f"site-{i}") for i in range(6)]
    result = schedule(groups, cluster(*WEB_NODES), now=NOW)
    counts = {node: list(where(result).values()).count(node) for node in WEB_NODES}
    assert counts == {"web-a": 2, "web-b": 2, "web-c": 2}
    assert result["site-0"].reason == (
        "placed on web-a (ties web-b at score 0 and 0 groups each; first by name)"
    )
    assert result["site-2"].reason == (
        "placed on web-c (ties web-a at score 0; fewer groups there (0 vs 1))"
    )
    assert result["site-3"].reason == (
        "placed on web-a (ties web-b at score 0 and 1 group each; first by name)"
    )


def test_a_tie_keeps_the_group_where_it_runs() -> None:
    groups = [web("site-0"), web("site-1")]
    result = schedule(
        groups, cluster(*WEB_NODES), current={"site-0": "web-c", "site-1": "web-c"}, now=NOW
    )
    assert where(result) == {"site-0": "web-c", "site-1": "web-c"}
    assert result["site-0"].reason.startswith("stays on web-c (already there")


def test_unknown_failure_records_are_ignored() -> None:
    failures = [Failure("gone", "host-m", 10, NOW), Failure("pg", "host-x", 10, NOW)]
    result = schedule([pg()], cluster(*PG_NODES), failures=failures, now=NOW)
    assert result["pg"].runs_on == "host-m"


def test_empty_cluster() -> None:
    result = schedule([Group("pg")], [], now=NOW)
    assert result["pg"].reason == "not placed: the cluster has no nodes"
