"""Heartbeat services in real network namespaces: detection times and the stop-first rule."""

from __future__ import annotations

import time

import pytest

from nodeagent.heartbeat.timing import HeartbeatTiming
from tests.integration.heartbeat.conftest import HeartbeatNet, NodeProc, wait_for

pytestmark = pytest.mark.slow

DEFAULT = HeartbeatTiming(keepalive=0.2, warntime=0.6, deadtime=1.0, initdead=3.0)
TUNED = HeartbeatTiming(keepalive=0.05, warntime=0.15, deadtime=0.25, initdead=2.0)


def all_up(nodes: list[NodeProc]) -> bool:
    for node in nodes:
        snap = node.snapshot()
        if snap is None or not snap["serving"]:
            return False
        if any(p["state"] != "up" for p in snap["peers"].values()):
            return False
    return True


def start_all(net: HeartbeatNet, timing: HeartbeatTiming) -> tuple[list[NodeProc], float]:
    nodes = [net.start(i, timing) for i in range(3)]
    wait_for("ready", lambda: all(any(e["type"] == "ready" for e in n.lines) for n in nodes), 10)
    ready = max(e["at"] for n in nodes for e in n.lines if e["type"] == "ready")
    wait_for("all up and serving", lambda: all_up(nodes), timing.initdead)
    up_at = max(n.first("peer", p, "up") or 0.0 for n in nodes for p in net.names if p != n.name)
    return nodes, up_at - ready


@pytest.mark.parametrize("timing", [DEFAULT, TUNED], ids=["default", "tuned"])
def test_kill_detection_time(hbnet: HeartbeatNet, timing: HeartbeatTiming) -> None:
    nodes, converge = start_all(hbnet, timing)
    print(f"\n[{timing.deadtime}s] all up {converge * 1000:.0f} ms after the last node was ready")
    assert converge < timing.initdead
    sched = next(e["sched"] for e in nodes[0].lines if e["type"] == "ready")
    print(f"  {sched}")

    killed = nodes[2].kill()
    survivors = nodes[:2]
    wait_for("n2 dead", lambda: all(n.first("peer", "n2", "dead", killed) for n in survivors), 5)
    wait_for("n2 lost", lambda: all(n.first("lost", "n2", "true", killed) for n in survivors), 5)
    for n in survivors:
        dead = n.first("peer", "n2", "dead", killed)
        lost = n.first("lost", "n2", "true", killed)
        assert dead is not None and lost is not None
        print(f"  {n.name}: n2 dead after {(dead - killed) * 1000:.0f} ms, "
              f"lost after {(lost - killed) * 1000:.0f} ms")  # fmt: skip
        assert timing.deadtime - timing.keepalive - 0.02 <= dead - killed
        assert dead - killed <= timing.deadtime + 2 * timing.keepalive
        assert lost - killed <= timing.deadtime + 3 * timing.keepalive
    # Two of three still form a majority: both keep serving.
    time.sleep(timing.deadtime)
    assert all(n.snapshot()["serving"] for n in survivors)  # type: ignore[index]


@pytest.mark.parametrize("timing", [DEFAULT, TUNED], ids=["default", "tuned"])
def test_isolated_node_stops_before_the_others_declare_it_lost(
    hbnet: HeartbeatNet, timing: HeartbeatTiming
) -> None:
    nodes, _ = start_all(hbnet, timing)
    cut = hbnet.set_port(2, up=False)
    wait_for(
        "n2 lost at n0 and n1",
        lambda: all(n.first("lost", "n2", "true", cut) for n in nodes[:2]),
        5,
    )
    stopped = nodes[2].first("serving", "n2", "false", cut)
    assert stopped is not None, "the isolated node never stopped serving"
    lost = {n.name: n.first("lost", "n2", "true", cut) for n in nodes[:2]}
    first_lost = min(t for t in lost.values() if t is not None)
    print(f"\n[{timing.deadtime}s] n2 stopped {(stopped - cut) * 1000:.0f} ms after the cut; "
          f"lost at " + ", ".join(f"{k} +{(v or 0) - cut:.3f}s" for k, v in lost.items())
          + f"; margin {(first_lost - stopped) * 1000:.0f} ms")  # fmt: skip
    assert stopped < first_lost
    # The isolated node's own view: nobody heard, no lease, peers dead.
    wait_for(
        "n2 sees both peers dead",
        lambda: all(
            p["state"] == "dead" for p in (nodes[2].snapshot() or {"peers": {}})["peers"].values()
        ),
        3,
    )
    assert all(n.snapshot()["serving"] for n in nodes[:2])  # type: ignore[index]

    # Heal: n2 was refused by both peers (silent > deadtime), rejoins with a new incarnation.
    healed = hbnet.set_port(2, up=True)
    wait_for("n2 serves again", lambda: nodes[2].first("serving", "n2", "true", healed), 5)
    wait_for("n2 no longer lost", lambda: nodes[0].first("lost", "n2", "false", healed), 5)
    assert [e for e in nodes[2].events("incarnation") if e["at"] >= healed]


def test_wrong_key_is_rejected_and_peer_stays_unknown(hbnet: HeartbeatNet) -> None:
    timing = HeartbeatTiming(keepalive=0.05, warntime=0.15, deadtime=0.25, initdead=10.0)
    good = [hbnet.start(i, timing) for i in range(2)]
    bad = hbnet.start(2, timing, key=b"x" * 32)

    def rejected_mac(node: NodeProc) -> int:
        snap = node.snapshot()
        return 0 if snap is None else int(snap["counters"]["rejected"].get("mac", 0))

    wait_for("mac rejections", lambda: all(rejected_mac(n) >= 10 for n in [*good, bad]), 5)
    wait_for("good pair up", lambda: good[0].first("peer", "n1", "up"), 5)
    snap = good[0].snapshot()
    assert snap is not None
    assert snap["peers"]["n1"]["state"] == "up"
    assert snap["peers"]["n2"]["state"] == "unknown"
    assert snap["peers"]["n2"]["incarnation"] is None
    assert snap["serving"]  # n0 + n1 are a majority of three
    bad_snap = bad.snapshot()
    assert bad_snap is not None and not bad_snap["serving"]
    assert {p["state"] for p in bad_snap["peers"].values()} == {"unknown"}
    print(f"\nrejected by n0: {snap['counters']['rejected']}, by n2: "
          f"{bad_snap['counters']['rejected']}")  # fmt: skip


@pytest.mark.parametrize("hbnet", [True], indirect=True, ids=["two-links"])
def test_second_link_keeps_a_node_alive_until_both_are_cut(hbnet: HeartbeatNet) -> None:
    timing = TUNED
    nodes, _ = start_all(hbnet, timing)

    def links_of(node: NodeProc, peer: str) -> dict[str, float]:
        snap = node.snapshot()
        return {} if snap is None else dict(snap["peers"][peer]["links"])

    wait_for("both links heard", lambda: set(links_of(nodes[0], "n2")) == {"cluster", "eth1"}, 2)
    cut = hbnet.set_port(2, up=False)
    time.sleep(3 * timing.deadtime)
    ages = links_of(nodes[0], "n2")
    print(f"\nafter cutting n2's cluster link: n0 hears n2 on {ages}")
    assert ages["cluster"] > timing.deadtime and ages["eth1"] < 2 * timing.keepalive
    assert nodes[2].first("serving", "n2", "false", cut) is None
    assert nodes[0].first("lost", "n2", "true", cut) is None
    assert nodes[0].first("peer", "n2", "dead", cut) is None

    both = hbnet.set_port(2, up=False, port="q")
    wait_for("n2 lost", lambda: nodes[0].first("lost", "n2", "true", both), 3)
    stopped = nodes[2].first("serving", "n2", "false", both)
    lost = nodes[0].first("lost", "n2", "true", both)
    assert stopped is not None and lost is not None and stopped < lost
