"""Bad documents get one precise message per problem: field path and what is expected."""

from typing import Any

import pytest

from controller.api.cluster import Cluster
from controller.api.decode import SchemaError, decode
from controller.api.group import ResourceGroup

API = "ha.vigil.dev/v1alpha1"


def group(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"resources": [{"ip": {"address": "10.0.0.10/24"}}]}
    base.update(spec)
    return {"apiVersion": API, "kind": "ResourceGroup", "metadata": {"name": "g"}, "spec": base}


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SchemaError) as info:
        decode(data)
    return {p.dotted: p.message for p in info.value.problems}


def test_a_valid_group_decodes_with_defaults() -> None:
    obj = decode(group())
    assert isinstance(obj, ResourceGroup)
    assert obj.spec.placement.stickiness == 100
    assert obj.spec.failure_timeout.total_seconds() == 600
    assert obj.spec.resources[0].ip is not None
    assert obj.spec.resources[0].ip.arp.count == 5


def test_unknown_api_version_and_kind() -> None:
    found = problems({"apiVersion": "ha.vigil.dev/v1", "kind": "Clustr"})
    assert "this Vigil serves ha.vigil.dev/v1alpha1" in found["apiVersion"]
    assert "did you mean 'Cluster'?" in found["kind"]


def test_missing_api_version_and_kind() -> None:
    found = problems({"metadata": {"name": "x"}})
    assert "write ha.vigil.dev/v1alpha1" in found["apiVersion"]
    assert "ResourceGroup" in found["kind"]


def test_unknown_field_suggests_the_close_one() -> None:
    found = problems(group(placement={"stickness": 5}))
    message = found["spec.placement.stickness"]
    assert "unknown field 'stickness'" in message
    assert "did you mean 'stickiness'?" in message
    assert "known fields: nodes, restricted, stickiness, moveTo" in message


def test_wrong_types_are_not_coerced() -> None:
    found = problems(group(migrationThreshold="3", enabled="yes"))
    assert found["spec.migrationThreshold"] == "expected an integer, got the string '3'"
    assert found["spec.enabled"] == "expected true or false, got the string 'yes'"


@pytest.mark.parametrize(
    ("resource", "path", "fragment"),
    [
        ({"ip": {"address": "10.0.0.300/24"}}, "spec.resources[0].ip.address", "invalid address"),
        ({"ip": {"address": "10.0.0.3"}}, "spec.resources[0].ip.address", "no prefix length"),
        (
            {"ip": {"address": "10.0.0.3/24", "interface": "a-very-long-interface"}},
            "spec.resources[0].ip.interface",
            "1 to 15 characters",
        ),
        (
            {"filesystem": {"device": "sdb1", "mountPoint": "/srv"}},
            "spec.resources[0].filesystem.device",
            "absolute path",
        ),
        (
            {"service": {"exec": {"command": ["x"], "stopTimeout": "10"}}},
            "spec.resources[0].service.exec.stopTimeout",
            "invalid duration",
        ),
        (
            {"service": {"lsb": "x"}, "probe": {"tcp": {"port": 70000}}},
            "spec.resources[0].probe.tcp.port",
            "less than or equal to 65535",
        ),
        ({"service": {}}, "spec.resources[0].service", "exactly one of systemd, lsb, ocf, exec"),
        (
            {"ip": {"address": "10.0.0.3/24"}, "service": {"lsb": "x"}},
            "spec.resources[0]",
            "exactly one of volume, filesystem, ip, service; found ip, service",
        ),
        (
            {"service": {"ocf": {"agent": "Dummy"}}},
            "spec.resources[0].service.ocf.agent",
            "should match pattern",
        ),
    ],
)
def test_invalid_resource_fields(resource: dict[str, Any], path: str, fragment: str) -> None:
    found = problems(group(resources=[resource]))
    assert fragment in found[path], found


def test_invalid_volume_fields() -> None:
    data = {
        "apiVersion": API,
        "kind": "ReplicatedVolume",
        "metadata": {"name": "Bad_Name"},
        "spec": {
            "protocol": "D",
            "resyncRate": "200MB",
            "replicas": [
                {"node": "a", "disk": "/dev/a", "address": "10.0.0.1:99999"},
                {"node": "b", "disk": "/dev/b", "address": "10.0.0.2", "metaDisk": "rel"},
            ],
            "splitBrain": {"afterSB0Pri": "discard-everything"},
        },
    }
    found = problems(data)
    assert "invalid name 'Bad_Name'" in found["metadata.name"]
    assert found["spec.protocol"] == "expected 'A', 'B' or 'C', got the string 'D'"
    assert "ambiguous size" in found["spec.resyncRate"]
    assert "ports are 1 to 65535" in found["spec.replicas[0].address"]
    assert "expected host:port" in found["spec.replicas[1].address"]
    assert "absolute path" in found["spec.replicas[1].metaDisk"]
    assert "discard-node-<node>" in found["spec.splitBrain.afterSB0Pri"]


def test_cluster_timings_need_units_and_ips_must_be_valid() -> None:
    data = {
        "apiVersion": API,
        "kind": "Cluster",
        "metadata": {"name": "c"},
        "spec": {
            "nodes": [{"name": "a", "address": "192.168.1.300"}],
            "timing": {"keepalive": 200},
        },
    }
    found = problems(data)
    assert "invalid IP address" in found["spec.nodes[0].address"]
    assert "needs a unit" in found["spec.timing.keepalive"]


def test_missing_required_field() -> None:
    data = {"apiVersion": API, "kind": "Cluster", "metadata": {"name": "c"}, "spec": {}}
    assert problems(data) == {"spec.nodes": "required field 'nodes' is missing"}


def test_round_trip_keeps_the_canonical_form() -> None:
    data = {
        "apiVersion": API,
        "kind": "Cluster",
        "metadata": {"name": "c"},
        "spec": {
            "nodes": [{"name": "a", "address": "fd00:0::1"}],
            "timing": {"keepalive": "0.2s", "deadtime": "1000ms"},
        },
    }
    obj = decode(data)
    assert isinstance(obj, Cluster)
    dumped = obj.to_dict()
    assert list(dumped) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert dumped["spec"]["nodes"][0]["address"] == "fd00::1"
    assert dumped["spec"]["timing"]["keepalive"] == "200ms"
    assert dumped["spec"]["timing"]["deadtime"] == "1s"
    assert decode(dumped).to_dict() == dumped
