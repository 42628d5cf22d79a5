"""Which groups a reconciler turn looks at (nodeagent/reconciler/dirty.py)."""

from __future__ import annotations

from nodeagent.observation import State
from nodeagent.reconciler.dirty import RESYNC, RESYNC_MAX, Rotation, Tracker, resync_period, settled
from nodeagent.reconciler.plan import GroupView, Mode, ResourceView


def view(name: str, mode: Mode, *states: State) -> GroupView:
    return GroupView(name, mode, tuple(ResourceView(f"r{i}", s) for i, s in enumerate(states)))


def names(count: int) -> list[str]:
    return [f"g-{i:04d}" for i in range(count)]


def test_small_clusters_resync_every_turn_period_and_big_ones_within_a_bound() -> None:
    assert resync_period(1) == RESYNC
    assert resync_period(200) == RESYNC
    assert resync_period(500) == 5.0
    assert resync_period(1000) == RESYNC_MAX
    assert resync_period(100_000) == RESYNC_MAX


def test_settled_means_nothing_to_do_and_nothing_unsure() -> None:
    run, stop, keep = State.RUNNING, State.STOPPED, "keep"
    assert settled(view("g", "run", run, run))
    assert not settled(view("g", "run", run, stop))
    assert not settled(view("g", "run", State.FAILED))
    assert settled(view("g", "stop", stop, stop))
    assert not settled(view("g", "stop", stop, run))
    assert not settled(view("g", "stop", State.UNKNOWN))
    assert settled(view("g", keep, run, stop))
    assert not settled(view("g", keep, State.UNKNOWN))
    assert settled(view("g", "run"))  # no resources


def test_the_rotation_covers_every_group_within_the_period_whatever_the_turn_rate() -> None:
    for count, turn_every in ((3, 2.0), (3, 0.05), (1000, 2.0), (1000, 0.3), (3000, 2.0)):
        groups = names(count)
        rotation = Rotation()
        rotation.take(groups, 0.0)
        seen: dict[str, float] = {}
        now = 0.0
        while now < 3 * resync_period(count):
            now += turn_every
            for name in rotation.take(groups, now):
                assert now - seen.get(name, 0.0) <= resync_period(count) + turn_every + 1e-9
                seen[name] = now
        assert set(seen) == set(groups)


def test_the_rotation_spreads_the_work_over_turns() -> None:
    groups = names(1000)
    rotation = Rotation()
    rotation.take(groups, 0.0)
    sizes = [len(rotation.take(groups, 2.0 * turn)) for turn in range(1, 6)]
    assert sizes == [200] * 5  # a fifth of the groups per 2 s turn: all in 10 s


def test_the_rotation_skips_no_group_when_groups_come_and_go() -> None:
    groups = names(10)
    rotation = Rotation(cursor="g-0004")
    rotation.take(groups, 0.0)
    fewer = [g for g in groups if g != "g-0005"] + ["g-0004a"]
    assert rotation.take(sorted(fewer), 1.0) == ["g-0004a", "g-0006", "g-0007", "g-0008", "g-0009"]
    assert rotation.take([], 2.0) == []


def group_inputs(count: int) -> dict[str, tuple[object, ...]]:
    return {name: (object(), None) for name in names(count)}


LIVE = (True, (("n1", "up"),))


def test_a_turn_looks_only_at_what_changed_is_unsettled_or_poked() -> None:
    tracker = Tracker(rotation=Rotation(last=0.0))
    inputs = group_inputs(1000)
    first = tracker.due(inputs, LIVE, 0.0)
    assert first == set(inputs)  # nothing seen yet
    views = [view(n, "run", State.RUNNING) for n in inputs]
    views[7] = view("g-0007", "run", State.STOPPED)  # starting
    tracker.looked(inputs, LIVE, views)
    assert tracker.due(inputs, LIVE, 0.0) == {"g-0007"}

    changed = dict(inputs)
    changed["g-0001"] = (object(), None)  # a new spec revision
    changed["g-0002"] = (inputs["g-0002"][0], object())  # a new placement
    changed["g-0999"] = (object(), None)  # created
    del changed["g-0003"]  # deleted
    tracker.poke("g-0004")  # a probe fired
    tracker.poke("g-0003")  # poked, but deleted meanwhile
    due = tracker.due(changed, LIVE, 0.0)
    assert due == {"g-0001", "g-0002", "g-0999", "g-0004", "g-0007"}
    tracker.looked(changed, LIVE, [view(n, "run", State.RUNNING) for n in due])
    assert tracker.due(changed, LIVE, 0.0) == set()


def test_a_liveness_change_makes_every_group_due() -> None:
    tracker = Tracker(rotation=Rotation(last=0.0))
    inputs = group_inputs(50)
    tracker.due(inputs, LIVE, 0.0)
    tracker.looked(inputs, LIVE, [view(n, "run", State.RUNNING) for n in inputs])
    lost = (False, (("n1", "up"),))
    assert tracker.due(inputs, lost, 0.0) == set(inputs)


def test_failed_actions_and_unwritten_statuses_are_looked_at_again() -> None:
    tracker = Tracker(rotation=Rotation(last=0.0))
    inputs = group_inputs(5)
    tracker.due(inputs, LIVE, 0.0)
    views = [view(n, "run", State.RUNNING) for n in inputs]
    tracker.looked(inputs, LIVE, views, unsettled={"g-0001", "g-0002"})
    assert tracker.due(inputs, LIVE, 0.0) == {"g-0001", "g-0002"}


def test_a_turn_that_did_not_complete_leaves_its_groups_due() -> None:
    tracker = Tracker(rotation=Rotation(last=0.0))
    inputs = group_inputs(5)
    tracker.due(inputs, LIVE, 0.0)
    tracker.looked(inputs, LIVE, [view(n, "run", State.RUNNING) for n in inputs])
    tracker.poke("g-0003")
    assert tracker.due(inputs, LIVE, 0.0) == {"g-0003"}
    # ... and the turn raised before `looked`:
    assert tracker.due(inputs, LIVE, 0.0) == {"g-0003"}
