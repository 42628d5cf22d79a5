"""Observations say what state a resource is in, and why."""

from __future__ import annotations

from nodeagent.observation import Observation, State


def test_each_state_has_its_constructor() -> None:
    made = [
        Observation.running("a"),
        Observation.stopped("b"),
        Observation.failed("c"),
        Observation.unknown("d"),
    ]
    assert [(o.state, o.detail) for o in made] == [
        (State.RUNNING, "a"),
        (State.STOPPED, "b"),
        (State.FAILED, "c"),
        (State.UNKNOWN, "d"),
    ]
