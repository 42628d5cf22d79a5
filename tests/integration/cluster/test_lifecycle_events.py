"""What `ha events` tells of the cluster's own life, on a real three-node lab: a new
leader after the old one lost power, an agent's orderly stop and its next start (and a
start after SIGKILL that adopts the running group), and a node cut off long enough to
lose its serving lease, recorded once it reaches the store again."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver

from .conftest import needs_root
from .helpers import wait_until

pytestmark = [pytest.mark.slow, needs_root]
Event = dict[str, Any]


def events(lab: VigilLab, reason: str) -> list[Event]:
    result = lab.ha("events", "--reason", reason, "-o", "json", timeout=20)
    if result.code != 0:
        return []  # the store is busy electing: ask again
    found: list[Event] = json.loads(result.out)
    return found


def by(event: Event) -> str:
    src = event["source"]
    return f"{src['component']}/{src.get('node', '')}"


def written(event: Event) -> datetime:
    return datetime.fromisoformat(event["time"])


def one_of(lab: VigilLab, reason: str, within: float, **where: Any) -> Event:
    """The first `reason` event whose source is `source`, whose message holds `text` and
    that was written after `after` (the lab's nodes share this machine's clock)."""
    source, text = where.get("source", ""), where.get("text", "")
    after: datetime = where.get("after", datetime.min.replace(tzinfo=UTC))

    def found() -> Event | None:
        for event in events(lab, reason):
            if (
                (not source or by(event) == source)
                and text in event["message"]
                and written(event) > after
            ):
                return event
        return None

    event: Event = wait_until(f"{reason} from {source or 'anyone'}", found, within, every=0.5)
    return event


def agent_pid(lab: VigilLab, node: str) -> int | None:
    return lab.agent_processes(node)[0]


def test_a_leader_that_loses_power_is_followed_by_a_recorded_election(vlab: VigilLab) -> None:
    first = wait_until("a leader", lambda: vlab.status().get("leader"), 30)
    elected = one_of(vlab, "LeaderElected", 20, source=f"controller/{first}")
    assert elected["involvedObject"]["kind"] == "Cluster"
    vlab.lab.kill(first)
    after = one_of(vlab, "LeaderElected", 30, text=f"previous leader {first}")
    sys.stderr.write(f"\n{first} lost power; {by(after)}: {after['message']}\n")
    assert by(after) != f"controller/{first}" and by(after).startswith("controller/")
    assert after["involvedObject"] == elected["involvedObject"]
    term = int(after["message"].split("term ")[1].split(",")[0])
    assert term > int(elected["message"].split("term ")[1].split(",")[0])
    assert vlab.status().get("leader") == after["source"]["node"]


def test_an_agent_records_its_stop_and_its_starts(vlab: VigilLab, observer: VipObserver) -> None:
    assert vlab.apply(vlab.web_group()).code == 0
    active = vlab.wait_running("web", 30)
    pid = agent_pid(vlab, active)
    assert pid is not None
    one_of(vlab, "AgentStarted", 20, source=f"agent/{active}")
    os.kill(pid, signal.SIGTERM)
    stopping = one_of(vlab, "AgentStopping", 20, source=f"agent/{active}")
    assert stopping["involvedObject"] == {"kind": "Node", "name": active}
    assert "(SIGTERM); stopping: web" in stopping["message"], stopping
    # The node's init starts it again; this agent finds nothing running (the last one
    # stopped it all).
    restarted = wait_until(
        "the agent restarted", lambda: (p := agent_pid(vlab, active)) != pid and p, 20
    )
    started = one_of(vlab, "AgentStarted", 30, source=f"agent/{active}", after=written(stopping))
    assert started["message"].endswith("adopted: nothing"), started
    # SIGKILL leaves the group running: the next agent says it adopted it.
    running = vlab.wait_running("web", 30)
    killed = agent_pid(vlab, running)
    assert killed is not None
    before_kill = datetime.now(UTC)
    os.kill(killed, signal.SIGKILL)
    adopted = one_of(vlab, "AgentStarted", 30, source=f"agent/{running}", after=before_kill)
    sys.stderr.write(
        f"\n{active}: {stopping['message']} / {started['message']} (agent {restarted});"
        f" {running}: {adopted['message']}\n"
    )
    assert adopted["message"].endswith("adopted: web"), adopted
    assert observer.holders() <= {running}
    # A restarted agent inherits its serving lease: a restart is no loss of it.
    assert events(vlab, "ServingLost") == []


def test_a_node_cut_off_records_its_lost_lease_once_it_is_back(
    vlab: VigilLab, observer: VipObserver
) -> None:
    assert vlab.apply(vlab.web_group()).code == 0
    active = vlab.wait_running("web", 30)
    others = [n for n in vlab.nodes if n != active]
    observer.wait_for(lambda h: h == {active}, within=5)
    cut = datetime.now(UTC)
    vlab.lab.partition(f"{active} / {','.join(others)}")
    try:
        observer.wait_for(lambda h: active not in h, within=10)
        vlab.wait_running("web", 30, not_on=active)
        time.sleep(1.0)
    finally:
        vlab.lab.heal()
    lost = one_of(vlab, "ServingLost", 60, source=f"agent/{active}")
    sys.stderr.write(f"\n{active} cut off, healed: {lost['message']}\n")
    assert lost["type"] == "Warning"
    assert lost["involvedObject"] == {"kind": "Node", "name": active}
    assert f"{active} lost its serving lease at " in lost["message"]
    assert "and stopped: web;" in lost["message"], lost
    assert "reached the store at " in lost["message"]
    lost_at = datetime.fromisoformat(lost["message"].split("serving lease at ")[1].split(" ")[0])
    assert cut <= lost_at <= written(lost)
    time.sleep(3.0)
    # Once per loss: later attempts do not record it again.
    assert [e["message"] for e in events(vlab, "ServingLost")] == [lost["message"]]
