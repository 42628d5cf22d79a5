"""The events' vocabulary: every reason an event may carry, and who writes it.

Bounded on purpose: `ha events --reason X` and alerting on reasons only work if the set
is known, so `make_event` (controller/store/objects.py) refuses a reason not listed here,
and docs/events.md documents each one (a unit test keeps the two equal).
"""

from __future__ import annotations

from typing import Literal

# Who wrote an event: the operator's command line, the elected controller, a node agent.
Component = Literal["ha", "controller", "agent"]
COMPONENTS: tuple[Component, ...] = ("ha", "controller", "agent")

# reason -> what it means. Grouped by the object it is recorded on.
REASONS: dict[str, str] = {
    # Any object, written by `ha apply`, `ha delete`, `ha move`, `ha standby`.
    "Created": "an object was created",
    "Updated": "an object's spec changed",
    "Deleted": "an object was deleted",
    # ResourceGroup: placement, written by the leader.
    "Placed": "the leader placed the group on a node",
    "Stopping": "the leader took the group off a node and waits for it to stop there",
    "NotPlaced": "the leader found no node that may run the group",
    # ResourceGroup: actions of the node agent where the group runs or stops.
    "Started": "a resource of the group was started on a node",
    "Stopped": "a resource of the group was stopped on a node",
    "Promoted": "a replicated volume of the group was made Primary on a node",
    "Demoted": "a replicated volume of the group was made Secondary on a node",
    "StopFailed": "a resource could not be stopped (the node will be fenced if fencing is on)",
    "Failed": "a start, a probe or a running resource failed (one more failure counted)",
    "Blocked": "the group cannot run on a node (no actuator for one of its resources)",
    "FailuresCleared": "`ha cleanup` forgot the group's failures",
    # Node: fencing.
    "FenceRequested": "a fencing of the node was asked for (by the leader or `ha fence`)",
    "FenceConfirmRequested": "`ha fence --confirm`: an operator says the node is off",
    "FenceDone": "one fence device powered the node off (read back off)",
    "FenceFailed": "a fence device, or a whole attempt, failed; it is retried",
    "FenceVerified": "the node is proved off; its groups may be recovered",
    "FenceConfirmed": "the leader accepted an operator's confirmation",
    "FenceRefused": "the leader refused a confirmation or a request (the message says why)",
    "Rejoined": "a fenced node is heard again",
    # Node: heartbeat links, written by the agent that hears them.
    "LinkDegraded": "one heartbeat link to a peer is silent while another still hears it",
    "LinkRecovered": "a degraded heartbeat link is heard again",
    # Node: the agent's life, written by the agent itself.
    "AgentStarted": "a node's agent started and reached the store (message: version, pid, "
    "what it found running and adopted)",
    "AgentStopping": "a node's agent is stopping in order (SIGTERM) and stops its resources",
    "ServingLost": "a node lost its serving lease and stopped its resources while cut off "
    "from the store; recorded once it reached the store again",
    # Node: membership of the cluster's store.
    "MemberJoined": "the join endpoint admitted a node as a store member",
    "MemberRemoved": "`ha cluster leave` removed a node's store member",
    # ReplicatedVolume: a node's replica, written by that node's agent.
    "ReplicaConnected": "a replica's replication link to its peer came up",
    "ReplicaDisconnected": "a replica's replication link to its peer went down",
    "SplitBrain": "a replica found both sides changed the data apart (a split brain)",
    "DiskDetached": "a replica's disk was detached (Diskless: I/O goes to the peer)",
    "ReplicaNotAnswering": "a replica that answered its control socket no longer does",
    "ResyncStarted": "a resync between the replicas began",
    "ResyncFinished": "a resync between the replicas ended (message: how long, how much)",
    "ResyncInterrupted": "a resync was cut off by the link going down; it resumes on reconnect",
    # Cluster: the controller's lead and join tokens.
    "LeaderElected": "a node took the controller lead (message: the previous leader, the term)",
    "JoinTokenCreated": "`ha cluster token create` made a join token (its id, never its secret)",
    "JoinTokenRevoked": "`ha cluster token delete` revoked a join token",
    # Cluster: control-plane RBAC (etcd auth), written by `ha cluster user|rbac`.
    "UserAdded": "`ha cluster user add` created a user or changed its role",
    "UserDeleted": "`ha cluster user delete` deleted a user (its certificate maps to no one)",
    "RbacEnabled": "`ha cluster rbac enable` turned etcd's auth on",
    "RbacDisabled": "`ha cluster rbac disable` turned etcd's auth off",
}


def unknown_reasons(given: list[str]) -> list[str]:
    """The reasons in `given` that are not in the vocabulary (for `--reason`)."""
    return [r for r in given if r not in REASONS]
