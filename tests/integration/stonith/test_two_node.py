"""Two-node mode with IPMI fencing: the survivor of a power loss fences its peer, carries
the store on alone (etcd --force-new-cluster) and recovers the group; the fenced node,
powered on again, joins the store as a fresh member and never serves stale placements."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from tests.integration.cluster.conftest import needs_root
from tests.integration.cluster.helpers import wait_until

from .conftest import explained, needs_ipmi_sim
from .test_fence_before_recovery import fencing_of, reasons
from .test_fence_metrics import sample

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]


def store_members(lab: VigilLab) -> list[str]:
    result = lab.ha("cluster", "members", "-o", "json")
    assert result.code == 0, result.err
    return sorted(m["name"] for m in json.loads(result.out))


def voters_seen(lab: VigilLab, nodes: list[str], count: int) -> bool:
    """Every agent's metrics: its store member healthy, in a cluster of `count` voters
    (what VigilStoreQuorumLost divides by; the agents poll etcd every 10 s)."""
    return all(
        sample(lab, n, "vigil_etcd_voting_members") == count
        and sample(lab, n, "vigil_etcd_member_healthy") == 1
        for n in nodes
    )


def test_the_survivor_fences_its_peer_and_carries_on_alone(
    fenced2: tuple[VigilLab, VipObserver],
) -> None:
    lab, observer = fenced2
    assert store_members(lab) == sorted(lab.nodes)
    wait_until("two voters, by the metrics", lambda: voters_seen(lab, lab.nodes, 2), 30)
    assert lab.apply(lab.web_group()).code == 0
    active = lab.wait_running("web", 30)
    survivor_name = next(n for n in lab.nodes if n != active)
    lab.lab.kill(active)
    survivor = lab.wait_running("web", 30, not_on=active)
    assert survivor == survivor_name
    record = fencing_of(lab, active)
    assert record is not None and record["state"] == "fenced", record
    assert record["fencedBy"] == [f"bmc-{active}"]
    assert "FenceVerified" in reasons(lab, active)
    assert store_members(lab) == [survivor]  # the store runs on the survivor alone
    # So the store has its quorum again: one voter, healthy (the alert stops).
    wait_until("one voter, by the metrics", lambda: voters_seen(lab, [survivor], 1), 30)
    assert lab.lab.node_pid(active) is None
    assert observer.holders() == {survivor}

    lab.lab.power_on(active)  # back: a fresh store member, nothing started from old copies
    wait_until("both store members", lambda: store_members(lab) == sorted(lab.nodes), 90)
    lab.wait_ready(60)
    assert lab.where("web") == survivor
    assert observer.holders() == {survivor}


RACE_ROUNDS = int(os.environ.get("VIGIL_RACE_ROUNDS", "20"))


def test_a_cut_cable_leaves_exactly_one_node_running(
    fenced2: tuple[VigilLab, VipObserver],
) -> None:
    """Every heartbeat link between two live nodes cut (the lab's switch drops their
    traffic; the BMCs stay reachable, as on a management LAN): both see the other lost,
    the preferred node (the first, whose device makes its attacker wait) shoots first.
    Every other round the group runs on the node that loses, so the winner must recover
    it. Twenty rounds (`VIGIL_RACE_ROUNDS`)."""
    lab, observer = fenced2
    with explained(lab):
        race(lab)
    assert observer.overlaps == []


def race(lab: VigilLab) -> None:
    preferred, other = lab.nodes
    assert lab.apply(lab.web_group()).code == 0
    lab.wait_running("web", 30)
    for round_ in range(RACE_ROUNDS):
        holder = other if round_ % 2 else preferred
        assert lab.ha("move", "web", holder).code == 0
        wait_until(f"round {round_}: web on {holder}", lambda h=holder: lab.where("web") == h, 30)
        lab.lab.partition([[preferred], [other]])
        wait_until(
            f"round {round_}: {other} powered off", lambda: lab.lab.node_pid(other) is None, 30
        )
        assert lab.lab.node_pid(preferred) is not None
        assert lab.wait_running("web", 30, not_on=other) == preferred
        lab.lab.heal()
        assert lab.lab.node_pid(preferred) is not None, f"round {round_}: both were fenced"
        lab.lab.power_on(other)
        wait_until(
            f"round {round_}: both store members",
            lambda: store_members(lab) == sorted(lab.nodes),
            90,
        )
        lab.wait_ready(60)
        sys.stderr.write(f"\nround {round_}: {preferred} survived, web on {lab.where('web')}\n")


def test_a_node_that_boots_alone_fences_its_peer_before_starting_anything(
    fenced2: tuple[VigilLab, VipObserver],
) -> None:
    """Both nodes lose power; one comes back alone. It waits initdead for its peer, then
    fences it (Heartbeat's initdead, DRBD's wfc-timeout) and only then runs the group."""
    lab, observer = fenced2
    with explained(lab):
        first, second = lab.nodes
        assert lab.apply(lab.web_group()).code == 0
        lab.wait_running("web", 30)
        lab.lab.kill(first)
        lab.lab.kill(second)
        booted = time.monotonic()
        lab.lab.power_on(first)
        # Timed by the address answering, not by `ha status`: until the booted agent
        # reports, the store it restored still says what ran before the power loss.
        wait_until(
            "the VIP answering from the booted node", lambda: observer.holders() == {first}, 90
        )
        took = time.monotonic() - booted
        assert lab.wait_running("web", 30) == first
        initdead = float(lab.timing["initdead"].removesuffix("s"))
        assert took >= initdead, f"{first} ran the group {took:.1f} s after boot, before initdead"
        record = fencing_of(lab, second)
        assert record is not None and record["state"] == "fenced", record
        assert str(record["reason"]).startswith("lost: two-node mode"), record
        assert lab.lab.node_pid(second) is None
        assert observer.holders() == {first}
