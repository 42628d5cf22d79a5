"""Fencing on, three nodes: a lost node's groups start elsewhere only after its BMC
powered it off (verified); a BMC that does not answer keeps them where they are, and
`ha status` says why; `ha fence` powers a live node off on request."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from tests.integration.cluster.conftest import needs_root
from tests.integration.cluster.helpers import group, wait_until

from .conftest import needs_ipmi_sim

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]


def node_events(lab: VigilLab, node: str) -> list[dict[str, str]]:
    import json

    result = lab.ha("events", "node", node, "-o", "json")
    assert result.code == 0, result.err
    events: list[dict[str, str]] = json.loads(result.out)
    return events


def reasons(lab: VigilLab, node: str) -> list[str]:
    return [e["reason"] for e in node_events(lab, node)]


def fencing_of(lab: VigilLab, node: str) -> dict[str, object] | None:
    for record in lab.status()["fencing"]:
        if record["node"] == node:
            return dict(record)
    return None


def test_a_lost_node_is_fenced_then_its_group_recovered(
    fenced3: tuple[VigilLab, VipObserver],
) -> None:
    lab, observer = fenced3
    assert lab.apply(lab.web_group()).code == 0
    active = lab.wait_running("web", 30)
    lab.lab.kill(active)  # power loss, as the BMC sees it too
    survivor = lab.wait_running("web", 30, not_on=active)
    record = fencing_of(lab, active)
    assert record is not None and record["state"] in ("fenced", "rejoined"), record
    assert record["fencedBy"] == [f"bmc-{active}"]
    assert {"FenceRequested", "FenceDone", "FenceVerified"} <= set(reasons(lab, active))
    assert observer.holders() == {survivor}
    assert lab.lab.node_pid(active) is None  # fenced with action off: it stays off
    lab.lab.power_on(active)  # the operator powers it on again: it rejoins
    lab.wait_ready(60)
    wait_until(
        "the fence record marked rejoined",
        lambda: (fencing_of(lab, active) or {}).get("state") == "rejoined",
        30,
    )
    record = fencing_of(lab, active)
    assert record is not None and record["state"] == "rejoined", record


def test_a_fence_that_fails_holds_the_group_until_the_device_is_repaired(
    fenced3: tuple[VigilLab, VipObserver],
) -> None:
    lab, observer = fenced3
    assert lab.bmcs is not None
    assert lab.apply(lab.web_group()).code == 0
    active = lab.wait_running("web", 30)
    bmc = lab.bmcs.pids[active]
    os.kill(bmc, signal.SIGSTOP)  # the BMC hangs: no answer to anything
    try:
        lab.lab.kill(active)

        def failed() -> dict[str, object] | None:
            record = fencing_of(lab, active)
            return record if record is not None and record["state"] == "failed" else None

        record = wait_until("a failed fence", failed, 60)
        assert "ha fence --confirm" in str(record["message"])
        time.sleep(1.0)
        web = group(lab, "web")
        assert web["placed"] == active, web  # not recovered: stopped is better than doubled
        text = lab.ha("status").out
        assert f"waiting for lost {active} to be fenced: " in text, text
        assert f"bmc-{active}" in text and "failed" in text, text
        assert "FenceFailed" in reasons(lab, active)
    finally:
        os.kill(bmc, signal.SIGCONT)  # repaired
    survivor = lab.wait_running("web", 90, not_on=active)
    assert fencing_of(lab, active) is not None
    assert observer.holders() == {survivor}


def test_ha_fence_powers_a_live_node_off_and_its_group_moves(
    fenced3: tuple[VigilLab, VipObserver],
) -> None:
    lab, observer = fenced3
    assert lab.apply(lab.web_group()).code == 0
    lab.wait_running("web", 30)
    leader = lab.status()["leader"]
    target = next(n for n in lab.nodes if n != leader)  # the leader does not fence itself
    assert lab.ha("move", "web", target).code == 0
    wait_until(f"web on {target}", lambda: group(lab, "web")["running"] == target, 30)
    result = lab.ha("fence", target, timeout=90)
    assert result.code == 0, result.out + result.err
    assert f"node/{target}: fenced: off by bmc-{target}: verified off" in result.out
    survivor = lab.wait_running("web", 30, not_on=target)
    assert observer.holders() == {survivor}
    refused = lab.ha("fence", leader, timeout=60)
    assert refused.code != 0 and "does not fence its own node" in refused.out, refused
