"""What the API describes but no node can do yet is refused, field by field, with the way
to do it today; everything else passes."""

from __future__ import annotations

from controller.api.availability import unavailable
from controller.api.decode import decode
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


def test_the_seed_scenario_asks_only_for_what_is_not_built_yet() -> None:
    # Replicated volumes and volume resources run (nodeagent/volumes/, actuators/volume.py);
    # two-node mode and serial heartbeat links too.
    found = refusals(str(EXAMPLES / "pg"))
    assert sorted(found) == ["ResourceGroup/pg"]
    group = found["ResourceGroup/pg"]
    assert group[0].startswith("spec.resources[1].filesystem:")


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
