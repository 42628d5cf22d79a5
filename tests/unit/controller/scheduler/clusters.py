"""Readable cluster scenarios for scheduler tests: a two-node pg cluster, a three-node web one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from controller.scheduler import Decision, Group, NodeState
from controller.scheduler.candidates import Candidate

NOW = 1_700_000_000.0
PG_NODES = ("host-m", "host-s")
WEB_NODES = ("web-a", "web-b", "web-c")


def cluster(
    *names: str,
    dead: tuple[str, ...] = (),
    standby: tuple[str, ...] = (),
    fencing: tuple[str, ...] = (),
) -> list[NodeState]:
    return [
        NodeState(
            name,
            alive=name not in dead and name not in fencing,
            standby=name in standby,
            fenced_pending=name in fencing,
        )
        for name in names
    ]


def pg(**changes: Any) -> Group:
    """The design brief's seed group: prefers host-m (100) over host-s (50), auto_failback off."""
    base = Group(
        "pg",
        nodes=(("host-m", 100), ("host-s", 50)),
        restricted=True,
        stickiness=100,
        migration_threshold=3,
    )
    return replace(base, **changes)


def web(name: str, **changes: Any) -> Group:
    """An unrestricted web group with no node preference, stickiness 0 by default."""
    return replace(Group(name, stickiness=0), **changes)


def where(placements: dict[str, Decision]) -> dict[str, str | None]:
    return {name: placement.runs_on for name, placement in placements.items()}


def cand(node: str, **kw: object) -> Candidate:
    """A candidate that differs from the plain one only in ``kw`` (ranking and wording)."""
    base: dict[str, object] = dict(
        node=node, running=("g",), conflicts=(), strands=(), moves=(),
        base=0, sticky=0, here=0, load=0,
    )  # fmt: skip
    base.update(kw)
    return Candidate(**base)  # type: ignore[arg-type]
