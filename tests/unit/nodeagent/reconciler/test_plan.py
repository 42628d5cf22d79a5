"""The node's plan: stops first (reverse order), then starts (in order); a failed resource
restarts its group; an agent waiting for confirmation touches nothing."""

from __future__ import annotations

from nodeagent.observation import State
from nodeagent.reconciler.plan import Action, GroupView, Mode, ResourceView, phase, plan

R, S, F, U = State.RUNNING, State.STOPPED, State.FAILED, State.UNKNOWN


def group(name: str, mode: Mode, *states: State) -> GroupView:
    return GroupView(name, mode, tuple(ResourceView(f"r{i}", s) for i, s in enumerate(states)))


def test_starts_in_order_what_is_not_running() -> None:
    assert plan([group("web", "run", R, S, U)], ["web"]) == [
        Action("web", "r1", "start"),
        Action("web", "r2", "start"),
    ]


def test_stops_come_first_in_reverse_order_of_groups_and_resources() -> None:
    groups = [group("db", "stop", R, R), group("app", "stop", R, S), group("new", "run", S)]
    actions = plan(groups, ["db", "app", "new"])
    assert actions == [
        Action("app", "r0", "stop"),  # app starts after db: it stops before it
        Action("db", "r1", "stop"),
        Action("db", "r0", "stop"),
        Action("new", "r0", "start"),
    ]


def test_a_failed_resource_restarts_its_whole_group() -> None:
    actions = plan([group("web", "run", R, F, R)], ["web"])
    assert actions == [
        Action("web", "r2", "stop"),
        Action("web", "r1", "stop"),
        Action("web", "r0", "stop"),
        Action("web", "r0", "start"),
        Action("web", "r1", "start"),
        Action("web", "r2", "start"),
    ]


def test_keep_mode_starts_and_stops_nothing() -> None:
    assert plan([group("web", "keep", R, S, F)], ["web"]) == []


def test_groups_missing_from_the_start_order_go_last() -> None:
    actions = plan([group("zz", "run", S), group("aa", "run", S)], ["zz"])
    assert [a.group for a in actions] == ["zz", "aa"]


def test_phases() -> None:
    assert phase(group("g", "run", R, R)) == "Running"
    assert phase(group("g", "run", R, S)) == "Starting"
    assert phase(group("g", "run", R, F)) == "Failed"
    assert phase(group("g", "stop", S, S)) == "Stopped"
    assert phase(group("g", "stop", R, S)) == "Stopping"
    assert phase(group("g", "stop", F, S)) == "Failed"
    assert phase(group("g", "keep", R, R)) == "Running"
    assert phase(group("g", "keep", R, S)) == "Pending"
