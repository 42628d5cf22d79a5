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


def test_the_seed_scenario_asks_for_two_parts_not_built_yet() -> None:
    # Two-node mode (nodeagent/two_node.py) and serial heartbeat links
    # (nodeagent/heartbeat/serial.py) are built: not refused.
    found = refusals(str(EXAMPLES / "pg"))
    assert sorted(found) == ["ReplicatedVolume/pgdata", "ResourceGroup/pg"]
    assert found["ReplicatedVolume/pgdata"][0].startswith("spec: ReplicatedVolume objects")
    group = found["ResourceGroup/pg"]
    assert group[0].startswith("spec.resources[0].volume: volume resources are not")
    assert group[1].startswith("spec.resources[1].filesystem.device: a filesystem on a volume:")
    assert "heartbeat:Filesystem" in group[1]


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
    ],
)
def test_a_filesystem_on_a_block_device_or_a_network_mount_is_accepted(
    filesystem: dict[str, object],
) -> None:
    # nodeagent/actuators/filesystem.py mounts them.
    assert unavailable(group_with(filesystem)) == []


def test_a_filesystem_on_a_volume_is_refused_until_volumes_run() -> None:
    found = unavailable(group_with({"device": "volume:pgdata"}))
    assert [p.dotted for p in found] == ["spec.resources[0].filesystem.device"]
    assert "/dev/drbd0" in found[0].message


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
