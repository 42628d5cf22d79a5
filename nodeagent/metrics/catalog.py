"""Every metric the agent exports: name, type, help and labels, as plain data. Pure.

docs/metrics.md is checked against this list, and a lab agent's /metrics against both.
Labels are bounded: node, peer, link, group, resource and volume come from the cluster's
own declared objects; state, action, result, reason and op from fixed vocabularies.
Counter names end in `_total` (the sample name; the family is the name without it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["gauge", "counter", "histogram"]

# Seconds: from a fast monitor (a few ms) to a slow start or a failover (a minute).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FAILOVER_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        """The family name in the exposition (a counter's without `_total`)."""
        return self.name.removesuffix("_total") if self.kind == "counter" else self.name


def _m(name: str, kind: Kind, help: str, *labels: str) -> Metric:
    return Metric(name, kind, help, labels)


NODE = [
    _m("vigil_agent_info", "gauge", "1, with this agent's node and version.", "node", "version"),
    _m("vigil_node_serving", "gauge", "1 while this node holds a serving lease."),
    _m(
        "vigil_serving_lease_remaining_seconds",
        "gauge",
        "Seconds until this node's serving lease ends (0 without one).",
    ),
    _m(
        "vigil_serving_lease_age_seconds",
        "gauge",
        "Seconds since the serving lease was last renewed (NaN without one).",
    ),
    _m(
        "vigil_node_phase",
        "gauge",
        "Each node's phase as the leader publishes it (1 on the current phase).",
        "node",
        "phase",
    ),
]

HEARTBEAT = [
    _m(
        "vigil_peer_state",
        "gauge",
        "How this node hears each peer (1 on the current state).",
        "peer",
        "state",
    ),
    _m("vigil_peer_lost", "gauge", "1 while this node's verdict is that the peer is lost.", "peer"),
    _m(
        "vigil_heartbeat_link_up",
        "gauge",
        "1 while the link heard the peer within deadtime.",
        "peer",
        "link",
    ),
    _m(
        "vigil_heartbeat_last_heard_seconds",
        "gauge",
        "Seconds since the peer was last heard on the link.",
        "peer",
        "link",
    ),
    _m(
        "vigil_heartbeat_rtt_seconds",
        "gauge",
        "Round-trip time of the last heartbeat the peer acknowledged on the link.",
        "peer",
        "link",
    ),
    _m(
        "vigil_heartbeat_missed_total",
        "counter",
        "Heartbeats of the peer that never arrived on the link (sequence gaps).",
        "peer",
        "link",
    ),
    _m(
        "vigil_heartbeat_rejected_total",
        "counter",
        "Packets refused on the link, by reason (bad HMAC, replay, unknown sender...).",
        "link",
        "reason",
    ),
]

LEADER = [
    _m("vigil_leader", "gauge", "1 on the node that holds the leader record.", "node"),
    _m("vigil_is_leader", "gauge", "1 while this node is the leader."),
    _m(
        "vigil_leader_changes_total",
        "counter",
        "Changes of the leader record this agent has seen (elections).",
    ),
]

GROUPS = [
    _m(
        "vigil_placement_changes_total",
        "counter",
        "Changes of a group's placement to another node (or none) this agent has seen.",
        "group",
    ),
    _m("vigil_group_placed", "gauge", "1 on the node a group is placed on.", "group", "node"),
    _m(
        "vigil_group_phase",
        "gauge",
        "Each group's phase as reported in the store (1 on the current phase).",
        "group",
        "phase",
    ),
    _m(
        "vigil_group_enabled",
        "gauge",
        "1 while a group's spec says it should run (enabled), 0 when it is disabled.",
        "group",
    ),
    _m(
        "vigil_resource_action_duration_seconds",
        "histogram",
        "Duration of this node's start, stop and monitor actions, by resource type.",
        "action",
        "type",
    ),
    _m(
        "vigil_resource_action_failures_total",
        "counter",
        "Start, stop and monitor actions that failed on this node.",
        "group",
        "resource",
        "action",
    ),
    _m(
        "vigil_probe_results_total",
        "counter",
        "Probe results on this node (result: success or failure).",
        "group",
        "resource",
        "result",
    ),
    _m(
        "vigil_failover_duration_seconds",
        "histogram",
        "On the node that recovered a group from a lost node: seconds from this node "
        "first seeing that node lost to the group running here.",
    ),
]

STORE = [
    _m(
        "vigil_store_request_duration_seconds",
        "histogram",
        "Duration of this agent's store requests, by operation.",
        "op",
    ),
    _m(
        "vigil_store_request_errors_total",
        "counter",
        "Store requests that raised an error, by operation.",
        "op",
    ),
    _m(
        "vigil_etcd_member_healthy",
        "gauge",
        "1 while this node's etcd member answers with a leader.",
    ),
    _m(
        "vigil_etcd_leader_changes_total",
        "counter",
        "Changes of the etcd leader seen by polling this node's member.",
    ),
    _m("vigil_etcd_db_size_bytes", "gauge", "Size of this node's etcd database."),
    _m(
        "vigil_etcd_voting_members",
        "gauge",
        "Voting members of the etcd cluster, as this node's member knows it (the last "
        "count while it cannot answer).",
    ),
]

FENCING = [
    _m(
        "vigil_fence_attempts_total",
        "counter",
        "Fence actions this node ran, by device, action and result (success or failure).",
        "device",
        "action",
        "result",
    ),
]

# blockrepl's own replica metrics (blockrepl/metrics.py), renamed from blockrepl_<x> to
# vigil_volume_<x>, for the replicas this node's volume supervisor runs.
VOLUME_PREFIX = "vigil_volume_"
VOLUMES = [
    _m("vigil_volume_info", "gauge", "Replica settings.", "volume", "protocol"),
    _m(
        "vigil_volume_role",
        "gauge",
        "Role of this replica (1 on the current role).",
        "volume",
        "role",
    ),
    _m(
        "vigil_volume_connection_state",
        "gauge",
        "Replication connection state (1 on the current state).",
        "volume",
        "state",
    ),
    _m(
        "vigil_volume_disk_state",
        "gauge",
        "Local disk state (1 on the current state).",
        "volume",
        "state",
    ),
    _m(
        "vigil_volume_peer_role",
        "gauge",
        "Role of the connected peer; Unknown while not connected.",
        "volume",
        "role",
    ),
    _m(
        "vigil_volume_peer_disk_state",
        "gauge",
        "Disk state of the connected peer; DUnknown while not connected.",
        "volume",
        "state",
    ),
    _m(
        "vigil_volume_out_of_sync_bytes",
        "gauge",
        "Bytes marked out of sync with the peer in the local bitmap.",
        "volume",
    ),
    _m("vigil_volume_sync_active", "gauge", "1 while a resync runs.", "volume"),
    _m(
        "vigil_volume_sync_total_bytes",
        "gauge",
        "Bytes the running resync set out to move (0 when none runs).",
        "volume",
    ),
    _m(
        "vigil_volume_sync_done_bytes",
        "gauge",
        "Bytes the running resync has moved (0 when none runs).",
        "volume",
    ),
    _m(
        "vigil_volume_sync_rate_bytes_per_second",
        "gauge",
        "Resync speed over the last seconds (0 when none runs, NaN until measured).",
        "volume",
    ),
    _m(
        "vigil_volume_sync_eta_seconds",
        "gauge",
        "Estimated seconds until the running resync ends (0 when none runs, NaN if unknown).",
        "volume",
    ),
    _m(
        "vigil_volume_wire_received_bytes_total",
        "counter",
        "Bytes received on replication connections.",
        "volume",
    ),
    _m(
        "vigil_volume_wire_sent_bytes_total",
        "counter",
        "Bytes sent on replication connections.",
        "volume",
    ),
    _m(
        "vigil_volume_connections_total",
        "counter",
        "Replication connections established since start.",
        "volume",
    ),
    _m(
        "vigil_volume_last_sync_payload_bytes",
        "gauge",
        "Block data moved by the last (finished or interrupted) resync; NaN before the first.",
        "volume",
    ),
    _m(
        "vigil_volume_last_sync_wire_bytes",
        "gauge",
        "Bytes on the wire, both directions, of the connection of the last finished resync.",
        "volume",
    ),
    _m(
        "vigil_volume_last_sync_duration_seconds",
        "gauge",
        "Duration of the last finished resync (NaN before the first).",
        "volume",
    ),
    _m(
        "vigil_volume_resync_rate_limit_bytes_per_second",
        "gauge",
        "Resync speed limit (0 = unlimited).",
        "volume",
    ),
    _m(
        "vigil_volume_status_up",
        "gauge",
        "1 if the replica answered its last status request.",
        "volume",
    ),
]

# The agent process itself (prometheus_client's ProcessCollector, namespace vigil).
PROCESS = [
    _m(
        "vigil_process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    ),
    _m("vigil_process_open_fds", "gauge", "Number of open file descriptors."),
    _m("vigil_process_max_fds", "gauge", "Maximum number of open file descriptors."),
    _m("vigil_process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."),
    _m("vigil_process_resident_memory_bytes", "gauge", "Resident memory size in bytes."),
    _m(
        "vigil_process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    ),
]

SECTIONS: dict[str, list[Metric]] = {
    "Node and serving lease": NODE,
    "Heartbeats": HEARTBEAT,
    "Leader": LEADER,
    "Groups, resources, failover": GROUPS,
    "Store and etcd": STORE,
    "Fencing": FENCING,
    "Replicated volumes": VOLUMES,
    "The agent process": PROCESS,
}

ALL: list[Metric] = [m for section in SECTIONS.values() for m in section]
BY_NAME: dict[str, Metric] = {m.name: m for m in ALL}
