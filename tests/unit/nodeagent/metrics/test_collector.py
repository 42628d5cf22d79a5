"""What a scrape reads from the agent's state: the heartbeat copy, the informer, the
volume supervisor's last replica statuses; and that every catalog family is exported
at every moment, even before the parts it reads have started."""

from __future__ import annotations

import math
from dataclasses import replace

from prometheus_client import CollectorRegistry

from controller.store import keys
from nodeagent.metrics import catalog
from nodeagent.metrics.collector import AgentCollector, Sources
from nodeagent.metrics.endpoint import agent_registry
from tests.unit.nodeagent.metrics.helpers import Copy, link, membership, peer, samples, scrape


def test_every_catalog_family_is_exported_before_anything_started() -> None:
    lk, _end = link()
    families = scrape(agent_registry(Sources("n1", "0.1", lk)))
    assert {name: f.type for name, f in families.items()} == {m.family: m.kind for m in catalog.ALL}
    assert samples(families["vigil_agent_info"]) == {(("node", "n1"), ("version", "0.1")): 1}
    assert samples(families["vigil_node_serving"]) == {(): 0}
    assert samples(families["vigil_serving_lease_remaining_seconds"]) == {(): 0}


def test_heartbeats_lease_leader_groups_from_the_agent_state() -> None:
    lk, _end = link()
    n2 = replace(peer("up", eth0=True, eth1=False), ages={"eth0": 0.1, "eth1": 4.0},
                 rtt={"eth0": 0.002}, missed={"eth0": 3})  # fmt: skip
    state = membership({"n2": n2, "n3": peer("dead", lost=True)}, expiry=1000.0)
    lk.state = replace(state, rejected={"eth0": {"bad-mac": 2, "replay": 1}})
    copy = Copy()
    copy.set("leader", {"node": "n1", "lease": 5})
    copy.set("placement/web", {"group": "web", "node": "n2", "epoch": 3, "reason": "r"})
    copy.set("status/ResourceGroup/web", {"phase": "Running", "node": "n2"})
    copy.set("status/Node/n3", {"phase": "Lost"})
    sources = Sources("n1", "0.1", lk, informer=copy.informer, clock=lambda: 998.5)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(sources))
    f = scrape(registry)
    assert samples(f["vigil_node_serving"]) == {(): 1}
    assert samples(f["vigil_serving_lease_remaining_seconds"]) == {(): 1.5}
    assert math.isnan(samples(f["vigil_serving_lease_age_seconds"])[()])  # no timing known
    assert samples(f["vigil_peer_state"])[(("peer", "n3"), ("state", "dead"))] == 1
    assert samples(f["vigil_peer_state"])[(("peer", "n3"), ("state", "up"))] == 0
    assert samples(f["vigil_peer_lost"]) == {(("peer", "n2"),): 0, (("peer", "n3"),): 1}
    up = samples(f["vigil_heartbeat_link_up"])
    assert up[(("link", "eth0"), ("peer", "n2"))] == 1
    assert up[(("link", "eth1"), ("peer", "n2"))] == 0
    assert samples(f["vigil_heartbeat_last_heard_seconds"])[(("link", "eth1"), ("peer", "n2"))] == 4
    assert samples(f["vigil_heartbeat_rtt_seconds"]) == {(("link", "eth0"), ("peer", "n2")): 0.002}
    assert samples(f["vigil_heartbeat_missed"])[(("link", "eth0"), ("peer", "n2"))] == 3
    assert samples(f["vigil_heartbeat_rejected"]) == {
        (("link", "eth0"), ("reason", "bad-mac")): 2,
        (("link", "eth0"), ("reason", "replay")): 1,
    }
    assert samples(f["vigil_leader"]) == {(("node", "n1"),): 1}
    assert samples(f["vigil_is_leader"]) == {(): 1}
    assert samples(f["vigil_group_placed"]) == {(("group", "web"), ("node", "n2")): 1}
    phases = samples(f["vigil_group_phase"])
    assert phases[(("group", "web"), ("phase", "Running"))] == 1
    assert sum(phases.values()) == 1 and len(phases) == 8
    assert samples(f["vigil_node_phase"])[(("node", "n3"), ("phase", "Lost"))] == 1


def test_a_group_disabled_in_its_spec_is_told_apart() -> None:
    lk, _end = link()
    copy = Copy()
    for name, enabled in (("web", True), ("old", False)):
        spec = {"enabled": enabled, "resources": [{"ip": {"address": "10.0.0.9/24"}}]}
        group = {"apiVersion": "ha.vigil.dev/v1alpha1", "kind": "ResourceGroup",
                 "metadata": {"name": name}, "spec": spec}  # fmt: skip
        copy.set(keys.spec_key("ResourceGroup", name), group)
        copy.set(f"status/ResourceGroup/{name}", {"phase": "Stopped"})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(Sources("n1", "0.1", lk, informer=copy.informer)))
    f = scrape(registry)
    assert samples(f["vigil_group_enabled"]) == {(("group", "old"),): 0, (("group", "web"),): 1}
    copy.set(keys.spec_key("ResourceGroup", "old"), None)  # deleted: its series goes
    assert samples(scrape(registry)["vigil_group_enabled"]) == {(("group", "web"),): 1}


def test_volumes_from_the_supervisor_last_status() -> None:
    lk, _end = link()
    status = {
        "volume": "data", "protocol": "C", "role": "Primary", "disk": "UpToDate",
        "connection": "SyncSource", "peer_role": "Secondary", "peer_disk": "Inconsistent",
        "out_of_sync_bytes": 4096,
        "sync": {"kind": "SyncSource", "total_bytes": 8192, "done_bytes": 4096,
                 "rate_bytes_per_s": 1024.0, "eta_seconds": 4.0},
        "wire": {"bytes_in": 10, "bytes_out": 9000, "connections": 1},
        "resync_rate": 0,
    }  # fmt: skip
    volumes = {"data": status, "logs": None}
    sources = Sources("n1", "0.1", lk, volumes=lambda: volumes)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(sources))
    f = scrape(registry)
    data = (("volume", "data"),)
    assert samples(f["vigil_volume_status_up"]) == {data: 1, (("volume", "logs"),): 0}
    assert samples(f["vigil_volume_role"])[(("role", "Primary"), *data)] == 1
    assert samples(f["vigil_volume_connection_state"])[(("state", "SyncSource"), *data)] == 1
    assert samples(f["vigil_volume_disk_state"])[(("state", "UpToDate"), *data)] == 1
    assert samples(f["vigil_volume_out_of_sync_bytes"]) == {data: 4096}
    assert samples(f["vigil_volume_sync_rate_bytes_per_second"]) == {data: 1024}
    assert samples(f["vigil_volume_sync_eta_seconds"]) == {data: 4}
    assert samples(f["vigil_volume_wire_sent_bytes"]) == {data: 9000}
