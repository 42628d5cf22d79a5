"""Candidates for a colocation set and how they rank (candidates.py)."""

from __future__ import annotations

from controller.scheduler.candidates import candidate, runnable
from controller.scheduler.model import Decision, DecisionStatus
from controller.scheduler.snapshot import build
from tests.unit.controller.scheduler.clusters import NOW, PG_NODES, cand, cluster, pg, web


def test_rank_orders_by_the_documented_rules() -> None:
    # Each earlier rule beats every later one.
    assert cand("z", conflicts=()).rank() < cand("a", conflicts=("x",), base=999).rank()
    assert cand("z", moves=("g",)).rank() < cand("a", base=999).rank()
    assert cand("z", base=10).rank() < cand("a", base=5, here=1).rank()
    assert cand("z", here=1).rank() < cand("a", load=0).rank()
    assert cand("z", load=0).rank() < cand("a", load=1).rank()
    assert cand("a").rank() < cand("b").rank()


def test_stickiness_counts_where_the_group_runs_now() -> None:
    snap = build([pg()], cluster(*PG_NODES), [], {"pg": "host-s"}, NOW)
    on_s = candidate(snap, ["pg"], "host-s", {}, {})
    on_m = candidate(snap, ["pg"], "host-m", {}, {})
    assert on_s is not None and on_m is not None
    assert (on_s.score, on_s.here, on_m.score) == (150, 1, 100)


def test_a_member_runs_only_where_its_dependency_is_placed() -> None:
    snap = build([web("app", depends_on=("db",)), web("db")], cluster("n1"), [], {}, NOW)
    assert runnable(snap, ["app"], "n1", {}) == ()
    placed = {"db": Decision("db", "n1", DecisionStatus.PLACED, "x")}
    assert runnable(snap, ["app"], "n1", placed) == ("app",)
