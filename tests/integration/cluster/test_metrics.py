"""Every agent's /metrics in a real 3-node lab, before and after the power loss of the
node running a VIP group: names and types exactly as documented (docs/metrics.md), the
lost node, the placement change and the failover duration visible, and the numbers
agreeing with `ha status` and with the events (`ha events`)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.testing import unique_lab_name
from tests.unit.nodeagent.metrics.test_catalog import documented

from .conftest import needs_root
from .helpers import wait_until, watched_lab

pytestmark = [pytest.mark.slow, needs_root]

Families = dict[str, Any]
# Not the default port: the node configs' metrics.listen acts (the default is used by the
# fencing metrics test and the benchmark).
LISTEN = "127.0.0.1:9465"


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[VigilLab, VipObserver]]:
    lab = VigilLab(
        unique_lab_name("vm"), 3, disk_root=tmp_path / "disks", metrics={"listen": LISTEN}
    )
    yield from watched_lab(lab)


def scrape(lab: VigilLab, node: str) -> Families:
    return {f.name: f for f in text_string_to_metric_families(lab.scrape(node, LISTEN))}


def value(families: Families, sample: str, default: float | None = None, **labels: str) -> float:
    """The value of the sample named `sample` with exactly `labels`."""
    for family in families.values():
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    if default is not None:
        return default
    raise AssertionError(f"no sample {sample}{labels}")


def labelled(families: Families, sample: str, label: str) -> dict[str, float]:
    return {
        s.labels[label]: s.value
        for f in families.values()
        for s in f.samples
        if s.name == sample and label in s.labels
    }


def agrees_with(status: dict[str, Any], node: str, m: Families) -> None:
    """One agent's metrics say what `ha status` says of the cluster."""
    assert labelled(m, "vigil_leader", "node") == {status["leader"]: 1.0}, node
    assert value(m, "vigil_is_leader") == (1.0 if status["leader"] == node else 0.0), node
    for n in status["nodes"]:
        assert value(m, "vigil_node_phase", node=n["name"], phase=n["state"]) == 1.0, (node, n)
    for g in status["groups"]:
        placed = {
            s.labels["node"]: s.value
            for s in m["vigil_group_placed"].samples
            if s.labels["group"] == g["name"]
        }
        assert placed == ({g["placed"]: 1.0} if g["placed"] else {}), (node, g)
        assert value(m, "vigil_group_phase", group=g["name"], phase=g["phase"]) == 1.0, (node, g)
    me = next(n for n in status["nodes"] if n["name"] == node)
    assert value(m, "vigil_node_serving") == (1.0 if me["serving"] else 0.0), node
    for peer, links in me["links"].items():
        for link, state in links.items():
            up = value(m, "vigil_heartbeat_link_up", peer=peer, link=link)
            assert up == (1.0 if state == "up" else 0.0), (node, peer, link)


def settled(lab: VigilLab, nodes: list[str]) -> tuple[dict[str, Any], dict[str, Families]]:
    """`ha status` and every agent's metrics, once they agree (the agents' copies of the
    store follow it within moments: retried until they do)."""

    def attempt() -> tuple[dict[str, Any], dict[str, Families]] | None:
        status = lab.status()
        scraped = {node: scrape(lab, node) for node in nodes}
        try:
            for node, m in scraped.items():
                agrees_with(status, node, m)
        except AssertionError:
            return None
        return status, scraped

    result: tuple[dict[str, Any], dict[str, Families]] = wait_until(
        "the agents' metrics agree with ha status", attempt, 30, every=0.5
    )
    return result


def test_metrics_before_and_after_a_failover(vlab: VigilLab, observer: VipObserver) -> None:
    assert vlab.apply(vlab.web_group()).code == 0
    active = vlab.wait_running("web", 30)
    status, before = settled(vlab, vlab.nodes)
    assert {n["state"] for n in status["nodes"]} == {"Ready"}

    # Names and types: exactly the documented ones, on every agent.
    expected = {
        name.removesuffix("_total") if kind == "counter" else name: kind
        for name, (kind, _labels) in documented().items()
    }
    for node, m in before.items():
        assert {name: f.type for name, f in m.items()} == expected, node
    start_count = value(
        before[active], "vigil_resource_action_duration_seconds_count", action="start",
        type="service.exec",
    )  # fmt: skip
    assert start_count >= 1
    wait_until(
        "the web probe's successes counted where it runs",
        lambda: _probe_successes(scrape(vlab, active)) >= 1,
        20,
    )
    wait_until(
        "every etcd member healthy, of three voters, by the agents' polls",
        lambda: all(_store_healthy(scrape(vlab, n), voters=3) for n in vlab.nodes),
        30,
    )
    for node, m in before.items():
        requests = labelled(m, "vigil_store_request_duration_seconds_count", "op")
        assert requests and min(requests.values()) >= 1, (node, requests)
        assert "lease_refresh" in requests, (node, requests)  # the node record's lease
        assert value(m, "vigil_failover_duration_seconds_count") == 0, node
        assert value(m, "vigil_group_enabled", group="web") == 1, node
        for peer in vlab.nodes:
            if peer != node:
                assert value(m, "vigil_peer_state", peer=peer, state="up") == 1, (node, peer)
                assert value(m, "vigil_peer_lost", peer=peer) == 0, (node, peer)
                links = _links(m, peer)
                assert links, (node, peer)
                for link in links:
                    assert value(m, "vigil_heartbeat_rtt_seconds", peer=peer, link=link) > 0
    changes_before = {
        node: value(m, "vigil_placement_changes_total", group="web", default=0)
        for node, m in before.items()
    }

    killed = time.monotonic()
    killed_at = time.time()
    vlab.lab.kill(active)
    survivor = vlab.wait_running("web", 30, not_on=active)
    running_seen = time.monotonic()
    survivors = [n for n in vlab.nodes if n != active]
    wait_until("the node Lost", lambda: _state(vlab, active) == "Lost", 20)
    status, after = settled(vlab, survivors)

    for node, m in after.items():
        # The lost node, as this agent's heartbeats and the leader's verdict say.
        assert value(m, "vigil_peer_lost", peer=active) == 1, node
        assert value(m, "vigil_peer_state", peer=active, state="dead") == 1, node
        for link in _links(m, active):
            assert value(m, "vigil_heartbeat_link_up", peer=active, link=link) == 0, node
        assert value(m, "vigil_node_phase", node=active, phase="Lost") == 1, node
        # The placement change, seen by every surviving agent.
        changes = value(m, "vigil_placement_changes_total", group="web")
        assert changes >= changes_before[node] + 1, node
        assert value(m, "vigil_group_placed", group="web", node=survivor) == 1, node
    # The failover, timed once, by the node that recovered the group: between the kill
    # and the moment this test saw the group Running there.
    fm = after[survivor]
    assert value(fm, "vigil_failover_duration_seconds_count") == 1
    took = value(fm, "vigil_failover_duration_seconds_sum")
    assert 0 < took <= running_seen - killed
    other = next(n for n in survivors if n != survivor)
    assert value(after[other], "vigil_failover_duration_seconds_count") == 0
    assert value(fm, "vigil_resource_action_duration_seconds_count", action="start",
                 type="service.exec") >= 1  # fmt: skip
    assert observer.holders() == {survivor}
    events_agree(vlab, after, status, active, survivor, killed_at, took)


def events_agree(
    lab: VigilLab,
    after: dict[str, Families],
    status: dict[str, Any],
    lost: str,
    survivor: str,
    killed_at: float,
    took: float,
) -> None:
    """What the metrics counted, the events recorded: the same placements, made by the
    leader `ha status` names, the failover's start on the node the metric timed it on,
    within the span the events bound."""
    result = lab.ha("events", "ResourceGroup", "web", "-o", "json")
    assert result.code == 0, result.err
    events = json.loads(result.out)
    placed = [e for e in events if e["reason"] == "Placed"]
    nodes = [e["message"].split(": ")[1] for e in placed]
    changes = sum(1 for a, b in itertools.pairwise(nodes) if a != b)
    for node, m in after.items():
        # Each agent saw the first placement (it was up before the apply) and counts
        # every change after it: one per Placed event that names another node.
        assert value(m, "vigil_placement_changes_total", group="web") == changes, (node, events)
    assert changes >= 1 and nodes[-1] == survivor, events
    last = placed[-1]
    assert last["source"]["component"] == "controller", last
    assert last["source"]["node"] == status["leader"], (last, status["leader"])
    # The lost node the metrics show, named as the reason the group moved.
    assert f"{lost} is lost" in last["message"], last
    # One recovery from a lost node in the events, one failover timed, on its node.
    recoveries = [e for e in placed if " is lost" in e["message"]]
    assert recoveries == [last], events
    assert value(after[survivor], "vigil_failover_duration_seconds_count") == len(recoveries)
    placed_at = _when(last)
    assert placed_at > killed_at, (last, killed_at)
    started = [
        e for e in events
        if e["reason"] == "Started" and _when(e) >= placed_at
        and (e["source"]["component"], e["source"].get("node")) == ("agent", survivor)
    ]  # fmt: skip
    assert started, events
    # The metric's span opens when the survivor saw the node lost (after the kill) and
    # closes once the group's last resource started there: within the kill and the
    # last Started event (stamped as the start completed), give or take the moment
    # between the stamp and the metric's observation.
    assert took <= _when(started[-1]) - killed_at + 0.25, (took, started[-1], killed_at)
    assert not [e for e in events if e["reason"] in ("Failed", "StopFailed", "Blocked")], events


def _store_healthy(m: Families, voters: int) -> bool:
    return (
        value(m, "vigil_etcd_member_healthy") == 1
        and value(m, "vigil_etcd_voting_members") == voters
    )


def _when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["time"]).timestamp()


def _links(m: Families, peer: str) -> list[str]:
    return [s.labels["link"] for s in m["vigil_heartbeat_link_up"].samples
            if s.labels["peer"] == peer]  # fmt: skip


def _probe_successes(m: Families) -> float:
    return float(
        sum(
            s.value
            for s in m["vigil_probe_results"].samples
            if s.labels["group"] == "web" and s.labels["result"] == "success"
        )
    )


def _state(lab: VigilLab, node: str) -> str:
    return str(next(n["state"] for n in lab.status()["nodes"] if n["name"] == node))
