"""``ha status``: the cluster at a glance, built from one read of the store. Pure rendering.

Like crm_mon or clustat: the members and how they are seen, the leader, each group with
where it should run, where it runs, its health and its failures, and what the controller
is waiting for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.api.cluster import Cluster
from controller.api.group import ResourceGroup, ResourceGroupStatus
from controller.api.node import Node, NodeStatus
from controller.cli.output import NONE, table
from controller.placement import FailureRecord, PlacementRecord


@dataclass
class StatusSnapshot:
    cluster_name: str
    cluster: Cluster | None
    leader: str | None
    agents: dict[str, dict[str, Any]]  # nodes/<node>: liveness records of connected agents
    nodes: dict[str, Node]
    node_status: dict[str, NodeStatus]
    groups: dict[str, ResourceGroup]
    group_status: dict[str, ResourceGroupStatus]
    placements: dict[str, PlacementRecord]
    failures: list[FailureRecord] = field(default_factory=list)


def _node_rows(snap: StatusSnapshot) -> list[list[str]]:
    rows = []
    members = snap.cluster.spec.nodes if snap.cluster else []
    for member in members:
        agent = snap.agents.get(member.name)
        status = snap.node_status.get(member.name)
        node = snap.nodes.get(member.name)
        seen = status.phase if status else "Unknown"
        rows.append(
            [
                member.name,
                member.role,
                seen,
                "connected" if agent else "no agent",
                "yes" if node and node.spec.standby else "no",
                _links(agent),
                "leader" if snap.leader == member.name else "",
            ]
        )
    return rows


def _links(agent: dict[str, Any] | None) -> str:
    """How this node hears each peer, per link: `n2:cluster=up`, or what is down."""
    if not agent:
        return NONE
    parts = []
    for peer, seen in sorted(dict(agent.get("peers", {})).items()):
        links = dict(seen.get("links", {}))
        down = [name for name, state in sorted(links.items()) if state != "up"]
        if not links:
            parts.append(f"{peer}:never")
        elif down:
            parts.append(f"{peer}:{','.join(down)} DOWN")
        else:
            parts.append(f"{peer}:ok")
    return " ".join(parts) or NONE


def _group_rows(snap: StatusSnapshot) -> list[list[str]]:
    rows = []
    failures: dict[str, list[str]] = {}
    for failure in snap.failures:
        failures.setdefault(failure.group, []).append(f"{failure.node}:{failure.count}")
    for name, group in sorted(snap.groups.items()):
        placement = snap.placements.get(name)
        status = snap.group_status.get(name)
        wanted = placement.node if placement and placement.node else NONE
        running = status.node if status and status.node else NONE
        phase: str = status.phase if status else "Pending"
        if not group.spec.enabled:
            phase = "Disabled"
        rows.append(
            [
                name,
                wanted,
                running,
                phase,
                ",".join(failures.get(name, [])) or NONE,
                placement.reason if placement else "not placed yet",
            ]
        )
    return rows


def render(snap: StatusSnapshot, colour: bool = False) -> str:
    parts = []
    if snap.cluster is None:
        return (
            f"Cluster {snap.cluster_name}: no Cluster object; apply one "
            "(ha apply -f cluster.yaml)\n"
        )
    quorum = snap.cluster.spec.quorum.mode
    fencing = "on" if snap.cluster.spec.fencing.enabled else "OFF"
    parts.append(
        f"Cluster {snap.cluster.name}: {len(snap.cluster.spec.nodes)} nodes, quorum {quorum}, "
        f"fencing {fencing}, leader {snap.leader or NONE}\n"
    )
    parts.append("\nNodes:\n")
    header = ["NAME", "ROLE", "STATE", "AGENT", "STANDBY", "HEARS", ""]
    parts.append(table(_node_rows(snap), header, colour))
    parts.append("\nGroups:\n")
    rows = _group_rows(snap)
    if rows:
        header = ["NAME", "PLACED", "RUNNING", "PHASE", "FAILURES", "WHY"]
        parts.append(table(rows, header, colour))
    else:
        parts.append("  none\n")
    return "".join(parts)


def to_json(snap: StatusSnapshot) -> dict[str, Any]:
    return {
        "cluster": snap.cluster_name,
        "leader": snap.leader,
        "nodes": [
            {
                "name": row[0],
                "role": row[1],
                "state": row[2],
                "agent": row[3] == "connected",
                "standby": row[4] == "yes",
                "hears": row[5],
                "serving": bool(snap.agents.get(row[0], {}).get("serving")),
            }
            for row in _node_rows(snap)
        ],
        "groups": [
            {
                "name": name,
                "placed": p.node if (p := snap.placements.get(name)) else None,
                "epoch": p.epoch if p else None,
                "running": s.node if (s := snap.group_status.get(name)) else None,
                "phase": s.phase if s else "Pending",
                "reason": p.reason if p else "",
                "failures": {f.node: f.count for f in snap.failures if f.group == name},
            }
            for name in sorted(snap.groups)
        ],
    }
