"""What keeps a resource from running twice in this cluster, in words. Pure.

`ha status` and `ha describe cluster` say exactly this. Three layers: the serving lease (a
node no majority hears stops its resources before the others may start them,
docs/safety.md); the lease enforcer, a process apart from the agent that removes floating
IPs and kills exec services when the lease ends even if the agent is dead or frozen
(nodeagent/enforcer.py); and, with spec.fencing.enabled, fencing: a lost node's groups are
recovered only after its FenceDevices powered it off and that was verified
(controller/leader/fencer.py). Services that systemd, an init script or an OCF agent runs
are stopped by the agent only: without fencing, a dead agent leaves them running.
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
    fencing: bool  # spec.fencing.enabled: recovery waits for a verified fence
    fence_devices: list[str]

    def _fencing_words(self) -> str:
        if self.fencing:
            return f"fencing on ({', '.join(self.fence_devices)})"
        if self.fence_devices:
            count = len(self.fence_devices)
            return (
                f"fencing off (spec.fencing.enabled: false; {count} FenceDevice"
                f"{'s' * (count > 1)} used only by `ha fence`)"
            )
        return "fencing off (spec.fencing.enabled: false)"

    def summary(self) -> str:
        """One line for `ha status`."""
        agent = ""
        if self.agent_only:
            guarded = "fencing" if self.fencing else "the agent only"
            agent = f"; stopped by {guarded}: {', '.join(sorted(self.agent_only))}"
        return (
            "serving lease + lease enforcer (floating IPs, exec services)"
            f"{agent}; {self._fencing_words()}"
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
            if self.fencing:
                out.append(f"stopped by the agent, or by fencing its node: {groups}")
            else:
                out.append(
                    "agent only (a dead or frozen agent leaves them running until it is back):"
                    f" {groups}"
                )
        if self.fencing:
            out.append(
                "fencing: a lost node's groups are recovered only after "
                f"{', '.join(self.fence_devices)} powered it off and that was verified "
                "(or `ha fence --confirm`)"
            )
        else:
            out.append(
                "fencing: off (spec.fencing.enabled: false): a lost node's groups are "
                "recovered on the serving lease alone"
                + (
                    f"; devices for `ha fence`: {', '.join(self.fence_devices)}"
                    if self.fence_devices
                    else ""
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "servingLease": True,
            "leaseEnforcer": list(ENFORCED),
            "agentOnly": {g: list(r) for g, r in sorted(self.agent_only.items())},
            "fencing": {"enabled": self.fencing, "devices": list(self.fence_devices)},
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
        fencing=bool(cluster and cluster.spec.fencing.enabled),
        fence_devices=sorted(fences),
    )
