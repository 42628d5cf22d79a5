"""SIGKILL of the agent alone: its children keep running, the restarted agent adopts them."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver

from .conftest import needs_root
from .helpers import VipPoller, group, wait_until

pytestmark = [pytest.mark.slow, needs_root]

PROBE_PERIOD = 1.0  # web_group's probe period


def agent_pids(lab: VigilLab, node: str) -> list[int]:
    agent, _liveness = lab.agent_processes(node)
    return [] if agent is None else [agent]


def test_agent_sigkill_keeps_the_group_and_the_service(
    vlab: VigilLab, observer: VipObserver
) -> None:
    vip = vlab.vip()
    assert vlab.apply(vlab.web_group()).code == 0
    active = vlab.wait_running("web", 30)
    before = group(vlab, "web")
    [agent] = agent_pids(vlab, active)
    with VipPoller(vlab, vip) as poller:
        time.sleep(1.0)
        killed = time.monotonic()
        os.kill(agent, signal.SIGKILL)
        restarted = wait_until(
            "the agent restarted by the node's init",
            lambda: [p for p in agent_pids(vlab, active) if p != agent],
            10,
            every=0.05,
        )
        # The new agent is connected and the leader confirmed the placement for it.
        wait_until(
            "the placement confirmed for the new agent",
            lambda: (
                (g := group(vlab, "web"))["epoch"] > before["epoch"]
                and g["phase"] == "Running"
                and g
            ),
            20,
        )
        time.sleep(2.0)  # and it stays so
    after = group(vlab, "web")
    gap = poller.max_gap(start=killed - 0.5)
    nodes = {a.node for a in poller.answers if a.node}
    sys.stderr.write(
        f"\nagent {agent} on {active} killed, new agent {restarted}; epoch "
        f"{before['epoch']} -> {after['epoch']}; {len(poller.answers)} polls, answers from "
        f"{sorted(nodes)}, longest gap {gap:.3f} s\n"
    )
    window = [a for a in poller.answers if a.time >= killed - 0.5]
    slow = [
        (round(a.time - killed, 3), round(a.took, 3), a.node or a.error)
        for a in window
        if a.took > 0.1 or not a.node
    ]
    sys.stderr.write(f"slow or failed polls (t from kill, took, answer): {slow}\n")
    assert after["placed"] == active and after["running"] == active
    assert after["phase"] == "Running" and after["failures"] == {}
    assert nodes == {active}
    assert gap <= PROBE_PERIOD, f"service interrupted for {gap:.3f} s"
    assert observer.holders() == {active}


def test_frozen_agent_longer_than_deadtime_leaves_no_duplicate(
    vlab: VigilLab, observer: VipObserver
) -> None:
    assert vlab.apply(vlab.web_group()).code == 0
    active = vlab.wait_running("web", 30)
    # The whole agent, as a hung machine: the control plane and its liveness process.
    frozen = [pid for pid in vlab.agent_processes(active) if pid is not None]
    assert len(frozen) == 2, f"an agent and its liveness process expected, found {frozen}"
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        other = vlab.wait_running("web", 20, not_on=active)
        time.sleep(0.5)
        overlaps = list(observer.overlaps)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    # The thawed agent finds its lease gone and lets go; the overlap is judged here, in
    # the test body, so that the expected failure is this assertion, not the teardown's.
    observer.wait_for(lambda h: active not in h, within=15)
    observer.overlaps.clear()
    sys.stderr.write(f"\nagent on {active} frozen: web recovered on {other}; {overlaps[:3]}\n")
    assert overlaps == [], f"VIP on {active} (frozen agent) and {other} at once"
