"""What keeps a resource from running twice in this cluster today, in words. Pure.

`ha status` and `ha describe cluster` say exactly this, and not "fencing on": this version
never calls a fence device (STONITH comes with the fencing issue). What protects a cluster
now is the serving lease (a node no majority hears stops its resources before the others
may start them, docs/safety.md) and the lease enforcer, a process apart from the agent that
removes floating IPs and kills exec services when the lease ends even if the agent is dead
or frozen (nodeagent/enforcer.py). Services that systemd, an init script or an OCF agent
runs are stopped by the agent only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.api.cluster import Cluster
from controller.api.fencing import FenceDevice
from controller.api.group import Resource, ResourceGroup

# The resource kinds nodeagent/enforcer.py stops without the agent; kept equal to what the
# enforcer does by tests/unit/controller/cli/test_protection.py.
ENFORCED = ("ip", "service.exec")


def _kind(resource: Resource) -> str:
    if resource.service is not None:
        return f"service.{resource.service.variant}"
    return resource.type


@dataclass(frozen=True)
class Protection:
    agent_only: dict[str, list[str]]  # group -> its resources only the agent stops
    fencing_requested: bool
    unused_fence_devices: list[str]

    def summary(self) -> str:
        """One line for `ha status`."""
        fences = ""
        if self.unused_fence_devices:
            count = len(self.unused_fence_devices)
            fences = f"; {count} FenceDevice{'s' * (count > 1)} configured, never called"
        agent = ""
        if self.agent_only:
            agent = f"; agent only: {', '.join(sorted(self.agent_only))}"
        return (
            "serving lease + lease enforcer (floating IPs, exec services)"
            f"{agent}; no fencing in this version{fences}"
        )

    def lines(self) -> list[str]:
        """The long form, for `ha describe cluster`."""
        out = [
            "serving lease: a node that no majority hears stops its resources before the others"
            " may start them (docs/safety.md)",
            "lease enforcer: removes floating IPs and kills exec services when the lease ends,"
            " even if the agent is dead or frozen",
        ]
        if self.agent_only:
            groups = "; ".join(f"{g}: {', '.join(r)}" for g, r in sorted(self.agent_only.items()))
            out.append(
                "agent only (a dead or frozen agent leaves them running until it is back):"
                f" {groups}"
            )
        requested = " although spec.fencing.enabled is true" if self.fencing_requested else ""
        out.append(
            "fencing: not performed by this version: no fence device is ever called"
            f"{requested} (STONITH comes with the fencing issue)"
        )
        if self.unused_fence_devices:
            out.append(
                f"fence devices configured and unused: {', '.join(self.unused_fence_devices)}"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "servingLease": True,
            "leaseEnforcer": list(ENFORCED),
            "agentOnly": {g: list(r) for g, r in sorted(self.agent_only.items())},
            "fencing": {
                "requested": self.fencing_requested,
                "performed": False,
                "unusedDevices": list(self.unused_fence_devices),
            },
        }


def protection(
    cluster: Cluster | None,
    fences: Mapping[str, FenceDevice],
    groups: Mapping[str, ResourceGroup],
) -> Protection:
    agent_only: dict[str, list[str]] = {}
    for name, group in groups.items():
        unguarded = [r.resolved_name() for r in group.spec.resources if _kind(r) not in ENFORCED]
        if unguarded:
            agent_only[name] = unguarded
    return Protection(
        agent_only=agent_only,
        fencing_requested=bool(cluster and cluster.spec.fencing.enabled),
        unused_fence_devices=sorted(fences),
    )
