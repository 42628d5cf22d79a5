"""Power loss: of the active node, and of the controller leader's node."""

from __future__ import annotations

import sys
import time

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver

from .conftest import needs_root
from .helpers import VipPoller, group, node_state, wait_until

pytestmark = [pytest.mark.slow, needs_root]


def test_power_loss_of_the_active_node_moves_the_group(
    vlab: VigilLab, observer: VipObserver
) -> None:
    vip = vlab.vip()
    assert vlab.apply(vlab.web_group()).code == 0
    active = vlab.wait_running("web", 30)
    assert vlab.get(vip) == active
    with VipPoller(vlab, vip) as poller:
        time.sleep(0.5)
        killed = time.monotonic()
        vlab.lab.kill(active)
        survivor = vlab.wait_running("web", 20, not_on=active)
        wait_until("the VIP answers from the survivor", lambda: vlab.get(vip) == survivor, 10)
    first = poller.first_from(killed, active)
    assert first is not None and first.node == survivor
    gap = first.time - killed
    sys.stderr.write(f"\npower loss of {active}: {survivor} answers after {gap:.3f} s\n")
    assert gap < 5.0
    web = wait_until("the group Running on the survivor", lambda: _running_on(vlab, survivor), 10)
    assert web["placed"] == survivor
    assert "dead" in web["reason"] or "lost" in web["reason"], web
    assert wait_until("the node Lost", lambda: node_state(vlab, active) == "Lost", 10)
    assert observer.holders() == {survivor}


def test_killing_the_leaders_node_elects_a_leader_that_fails_over(
    vlab: VigilLab, observer: VipObserver
) -> None:
    vip = vlab.vip()
    assert vlab.apply(vlab.web_group()).code == 0
    vlab.wait_running("web", 30)
    leader = vlab.status()["leader"]
    assert leader in vlab.nodes
    assert vlab.ha("move", "web", leader).code == 0
    wait_until(f"web on the leader {leader}", lambda: _running_on(vlab, leader), 20)
    assert vlab.status()["leader"] == leader
    with VipPoller(vlab, vip) as poller:
        time.sleep(0.3)
        killed = time.monotonic()
        vlab.lab.kill(leader)
        new_leader = wait_until(
            "a new leader",
            lambda: (s := vlab.status()["leader"]) not in (None, leader) and s,
            20,
        )
        survivor = vlab.wait_running("web", 20, not_on=leader)
        wait_until("the VIP answers", lambda: vlab.get(vip) == survivor, 10)
    first = poller.first_from(killed, leader)
    assert first is not None
    sys.stderr.write(
        f"\nleader {leader} killed: new leader {new_leader}, web on {survivor} answers after "
        f"{first.time - killed:.3f} s\n"
    )
    assert new_leader != leader and survivor != leader
    assert group(vlab, "web")["placed"] == survivor
    assert observer.holders() == {survivor}


def _running_on(lab: VigilLab, node: str) -> dict[str, object] | None:
    web = group(lab, "web")
    ok = web["phase"] == "Running" and web["running"] == node and web["placed"] == node
    return web if ok else None
