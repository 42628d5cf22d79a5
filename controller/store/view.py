"""The cluster view: every spec, status and record the readers of the cluster need, typed.

One builder (``Informer.view()``) serves the leader's decisions, ``ha status``,
``ha apply --dry-run``, the metrics and every agent's status page, so that they cannot disagree
about what the store holds. Pure data: building it costs no round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from controller.api.cluster import Cluster
from controller.api.fencing import FenceDevice
from controller.api.group import ResourceGroup, ResourceGroupStatus
from controller.api.meta import Object
from controller.api.node import Node, NodeStatus
from controller.api.volume import ReplicaStatus, ReplicatedVolume, ReplicatedVolumeStatus
from controller.store.fence_record import FenceRecord
from controller.store.outdate_record import OutdateRecord
from controller.store.records import FailureRecord, LeaderRecord, NodeRecord, PlacementRecord


@dataclass(frozen=True)
class VolumeState:
    """One replicated volume as the store knows it: where its replicas are, what each
    replica last reported, and blockrepl's outdate record if there is one."""

    name: str
    replicas: tuple[str, ...]  # nodes holding a replica, in spec order
    # Each replica's last entry in status/ReplicatedVolume/<name>, by node; a node that
    # never reported has none. Written by the node that runs the replica.
    entries: Mapping[str, ReplicaStatus] = field(default_factory=dict)
    outdated: OutdateRecord | None = None

    def outdated_nodes(self) -> tuple[str, ...]:
        """The replicas the outdate record says missed writes (both if it is unreadable)."""
        if self.outdated is None:
            return ()
        return tuple(node for node in self.replicas if self.outdated.names(node))

    def outdated_note(self) -> str:
        """The record in words: ``Outdated since generation ... (record by n1)``."""
        return self.outdated.describe() if self.outdated is not None else ""

    def peer(self, node: str) -> str | None:
        others = [n for n in self.replicas if n != node]
        return others[0] if others else None


@dataclass(frozen=True)
class ClusterView:
    cluster: Cluster | None = None
    groups: Mapping[str, ResourceGroup] = field(default_factory=dict)
    group_status: Mapping[str, ResourceGroupStatus] = field(default_factory=dict)
    # Node objects: what operators set (standby); members are in cluster.spec.nodes.
    nodes: Mapping[str, Node] = field(default_factory=dict)
    # Written by the leader from its heartbeat view, whether or not a Node object exists.
    node_status: Mapping[str, NodeStatus] = field(default_factory=dict)
    fences: Mapping[str, FenceDevice] = field(default_factory=dict)
    agents: Mapping[str, NodeRecord] = field(default_factory=dict)  # connected agents
    leader: LeaderRecord | None = None
    placements: Mapping[str, PlacementRecord] = field(default_factory=dict)
    failures: Sequence[FailureRecord] = ()
    fencing: Mapping[str, FenceRecord] = field(default_factory=dict)  # by node
    volumes: Mapping[str, ReplicatedVolume] = field(default_factory=dict)
    volume_status: Mapping[str, ReplicatedVolumeStatus] = field(default_factory=dict)
    outdate_records: Mapping[str, OutdateRecord] = field(default_factory=dict)  # by volume

    def volume_states(self) -> dict[str, VolumeState]:
        """Every volume with a spec, by name (status and records of deleted ones dropped)."""
        out = {}
        for name, volume in sorted(self.volumes.items()):
            status = self.volume_status.get(name)
            entries = {e.node: e for e in status.replicas} if status else {}
            out[name] = VolumeState(
                name,
                tuple(r.node for r in volume.spec.replicas),
                entries,
                self.outdate_records.get(name),
            )
        return out

    @classmethod
    def of_specs(cls, objects: Iterable[Object]) -> ClusterView:
        """A view holding only these spec objects (no status, records or placements)."""
        return cls().with_specs(objects)

    def with_specs(self, objects: Iterable[Object]) -> ClusterView:
        """This view with its Cluster, groups, Node, FenceDevice and ReplicatedVolume objects
        replaced by ``objects``: what
        the cluster would look like after an apply, for `ha apply --dry-run`."""
        items = list(objects)
        clusters = [o for o in items if isinstance(o, Cluster)]
        return replace(
            self,
            cluster=clusters[0] if clusters else None,
            groups={o.name: o for o in items if isinstance(o, ResourceGroup)},
            nodes={o.name: o for o in items if isinstance(o, Node)},
            fences={o.name: o for o in items if isinstance(o, FenceDevice)},
            volumes={o.name: o for o in items if isinstance(o, ReplicatedVolume)},
        )
