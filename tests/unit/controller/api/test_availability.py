"""What the API describes but no node can do yet is refused, field by field, with the way
to do it today; everything else passes."""

from __future__ import annotations

import pytest

from controller.api.availability import unavailable
from controller.api.decode import decode
from controller.api.group import ResourceGroup
from controller.api.manifest import load
from tests.paths import EXAMPLES, PG_TODAY


def refusals(directory: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for document in load([directory]):
        obj = decode(document.data)
        found = unavailable(obj)
        if found:
            out[f"{obj.KIND}/{obj.name}"] = [f"{p.dotted}: {p.message}" for p in found]
    return out


def test_the_seed_scenario_is_accepted_now_that_every_part_runs() -> None:
    # Replicated volumes, volume and filesystem resources run (nodeagent/volumes/,
    # actuators/volume.py, filesystem.py); two-node mode and serial heartbeat links too.
    found = refusals(str(EXAMPLES / "pg"))
    assert found == {}


def test_a_volume_size_is_refused_until_replicas_can_use_part_of_a_disk() -> None:
    volume = decode(
        {
            "apiVersion": "ha.vigil.dev/v1alpha1",
            "kind": "ReplicatedVolume",
            "metadata": {"name": "v"},
            "spec": {
                "size": "1G",
                "replicas": [
                    {"node": "a", "disk": "/dev/sdb", "address": "10.0.0.1:7789"},
                    {"node": "b", "disk": "/dev/sdb", "address": "10.0.0.2:7789"},
                ],
            },
        }
    )
    (problem,) = unavailable(volume)
    assert problem.dotted == "spec.size"
    assert "Remove size" in problem.message


def group_with(filesystem: dict[str, object]) -> ResourceGroup:
    obj = decode(
        {
            "apiVersion": "ha.vigil.dev/v1alpha1",
            "kind": "ResourceGroup",
            "metadata": {"name": "g"},
            "spec": {"resources": [{"filesystem": {"mountPoint": "/srv/data", **filesystem}}]},
        }
    )
    assert isinstance(obj, ResourceGroup)
    return obj


@pytest.mark.parametrize(
    "filesystem",
    [
        {"device": "/dev/sdb1"},
        {"device": "/dev/loop3", "fsType": "xfs", "fsck": "never"},
        {"device": "nfs1:/export/data", "fsType": "nfs4"},
        {"device": "//files/share", "fsType": "cifs", "options": ["ro"]},
        {"device": "volume:pgdata"},
    ],
)
def test_a_filesystem_on_a_block_device_a_volume_or_a_network_mount_is_accepted(
    filesystem: dict[str, object],
) -> None:
    # nodeagent/actuators/filesystem.py mounts them.
    assert unavailable(group_with(filesystem)) == []


def test_what_runs_today_passes() -> None:
    assert refusals(str(PG_TODAY)) == {}
    assert refusals(str(EXAMPLES / "web")) == {}


def test_a_watchdog_device_is_accepted_now_that_nodes_arm_one() -> None:
    device = decode(
        {
            "apiVersion": "ha.vigil.dev/v1alpha1",
            "kind": "FenceDevice",
            "metadata": {"name": "wd"},
            "spec": {"agent": "watchdog", "targets": ["n1"]},
        }
    )
    # Nodes arm and pet it (nodeagent/selffence.py), the leader waits for it
    # (controller/leader/fencing_plan.py self_fenced).
    assert unavailable(device) == []
