"""Bad input gets an error naming the field and the fix."""

from __future__ import annotations

import re

import pytest

from controller.scheduler import (
    Decision,
    DecisionStatus,
    Failure,
    Group,
    Move,
    NodeState,
    SchedulerInputError,
    schedule,
    validate,
)
from tests.unit.controller.scheduler.clusters import NOW, PG_NODES, cluster


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stickiness": -1}, "placement.stickiness is -1; use 0 or more"),
        ({"migration_threshold": 0}, "migrationThreshold is 0; use 1 or more"),
        ({"failure_timeout": 0.0}, "failureTimeout is 0.0; use a positive number"),
        ({"nodes": (("host-m", 1), ("host-m", 2))}, "placement.nodes lists 'host-m' twice"),
        ({"nodes": (("host-m", "high"),)}, "score for 'host-m' must be an integer"),
        ({"depends_on": ("pg",)}, "dependsOn lists the group itself"),
        ({"colocate": ("a", "a")}, "colocate lists a group twice"),
        ({"colocate": ("a",), "anti_colocate": ("a",)}, "in both colocate and antiColocate"),
    ],
)
def test_group_field_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SchedulerInputError, match=re.escape(message)):
        Group("pg", **kwargs)  # type: ignore[arg-type]


def test_other_type_errors() -> None:
    with pytest.raises(SchedulerInputError, match="fenced_pending=True needs alive=False"):
        NodeState("host-m", alive=True, fenced_pending=True)
    with pytest.raises(SchedulerInputError, match="count must be an int >= 0"):
        Failure("pg", "host-m", -1, NOW)
    with pytest.raises(SchedulerInputError, match=r"placement\.moveTo\.node"):
        Move("")
    with pytest.raises(SchedulerInputError, match="inconsistent"):
        Decision("pg", None, DecisionStatus.PLACED, "x")


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(SchedulerInputError, match="group 'pg' is given twice"):
        schedule([Group("pg"), Group("pg")], cluster(*PG_NODES), now=NOW)
    with pytest.raises(SchedulerInputError, match="node 'host-m' is given twice"):
        schedule([Group("pg")], cluster("host-m", "host-m"), now=NOW)


def test_anti_colocation_inside_a_colocation_set_is_rejected() -> None:
    groups = [
        Group("a", colocate=("b",)),
        Group("c", colocate=("b",), anti_colocate=("a",)),
        Group("b"),
    ]
    with pytest.raises(SchedulerInputError, match="antiColocate with 'c' contradicts"):
        validate(groups)
