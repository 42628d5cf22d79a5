"""The scheduler's input from the API's objects and a heartbeat view. Pure.

The rest of the scheduler takes plain values and never sees the API models (so tests drive
it with plain values); this adapter is the one place both meet. The leader's decision, the
dry run of ``ha apply`` and the node's start order all go through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from controller.api.cluster import Cluster
from controller.api.group import VOLUME_DEVICE_PREFIX, ResourceGroup
from controller.api.liveness import UNKNOWN, Liveness
from controller.api.node import Node
from controller.api.volume import ReplicaStatus
from controller.scheduler.model import Group, Move, NodeState, ReplicaReport, VolumeFacts
from controller.scheduler.order import start_order


class VolumeSource(Protocol):
    """One volume as the cluster view holds it (``controller.store.view.VolumeState``,
    which the scheduler may not import: the store and the scheduler are independent)."""

    @property
    def name(self) -> str: ...
    @property
    def replicas(self) -> tuple[str, ...]: ...
    @property
    def entries(self) -> Mapping[str, ReplicaStatus]: ...
    def outdated_nodes(self) -> tuple[str, ...]: ...
    def outdated_note(self) -> str: ...


def volumes_used(group: ResourceGroup) -> tuple[str, ...]:
    """The volumes a group promotes (``volume:``) or mounts (``device: volume:V``)."""
    names: list[str] = []
    for resource in group.spec.resources:
        if resource.volume is not None:
            names.append(resource.volume.name)
        device = resource.filesystem.device if resource.filesystem is not None else ""
        if device.startswith(VOLUME_DEVICE_PREFIX):
            names.append(device[len(VOLUME_DEVICE_PREFIX) :])
    return tuple(dict.fromkeys(names))


def to_replica_report(entry: ReplicaStatus) -> ReplicaReport:
    return ReplicaReport(
        node=entry.node,
        role=entry.role,
        disk=entry.disk_state,
        connection=entry.connection,
        syncing=entry.sync.direction if entry.sync is not None else None,
        split_brain=entry.split_brain,
    )


def volume_facts(volumes: Mapping[str, VolumeSource]) -> dict[str, VolumeFacts]:
    """The scheduler's view of each volume, by name."""
    return {
        name: VolumeFacts(
            name=name,
            replicas=volume.replicas,
            reports=tuple(to_replica_report(e) for _, e in sorted(volume.entries.items())),
            outdated=volume.outdated_nodes(),
            outdated_note=volume.outdated_note(),
        )
        for name, volume in volumes.items()
    }


def to_scheduler_group(group: ResourceGroup) -> Group:
    spec = group.spec
    move = spec.placement.move_to
    timeout = spec.failure_timeout.total_seconds()
    return Group(
        name=group.name,
        nodes=tuple((n.name, n.score) for n in spec.placement.nodes),
        restricted=spec.placement.restricted,
        stickiness=spec.placement.stickiness,
        migration_threshold=spec.migration_threshold,
        failure_timeout=timeout if timeout > 0 else None,
        depends_on=tuple(spec.depends_on),
        colocate=tuple(spec.colocate),
        anti_colocate=tuple(spec.anti_colocate),
        enabled=spec.enabled,
        move_to=(Move(move.node, move.until.timestamp() if move.until else None) if move else None),
        volumes=volumes_used(group),
    )


def node_states(
    cluster: Cluster | None,
    nodes: Mapping[str, Node],
    liveness: Mapping[str, Liveness],
    awaiting_fence: frozenset[str] = frozenset(),
) -> list[NodeState]:
    """Every server of the Cluster spec as the scheduler sees it (witnesses run nothing).
    ``awaiting_fence``: lost nodes not yet fenced, whose groups must wait."""
    if cluster is None:
        return []
    states = []
    for member in cluster.spec.nodes:
        if member.role != "server":
            continue
        seen = liveness.get(member.name, UNKNOWN)
        node = nodes.get(member.name)
        standby = bool(node and node.spec.standby)
        # Silent but not provably stopped: whatever runs there must wait (docs/safety.md).
        fencing = member.name in awaiting_fence
        pending = (not seen.alive and not seen.lost) or fencing
        waits = "fenced" if fencing else "declared lost"
        states.append(NodeState(member.name, seen.alive, standby, pending, waits))
    return states


def group_start_order(groups: Iterable[ResourceGroup]) -> list[str]:
    """Group names, dependencies first (raises on a dependency cycle)."""
    return start_order([to_scheduler_group(g) for g in groups])
