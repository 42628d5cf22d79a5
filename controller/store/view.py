"""The cluster view: every spec, status and record the readers of the cluster need, typed.

One builder (``Informer.view()``) serves the leader's decisions, ``ha status``,
``ha apply --dry-run`` and, later, metrics and the web page, so that they cannot disagree
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
from controller.store.fence_record import FenceRecord
from controller.store.records import FailureRecord, LeaderRecord, NodeRecord, PlacementRecord


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

    @classmethod
    def of_specs(cls, objects: Iterable[Object]) -> ClusterView:
        """A view holding only these spec objects (no status, records or placements)."""
        return cls().with_specs(objects)

    def with_specs(self, objects: Iterable[Object]) -> ClusterView:
        """This view with its Cluster, groups, Node and FenceDevice objects replaced by
        ``objects``: what
        the cluster would look like after an apply, for `ha apply --dry-run`."""
        items = list(objects)
        clusters = [o for o in items if isinstance(o, Cluster)]
        return replace(
            self,
            cluster=clusters[0] if clusters else None,
            groups={o.name: o for o in items if isinstance(o, ResourceGroup)},
            nodes={o.name: o for o in items if isinstance(o, Node)},
            fences={o.name: o for o in items if isinstance(o, FenceDevice)},
        )
