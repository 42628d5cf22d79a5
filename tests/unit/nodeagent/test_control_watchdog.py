"""The control-loop watchdog: armed by the first tick, fires after its deadline, and
forgives a pause in which its own process was frozen as well."""

from __future__ import annotations

from nodeagent.liveness_process import ControlWatchdog


def test_not_armed_before_the_first_tick() -> None:
    dog = ControlWatchdog(deadline=10.0, tick=0.5)
    for now in (0.5, 1.0, 100.0, 100.5):
        assert not dog.stuck(now)


def test_stuck_once_the_control_loop_is_silent_past_the_deadline() -> None:
    dog = ControlWatchdog(deadline=10.0, tick=0.5)
    dog.beat(0.0)
    now = 0.0
    while now < 10.0:
        now += 0.5
        assert not dog.stuck(now)
    assert dog.stuck(10.5)


def test_ticks_keep_it_quiet() -> None:
    dog = ControlWatchdog(deadline=1.0, tick=0.5)
    for step in range(1, 100):
        dog.beat(step * 0.5 - 0.1)
        assert not dog.stuck(step * 0.5)


def test_a_pause_of_both_threads_is_not_a_stuck_control_loop() -> None:
    dog = ControlWatchdog(deadline=10.0, tick=0.5)
    dog.beat(0.0)
    assert not dog.stuck(0.5)
    # SIGSTOP for a minute: this thread's own check comes 60 s late.
    assert not dog.stuck(60.5)
    # From the resume on, the deadline counts again.
    now = 60.5
    while now < 70.5:
        now += 0.5
        assert not dog.stuck(now)
    assert dog.stuck(71.0)
