"""Between groups: dependsOn, colocate, antiColocate, and groups held for fencing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

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


def app(**changes: Any) -> Group:
    """An app that runs next to pg and needs it started first."""
    return replace(Group("app", depends_on=("pg",), colocate=("pg",), stickiness=100), **changes)


# --- dependsOn -----------------------------------------------------------------------------


def test_dependent_waits_for_an_unplaced_dependency() -> None:
    groups = [pg(enabled=False), Group("report", depends_on=("pg",))]
    result = schedule(groups, cluster(*PG_NODES), now=NOW)
    assert result["report"].runs_on is None
    assert result["report"].reason == "not placed: depends on pg, which is not placed"


def test_dependency_may_run_on_another_node() -> None:
    groups = [pg(), Group("report", depends_on=("pg",), nodes=(("host-s", 10),))]
    result = schedule(groups, cluster(*PG_NODES), now=NOW)
    assert where(result) == {"pg": "host-m", "report": "host-s"}


def test_missing_dependency_is_named() -> None:
    result = schedule([Group("report", depends_on=("ghost",))], cluster(*PG_NODES), now=NOW)
    assert result["report"].reason == "not placed: depends on ghost, which does not exist"


# --- colocate ------------------------------------------------------------------------------


def test_colocated_group_follows_its_target() -> None:
    result = schedule(
        [pg(), app()], cluster(*PG_NODES, dead=("host-m",)), current={"pg": "host-m"}, now=NOW
    )
    assert where(result) == {"pg": "host-s", "app": "host-s"}
    assert (
        result["pg"].reason
        == "moved to host-s: host-m is lost (no majority hears it); colocated with app"
    )
    assert result["app"].reason == "placed on host-s (only eligible node; colocated with pg)"


def test_combined_scores_decide_the_node_of_a_colocated_set() -> None:
    # pg alone prefers host-m (100 vs 50), but app wants host-s strongly: 50+200 > 100+0.
    groups = [pg(), app(nodes=(("host-s", 200),))]
    result = schedule(groups, cluster(*PG_NODES), now=NOW)
    assert where(result) == {"pg": "host-s", "app": "host-s"}
    assert result["pg"].reason == (
        "placed on host-s (combined score 250 beats host-m combined score 100; colocated with app)"
    )


def test_a_banned_follower_moves_the_whole_set_for_availability() -> None:
    failures = [Failure("app", "host-m", 3, NOW)]
    result = schedule(
        [pg(), app()],
        cluster(*PG_NODES),
        failures=failures,
        current={"pg": "host-m", "app": "host-m"},
        now=NOW,
    )
    assert where(result) == {"pg": "host-s", "app": "host-s"}
    assert result["pg"].reason == (
        "moved to host-s: 2 colocated groups can run on host-s, only 1 on host-m;"
        " colocated with app"
    )
    assert result["app"].reason == (
        "moved to host-s: app failed 3 times on host-m (migration threshold 3); colocated with pg"
    )


def test_colocated_group_cannot_run_without_its_target() -> None:
    groups = [pg(enabled=False), app()]
    result = schedule(groups, cluster(*PG_NODES), now=NOW)
    assert result["app"].runs_on is None
    assert result["app"].reason == "not placed: depends on pg, which is not placed"
    only_colocated = schedule([pg(enabled=False), app(depends_on=())], cluster(*PG_NODES), now=NOW)
    assert only_colocated["app"].reason == "not placed: colocated with pg, which is not placed"


def test_follower_that_cannot_join_its_target_is_not_placed() -> None:
    # app may only run on host-s, pg is pinned to host-m by an operator's move.
    groups = [
        pg(move_to=Move("host-m")),
        app(depends_on=(), nodes=(("host-s", 0),), restricted=True),
    ]
    result = schedule(groups, cluster(*PG_NODES), now=NOW)
    assert where(result) == {"pg": "host-m", "app": None}
    assert result["app"].reason == (
        "not placed: must run with pg (colocated) on host-m, which is"
        " not in placement.nodes (restricted) for it"
    )


def test_move_of_a_follower_moves_the_set() -> None:
    groups = [pg(), app(move_to=Move("host-s", until=NOW + 10))]
    result = schedule(
        groups, cluster(*PG_NODES), current={"pg": "host-m", "app": "host-m"}, now=NOW
    )
    assert where(result) == {"pg": "host-s", "app": "host-s"}
    assert result["app"].reason == "moved to host-s: ha move to host-s; colocated with pg"


def test_mutual_colocation_is_allowed() -> None:
    groups = [web("a", colocate=("b",)), web("b", colocate=("a",), nodes=(("web-b", 5),))]
    result = schedule(groups, cluster(*WEB_NODES), now=NOW)
    assert where(result) == {"a": "web-b", "b": "web-b"}


# --- antiColocate --------------------------------------------------------------------------


def test_anti_colocated_groups_spread_even_against_scores() -> None:
    groups = [
        web("site-1", nodes=(("web-a", 100),), anti_colocate=("site-2",)),
        web("site-2", nodes=(("web-a", 100),)),
    ]
    result = schedule(groups, cluster(*WEB_NODES), now=NOW)
    assert result["site-1"].runs_on == "web-a"
    assert result["site-2"].runs_on in {"web-b", "web-c"}
    assert result["site-2"].reason == ("placed on web-b (web-a already runs anti-colocated site-1)")


def test_anti_colocation_moves_a_sticky_group_when_a_node_returns() -> None:
    groups = [
        web("site-1", anti_colocate=("site-2",), stickiness=100),
        web("site-2", stickiness=100),
    ]
    shared = {"site-1": "web-a", "site-2": "web-a"}
    result = schedule(groups, cluster("web-a", "web-b"), current=shared, now=NOW)
    assert where(result) == {"site-1": "web-a", "site-2": "web-b"}
    assert result["site-2"].reason == "moved to web-b: web-a already runs anti-colocated site-1"


def test_availability_wins_when_nodes_run_out() -> None:
    groups = [web("site-1", anti_colocate=("site-2",)), web("site-2")]
    result = schedule(groups, cluster(*WEB_NODES, dead=("web-b", "web-c")), now=NOW)
    assert where(result) == {"site-1": "web-a", "site-2": "web-a"}
    assert result["site-2"].reason == (
        "placed on web-a (only eligible node; shares web-a with anti-colocated site-1:"
        " no other eligible node)"
    )


def test_look_ahead_leaves_the_only_node_to_the_constrained_group() -> None:
    # site-1 sorts first and likes web-a best, but site-2 can only run on web-a.
    groups = [
        web(
            "site-1",
            nodes=(("web-a", 10), ("web-b", 5)),
            restricted=True,
            anti_colocate=("site-2",),
        ),
        web("site-2", nodes=(("web-a", 0),), restricted=True),
    ]
    result = schedule(groups, cluster(*WEB_NODES), now=NOW)
    assert where(result) == {"site-1": "web-b", "site-2": "web-a"}
    assert result["site-1"].reason == (
        "placed on web-b (web-a is the last free node for anti-colocated site-2)"
    )


# --- fencing -------------------------------------------------------------------------------


def test_group_on_an_unfenced_lost_node_waits() -> None:
    result = schedule(
        [pg()], cluster(*PG_NODES, fencing=("host-m",)), current={"pg": "host-m"}, now=NOW
    )
    assert result["pg"].status is DecisionStatus.AWAITING_FENCING
    assert result["pg"].node == "host-m"
    assert result["pg"].runs_on is None
    assert result["pg"].reason == "not moved: waiting until host-m is declared lost"


def test_after_fencing_the_group_fails_over() -> None:
    result = schedule(
        [pg()], cluster(*PG_NODES, dead=("host-m",)), current={"pg": "host-m"}, now=NOW
    )
    assert result["pg"].runs_on == "host-s"


def test_colocated_partner_and_dependents_wait_with_it() -> None:
    groups = [pg(), app(), Group("report", depends_on=("pg",))]
    current = {"pg": "host-m", "app": None, "report": "host-s"}
    result = schedule(groups, cluster(*PG_NODES, fencing=("host-m",)), current=current, now=NOW)
    assert result["pg"].status is DecisionStatus.AWAITING_FENCING
    assert where(result) == {"pg": None, "app": None, "report": None}
    assert result["app"].reason == (
        "not placed: colocated with pg, which waits until host-m is declared lost"
    )
    assert result["report"].reason == (
        "not placed: depends on pg, which waits until host-m is declared lost"
    )


def test_other_groups_still_avoid_the_lost_node() -> None:
    groups = [pg(), pg(name="pg2")]
    current = {"pg": "host-m", "pg2": "host-s"}
    result = schedule(groups, cluster(*PG_NODES, fencing=("host-m",)), current=current, now=NOW)
    assert result["pg2"].runs_on == "host-s"


def test_missing_colocation_target_is_named() -> None:
    result = schedule([Group("app", colocate=("ghost",))], cluster(*PG_NODES), now=NOW)
    assert result["app"].reason == "not placed: colocated with ghost, which does not exist"


def test_anti_colocation_with_an_unknown_or_disabled_group_is_harmless() -> None:
    groups = [web("site-1", anti_colocate=("ghost", "site-2")), web("site-2", enabled=False)]
    result = schedule(groups, cluster("web-a"), now=NOW)
    assert result["site-1"].reason == "placed on web-a (only eligible node)"
