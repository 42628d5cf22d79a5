"""What to stop and start on this node, from what should run and what is observed. Pure.

Stops come first (every group in reverse start order, each group's resources in reverse),
then starts (groups in start order, resources in order): a node never holds a resource
of a group it is giving up while it starts another that may depend on the same address or
mount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from nodeagent.observation import State

Verb = Literal["start", "stop"]
# run: start what is missing, keep it up; keep: start nothing, stop nothing (an agent that
# started again and waits for the leader to confirm it); stop: take everything down.
Mode = Literal["run", "keep", "stop"]


@dataclass(frozen=True)
class ResourceView:
    name: str
    state: State
    detail: str = ""


@dataclass(frozen=True)
class GroupView:
    name: str
    mode: Mode
    resources: tuple[ResourceView, ...]

    @property
    def should_run(self) -> bool:
        return self.mode == "run"


@dataclass(frozen=True)
class Action:
    group: str
    resource: str
    verb: Verb


def _stops(group: GroupView) -> list[Action]:
    return [
        Action(group.name, r.name, "stop")
        for r in reversed(group.resources)
        if r.state is not State.STOPPED
    ]


def plan(groups: Sequence[GroupView], start_order: Sequence[str]) -> list[Action]:
    """``start_order`` lists group names, dependencies first; unlisted groups go last."""
    rank = {name: i for i, name in enumerate(start_order)}
    ordered = sorted(groups, key=lambda g: (rank.get(g.name, len(rank)), g.name))
    stops: list[Action] = []
    starts: list[Action] = []
    for group in reversed(ordered):
        if group.mode == "stop":
            stops.extend(_stops(group))
        elif group.mode == "run" and any(r.state is State.FAILED for r in group.resources):
            # A failed resource restarts the group: everything down, then up in order.
            stops.extend(_stops(group))
    for group in ordered:
        if not group.should_run:
            continue
        failed = any(r.state is State.FAILED for r in group.resources)
        starts.extend(
            Action(group.name, r.name, "start")
            for r in group.resources
            if failed or r.state is not State.RUNNING
        )
    return stops + starts


def phase(group: GroupView) -> str:
    states = {r.state for r in group.resources}
    if group.mode == "keep":
        return "Running" if states == {State.RUNNING} else "Pending"
    if group.should_run:
        if states == {State.RUNNING}:
            return "Running"
        return "Failed" if State.FAILED in states else "Starting"
    if states <= {State.STOPPED}:
        return "Stopped"
    return "Failed" if State.FAILED in states else "Stopping"
