"""Cross-object rules: each one refuses a bad state with a precise path and a fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controller.api.decode import decode
from controller.api.manifest import load
from controller.api.meta import Object
from controller.apply.validation import Finding, validate_state
from tests.paths import EXAMPLES


def example(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    docs = load([str(EXAMPLES / name)])
    return {(d.data["kind"], d.data["metadata"]["name"]): d.data for d in docs}


def findings(docs: dict[tuple[str, str], dict[str, Any]]) -> list[Finding]:
    objects: dict[tuple[str, str], Object] = {k: decode(v) for k, v in docs.items()}
    return validate_state(objects)


def messages(docs: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    return {f"{f.kind}/{f.name}:{f.problem.dotted}": f.problem.message for f in findings(docs)}


@pytest.mark.parametrize("scenario", ["pg", "web"])
def test_shipped_examples_are_valid(scenario: str) -> None:
    assert findings(example(scenario)) == []


@pytest.fixture
def pg() -> dict[tuple[str, str], dict[str, Any]]:
    return copy.deepcopy(example("pg"))


def test_group_on_unknown_node(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    pg["ResourceGroup", "pg"]["spec"]["placement"]["nodes"][1]["name"] = "host-x"
    found = messages(pg)
    key = "ResourceGroup/pg:spec.placement.nodes[1].name"
    assert "node 'host-x' is not in Cluster 'pg-cluster' (nodes: host-m, host-s)" in found[key]


def test_references_without_a_cluster(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    del pg["Cluster", "pg-cluster"]
    found = messages(pg)
    assert "no Cluster object lists the nodes" in found["FenceDevice/bmc-host-m:spec.targets[0]"]


def test_dangling_volume_reference(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    del pg["ReplicatedVolume", "pgdata"]
    found = messages(pg)
    assert (
        "ReplicatedVolume 'pgdata' does not exist"
        in found["ResourceGroup/pg:spec.resources[0].volume.name"]
    )
    assert "does not exist" in found["ResourceGroup/pg:spec.resources[1].filesystem.device"]


def test_mount_before_promote_is_refused(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    resources = pg["ResourceGroup", "pg"]["spec"]["resources"]
    resources[0], resources[1] = resources[1], resources[0]
    found = messages(pg)
    assert (
        "must be promoted before it is mounted"
        in found["ResourceGroup/pg:spec.resources[0].filesystem.device"]
    )


def test_volume_replicas_on_distinct_nodes(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    replicas = pg["ReplicatedVolume", "pgdata"]["spec"]["replicas"]
    replicas[1]["node"] = "host-m"
    replicas[1]["address"] = replicas[0]["address"]
    found = messages(pg)
    assert (
        "replicas must be on distinct nodes"
        in found["ReplicatedVolume/pgdata:spec.replicas[1].node"]
    )
    assert "already used" in found["ReplicatedVolume/pgdata:spec.replicas[1].address"]


def test_group_allowed_where_the_volume_is_not(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    pg["Cluster", "pg-cluster"]["spec"]["nodes"].append({"name": "host-w", "address": "10.9.9.9"})
    pg["Cluster", "pg-cluster"]["spec"]["quorum"]["mode"] = "majority"
    pg["FenceDevice", "bmc-host-s"]["spec"]["targets"].append("host-w")
    pg["ResourceGroup", "pg"]["spec"]["placement"]["nodes"].append({"name": "host-w"})
    found = messages(pg)
    assert "volume 'pgdata' has no replica there" in found["ResourceGroup/pg:spec.placement.nodes"]


def test_unrestricted_group_with_a_volume(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    pg["ResourceGroup", "pg"]["spec"]["placement"]["restricted"] = False
    found = messages(pg)
    assert "set restricted: true" in found["ResourceGroup/pg:spec.placement.restricted"]


def _second_group(pg: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    other = copy.deepcopy(pg["ResourceGroup", "pg"])
    other["metadata"]["name"] = "pg2"
    other["spec"]["resources"] = [r for r in other["spec"]["resources"] if "volume" not in r]
    other["spec"]["resources"][0]["filesystem"]["device"] = "/dev/sdc1"
    pg["ResourceGroup", "pg2"] = other
    return other


def test_two_groups_cannot_claim_one_vip_or_mount(
    pg: dict[tuple[str, str], dict[str, Any]],
) -> None:
    other = _second_group(pg)
    other["spec"]["resources"][1]["ip"]["address"] = "192.168.1.10/16"  # same IP, other prefix
    found = messages(pg)
    # Both claimants are told, so an apply of either names the one in its own file.
    assert (
        "address 192.168.1.10 is also claimed by ResourceGroup 'pg' (spec.resources[2])"
        in found["ResourceGroup/pg2:spec.resources[1].ip.address"]
    )
    assert (
        "address 192.168.1.10 is also claimed by ResourceGroup 'pg2' (spec.resources[1])"
        in found["ResourceGroup/pg:spec.resources[2].ip.address"]
    )
    assert (
        "mount point /srv/pg is also claimed"
        in found["ResourceGroup/pg2:spec.resources[0].filesystem.mountPoint"]
    )


def test_a_volume_serves_one_group(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    other = copy.deepcopy(pg["ResourceGroup", "pg"])
    other["metadata"]["name"] = "pg2"
    other["spec"]["resources"] = [other["spec"]["resources"][0]]
    pg["ResourceGroup", "pg2"] = other
    found = messages(pg)
    assert (
        "already used by ResourceGroup 'pg'"
        in found["ResourceGroup/pg2:spec.resources[0].volume.name"]
    )


def test_fencing_must_cover_every_server(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    del pg["FenceDevice", "bmc-host-s"]
    found = messages(pg)
    assert "no FenceDevice targets node 'host-s'" in found["Cluster/pg-cluster:spec.nodes[1].name"]
    pg["Cluster", "pg-cluster"]["spec"]["fencing"]["enabled"] = False
    # Off, no device is needed, but two-node mode (this example's) cannot do without.
    assert list(messages(pg)) == ["Cluster/pg-cluster:spec.fencing.enabled"]
    pg["Cluster", "pg-cluster"]["spec"]["quorum"]["mode"] = "majority"
    pg["Cluster", "pg-cluster"]["spec"]["nodes"].append(
        {"name": "w", "address": "10.0.0.9", "role": "witness"}
    )
    assert findings(pg) == []


@pytest.mark.parametrize(
    ("timing", "path", "fragment"),
    [
        (
            {"keepalive": "500ms", "warntime": "600ms", "deadtime": "1s"},
            "spec.timing.deadtime",
            "deadtime must exceed 2 x keepalive",
        ),
        (
            {"keepalive": "200ms", "warntime": "2s", "deadtime": "1s"},
            "spec.timing.warntime",
            "warntime must be above keepalive and below deadtime",
        ),
        (
            {"deadtime": "5s", "warntime": "1s", "initdead": "2s"},
            "spec.timing.initdead",
            "initdead must be at least deadtime",
        ),
    ],
)
def test_incoherent_timings(
    pg: dict[tuple[str, str], dict[str, Any]], timing: dict[str, str], path: str, fragment: str
) -> None:
    pg["Cluster", "pg-cluster"]["spec"]["timing"] = timing
    assert fragment in messages(pg)[f"Cluster/pg-cluster:{path}"]


def test_quorum_modes_match_the_member_count(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    pg["Cluster", "pg-cluster"]["spec"]["quorum"]["mode"] = "majority"
    assert (
        "use mode two-node, or add a third member"
        in messages(pg)["Cluster/pg-cluster:spec.quorum.mode"]
    )
    web = copy.deepcopy(example("web"))
    web["Cluster", "web-cluster"]["spec"]["quorum"]["mode"] = "two-node"
    assert (
        "two-node mode needs exactly two server nodes"
        in messages(web)["Cluster/web-cluster:spec.quorum.mode"]
    )


def test_two_node_mode_needs_fencing(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    pg["Cluster", "pg-cluster"]["spec"]["fencing"]["enabled"] = False
    assert "two-node mode needs fencing" in messages(pg)["Cluster/pg-cluster:spec.fencing.enabled"]


def test_two_node_mode_needs_more_than_a_watchdog(
    pg: dict[tuple[str, str], dict[str, Any]],
) -> None:
    del pg["FenceDevice", "bmc-host-s"]
    pg["FenceDevice", "wd"] = _watchdog(["host-s"], "10s")
    found = messages(pg)
    assert "only a watchdog targets node 'host-s'" in found["Cluster/pg-cluster:spec.nodes[1].name"]
    assert "Cluster/pg-cluster:spec.nodes[0].name" not in found  # host-m has its BMC


def test_duplicate_node_names_and_addresses(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    nodes = pg["Cluster", "pg-cluster"]["spec"]["nodes"]
    nodes[1]["name"] = "host-m"
    nodes[1]["address"] = nodes[0]["address"]
    found = messages(pg)
    assert "already used by spec.nodes[0]" in found["Cluster/pg-cluster:spec.nodes[1].name"]
    assert "already used by spec.nodes[0]" in found["Cluster/pg-cluster:spec.nodes[1].address"]


def test_group_references_and_cycles() -> None:
    web = copy.deepcopy(example("web"))
    web["ResourceGroup", "api"]["spec"]["dependsOn"] = ["cache", "ghost"]
    found = messages(web)
    assert "ResourceGroup 'ghost' does not exist" in found["ResourceGroup/api:spec.dependsOn[1]"]
    cycles = [m for m in found.values() if "dependency cycle" in m]
    assert cycles == ["dependency cycle: api -> cache -> api; no group could start"]


def test_anti_and_colocation_of_the_same_group() -> None:
    web = copy.deepcopy(example("web"))
    web["ResourceGroup", "www"]["spec"]["colocate"] = ["api"]
    assert (
        "in both colocate and antiColocate" in messages(web)["ResourceGroup/www:spec.antiColocate"]
    )


def test_fence_device_agent_requirements() -> None:
    web = copy.deepcopy(example("web"))
    del web["FenceDevice", "redfish"]["spec"]["address"]
    web["FenceDevice", "redfish"]["spec"]["hostMap"]["web-9"] = "x"
    found = messages(web)
    assert found["FenceDevice/redfish:spec.address"] == "agent redfish needs address"
    assert "'web-9' is mapped but not in targets" in found["FenceDevice/redfish:spec.hostMap.web-9"]


def _watchdog(targets: list[str], timeout: str) -> dict[str, Any]:
    return {
        "apiVersion": "ha.vigil.dev/v1alpha1",
        "kind": "FenceDevice",
        "metadata": {"name": "wd"},
        "spec": {"agent": "watchdog", "targets": targets, "timeout": timeout},
    }


def test_a_watchdog_fences_one_node_with_a_timeout_the_kernel_takes() -> None:
    web = copy.deepcopy(example("web"))
    web["FenceDevice", "wd"] = _watchdog(["web-1"], "10s")
    assert not any(k.startswith("FenceDevice/wd") for k in messages(web))
    web["FenceDevice", "wd"] = _watchdog(["web-1", "web-2"], "1500ms")
    found = messages(web)
    assert "give exactly one target" in found["FenceDevice/wd:spec.targets"]
    assert "whole seconds from 1 to 65535" in found["FenceDevice/wd:spec.timeout"]
    assert "got 1.5 s" in found["FenceDevice/wd:spec.timeout"]
    web["FenceDevice", "wd"] = _watchdog(["web-1"], "20h")
    assert "got 72000 s" in messages(web)["FenceDevice/wd:spec.timeout"]


def test_discard_node_policy_names_a_replica(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    pg["ReplicatedVolume", "pgdata"]["spec"]["splitBrain"]["afterSB0Pri"] = "discard-node-web-1"
    assert (
        "'web-1' holds no replica"
        in messages(pg)["ReplicatedVolume/pgdata:spec.splitBrain.afterSB0Pri"]
    )


def test_duplicate_resource_names_in_a_group(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    resources = pg["ResourceGroup", "pg"]["spec"]["resources"]
    resources[3]["name"] = "ip-192-168-1-10"
    assert (
        "already used by spec.resources[2]"
        in messages(pg)["ResourceGroup/pg:spec.resources[3].name"]
    )


def test_witness_runs_no_resources() -> None:
    web = copy.deepcopy(example("web"))
    web["Cluster", "web-cluster"]["spec"]["nodes"][2]["role"] = "witness"
    assert (
        "is a witness and runs no resources"
        in messages(web)["ResourceGroup/www:spec.placement.nodes[2].name"]
    )


def test_group_whose_nodes_exclude_both_replicas(pg: dict[tuple[str, str], dict[str, Any]]) -> None:
    pg["Cluster", "pg-cluster"]["spec"]["nodes"].append({"name": "host-w", "address": "10.9.9.9"})
    pg["Cluster", "pg-cluster"]["spec"]["quorum"]["mode"] = "majority"
    pg["FenceDevice", "bmc-host-s"]["spec"]["targets"].append("host-w")
    pg["ResourceGroup", "pg"]["spec"]["placement"]["nodes"] = [{"name": "host-w"}]
    found = messages(pg)["ResourceGroup/pg:spec.placement.nodes"]
    assert (
        "the group can run on none of the replica nodes of volume 'pgdata' (host-m, host-s): "
        "placement.nodes lists only host-w; list the replica nodes instead"
    ) in found
    assert "has no replica there" not in found
