"""Start/stop order from dependsOn, and the cycle errors."""

from __future__ import annotations

import pytest

from controller.scheduler import DependencyCycleError, Group, schedule, start_order, stop_order
from controller.scheduler.order import topological
from tests.unit.controller.scheduler.clusters import NOW, PG_NODES, cluster


def test_dependencies_start_first_and_ties_go_by_name() -> None:
    groups = [
        Group("web", depends_on=("app",)),
        Group("app", depends_on=("pg", "cache")),
        Group("pg"),
        Group("cache"),
        Group("metrics"),
    ]
    assert start_order(groups) == ["cache", "metrics", "pg", "app", "web"]
    assert stop_order(groups) == ["web", "app", "pg", "metrics", "cache"]
    assert start_order(reversed(groups)) == start_order(groups)


def test_unknown_dependencies_do_not_block_ordering() -> None:
    assert start_order([Group("app", depends_on=("ghost",))]) == ["app"]


def test_cycle_is_named() -> None:
    groups = [
        Group("a", depends_on=("b",)),
        Group("b", depends_on=("c",)),
        Group("c", depends_on=("a",)),
        Group("d", depends_on=("a",)),
    ]
    with pytest.raises(DependencyCycleError) as caught:
        start_order(groups)
    assert caught.value.cycle == ["a", "b", "c"]
    assert "dependsOn cycle: a -> b -> c -> a (each depends on the next)" in str(caught.value)


def test_schedule_rejects_a_cycle_too() -> None:
    groups = [Group("a", depends_on=("b",)), Group("b", depends_on=("a",))]
    with pytest.raises(DependencyCycleError, match="a -> b -> a"):
        schedule(groups, cluster(*PG_NODES), now=NOW)


def test_cycle_through_colocation_is_named() -> None:
    # a and b share a node (colocate), b needs c started first, c needs a: no start order.
    groups = [
        Group("a", colocate=("b",)),
        Group("b", depends_on=("c",)),
        Group("c", depends_on=("a",)),
    ]
    with pytest.raises(DependencyCycleError, match=r"through colocate cycle: \{a, b\} -> c"):
        schedule(groups, cluster(*PG_NODES), now=NOW)


def test_topological_on_plain_names() -> None:
    assert topological(["x", "y", "z"], {"x": ["z"], "y": []}) == ["y", "z", "x"]
