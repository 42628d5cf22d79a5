"""Vigil's API: the kinds users apply, as strict pydantic models."""

from controller.api.cluster import Cluster, ClusterSpec
from controller.api.fencing import FenceDevice, FenceDeviceSpec
from controller.api.group import ResourceGroup, ResourceGroupSpec
from controller.api.meta import API_VERSION, GROUP, VERSION, Condition, Object, ObjectMeta
from controller.api.node import Node, NodeSpec
from controller.api.registry import BY_KIND, KINDS, UnknownKindError, kind_order, resolve_kind
from controller.api.volume import ReplicatedVolume, ReplicatedVolumeSpec

__all__ = [
    "API_VERSION",
    "BY_KIND",
    "GROUP",
    "KINDS",
    "VERSION",
    "Cluster",
    "ClusterSpec",
    "Condition",
    "FenceDevice",
    "FenceDeviceSpec",
    "Node",
    "NodeSpec",
    "Object",
    "ObjectMeta",
    "ReplicatedVolume",
    "ReplicatedVolumeSpec",
    "ResourceGroup",
    "ResourceGroupSpec",
    "UnknownKindError",
    "kind_order",
    "resolve_kind",
]
