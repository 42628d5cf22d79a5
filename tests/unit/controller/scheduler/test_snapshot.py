"""The scheduler's canonical input (snapshot.py): sorted, checked, with derived sets."""

from __future__ import annotations

import pytest

from controller.scheduler.model import SchedulerInputError
from controller.scheduler.order import DependencyCycleError
from controller.scheduler.snapshot import build, validate
from tests.unit.controller.scheduler.clusters import NOW, WEB_NODES, cluster, web


def test_input_order_does_not_matter_and_sets_are_derived() -> None:
    groups = [web("c", colocate=("a",)), web("b", anti_colocate=("a",)), web("a")]
    snap = build(groups, reversed(cluster(*WEB_NODES)), [], {}, NOW)
    assert list(snap.groups) == ["a", "b", "c"] and list(snap.nodes) == list(WEB_NODES)
    assert snap.anti == {"a": ("b",), "b": ("a",), "c": ()}  # symmetric
    assert ("a", "c") in snap.bundles and ("b",) in snap.bundles
    assert snap.eligible("a") == list(WEB_NODES)


def test_contradictions_are_refused_naming_the_groups() -> None:
    with pytest.raises(SchedulerInputError, match="group 'a' is given twice"):
        validate([web("a"), web("a")])
    with pytest.raises(SchedulerInputError, match="contradicts colocation"):
        validate([web("a", colocate=("b",)), web("b", anti_colocate=("a",))])
    with pytest.raises(DependencyCycleError):
        validate([web("a", depends_on=("b",)), web("b", depends_on=("a",))])
