"""What `ha status` says protects the cluster matches what the node actually does."""

from __future__ import annotations

from pathlib import Path

from controller.api.cluster import Cluster
from controller.api.decode import decode
from controller.api.fencing import FenceDevice
from controller.api.group import Resource, ResourceGroup
from controller.api.manifest import load
from controller.status.protection import ENFORCED, protection
from nodeagent import enforcer
from nodeagent.actuators import ActuatorContext, default_registry
from nodeagent.actuators.service_exec import ExecActuator
from tests.paths import EXAMPLES, PG_TODAY


def objects(directory: Path) -> tuple[Cluster, dict[str, FenceDevice], dict[str, ResourceGroup]]:
    items = [decode(d.data) for d in load([str(directory)])]
    cluster = next(o for o in items if isinstance(o, Cluster))
    fences = {o.name: o for o in items if isinstance(o, FenceDevice)}
    groups = {o.name: o for o in items if isinstance(o, ResourceGroup)}
    return cluster, fences, groups


def test_the_web_scenario_names_what_only_the_agent_stops() -> None:
    guard = protection(*objects(EXAMPLES / "web"))
    assert guard.agent_only == {"cache": ["service-dummy"], "www": ["service-apache2"]}
    assert guard.fence_devices == ["redfish"] and guard.fencing
    assert "stopped by fencing: cache, www" in guard.summary()
    assert guard.summary().endswith("; fencing on (redfish)")


def test_without_fencing_or_devices_it_says_so_plainly() -> None:
    cluster, _, groups = objects(PG_TODAY)
    fencing = cluster.spec.fencing.model_copy(update={"enabled": False})
    off = cluster.model_copy(update={"spec": cluster.spec.model_copy(update={"fencing": fencing})})
    guard = protection(off, {}, groups)
    assert guard.summary().endswith("; fencing off (spec.fencing.enabled: false)")
    assert "agent only" in guard.lines()[-2]
    assert guard.lines()[-1].startswith("fencing: off")
    assert guard.to_json()["fencing"] == {"enabled": False, "devices": []}
    assert protection(None, {}, {}).summary().startswith("serving lease + lease enforcer")


def test_the_enforced_kinds_are_what_the_enforcer_stops(tmp_path: Path) -> None:
    # The enforcer removes the addresses the reconciler lists in vips.json (ip resources)
    # and kills the process groups recorded under exec/ (only the exec actuator records).
    assert enforcer.VIPS_FILE == "vips.json"
    assert set(ENFORCED) == {"ip", "service.exec"}
    exec_resource = Resource.model_validate({"service": {"exec": {"command": ["true"]}}})
    actuator = default_registry.create(exec_resource, ActuatorContext("g/x", run_dir=tmp_path))
    assert isinstance(actuator, ExecActuator) and actuator.state_dir == tmp_path / "exec"
    assert '(run_dir / "exec")' in Path(enforcer.__file__).read_text()
