"""The safety invariant of docs/safety.md, checked over random schedules.

Whenever any node X (a would-be leader) sees lost(A) at real time T, A.serving() is
false at every real time >= T. Networks drop and delay packets per directed link,
with outages, flapping and one-way links; clocks drift by up to RHO against each other.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodeagent.heartbeat.timing import RHO, HeartbeatTiming
from tests.unit.nodeagent.heartbeat.sim import Sim

TIMINGS = [
    HeartbeatTiming(keepalive=0.2, warntime=0.6, deadtime=1.0, initdead=2.0),
    HeartbeatTiming(keepalive=0.05, warntime=0.15, deadtime=0.25, initdead=0.5),
]


@dataclass
class Segments:
    """A directed link's behaviour over time: (start, loss probability, max delay)."""

    starts: list[float]
    loss: list[float]
    delay: list[float]

    def at(self, t: float) -> tuple[float, float]:
        i = bisect.bisect_right(self.starts, t) - 1
        return self.loss[i], self.delay[i]


@dataclass
class Net:
    rnd: random.Random
    links: dict[tuple[str, str], Segments] = field(default_factory=dict)

    def __call__(self, src: str, dst: str, t: float) -> tuple[bool, float]:
        loss, max_delay = self.links[(src, dst)].at(t)
        if self.rnd.random() < loss:
            return False, 0.0
        return True, self.rnd.uniform(0.0001, max_delay)


def random_net(names: list[str], rnd: random.Random, duration: float, scale: float) -> Net:
    net = Net(rnd)
    for src in names:
        for dst in names:
            if src == dst:
                continue
            starts, loss, delay = [0.0], [0.0], [0.001]
            t = rnd.uniform(0, 2 * scale)
            while t < duration:
                starts.append(t)
                loss.append(rnd.choice([0.0, 0.0, 0.2, 0.5, 0.8, 1.0, 1.0]))
                delay.append(rnd.choice([0.001, 0.01, 0.1 * scale, scale]))
                t += rnd.uniform(0.2 * scale, 4 * scale)
            net.links[(src, dst)] = Segments(starts, loss, delay)
    return net


class Checker:
    """Records first lost() times and serving intervals (in real time)."""

    def __init__(self, names: list[str]) -> None:
        self.first_lost: dict[str, float] = {}
        self.serving_until: dict[str, float] = dict.fromkeys(names, float("-inf"))
        self.lost_seen = 0
        self.max_serving_after: list[str] = []

    def __call__(self, sim: Sim, name: str, t: float) -> None:
        node = sim.nodes[name]
        local = node.local(t)
        m = node.m
        if m.serving(local):
            until = node.real(m.lease_expiry(local) - m.timing.stop_margin)
            self.serving_until[name] = max(self.serving_until[name], until)
        for peer in m.peers:
            if peer not in self.first_lost and m.lost(peer, local):
                self.first_lost[peer] = t
                self.lost_seen += 1

    def violations(self) -> list[str]:
        return [
            f"{a}: lost at {t:.4f} but serving until {self.serving_until[a]:.4f}"
            for a, t in self.first_lost.items()
            if self.serving_until[a] > t
        ]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.sampled_from([2, 3, 4, 5]),
    timing=st.sampled_from(TIMINGS),
    seed=st.integers(0, 2**32 - 1),
    drift=st.lists(st.floats(1.0, RHO), min_size=5, max_size=5),
)
def test_lost_implies_stopped(
    n: int, timing: HeartbeatTiming, seed: int, drift: list[float]
) -> None:
    names = [f"n{i}" for i in range(n)]
    rnd = random.Random(seed)
    duration = 12 * timing.deadtime
    net = random_net(names, rnd, duration, timing.deadtime)
    checker = Checker(names)
    sim = Sim(
        timing, names, link=net, rates=dict(zip(names, drift, strict=False)), seed=seed,
        on_event=checker,
    )  # fmt: skip
    sim.run_until(duration)
    assert not checker.violations(), checker.violations()


def test_the_random_schedules_do_exercise_lost_and_serving() -> None:
    """Guard against a vacuous property: the generator produces both outcomes."""
    lost = serving = 0
    for seed in range(30):
        timing = TIMINGS[seed % 2]
        names = [f"n{i}" for i in range(3)]
        rnd = random.Random(seed)
        duration = 12 * timing.deadtime
        checker = Checker(names)
        sim = Sim(timing, names, link=random_net(names, rnd, duration, timing.deadtime),
                  seed=seed, on_event=checker)  # fmt: skip
        sim.run_until(duration)
        assert not checker.violations()
        lost += checker.lost_seen
        serving += sum(1 for v in checker.serving_until.values() if v > 0)
    assert lost > 10 and serving > 30
