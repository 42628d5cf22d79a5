"""``ha status``: the cluster at a glance, built from one read of the store. Pure rendering.

Like crm_mon or clustat: the members and how they are seen, the leader, each group with
where it should run, where it runs, its health and its failures, and what the controller
is waiting for. The volumes' section is ``status_volumes.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.api.group import ResourceGroup
from controller.cli.output import NONE, table
from controller.cli.protection import protection
from controller.cli.status_volumes import render_volumes, volumes_json
from controller.scheduler import Failure
from controller.scheduler.from_api import to_scheduler_group
from controller.scheduler.scoring import failure_counts
from controller.store.records import FailureRecord, NodeRecord
from controller.store.view import ClusterView


def _leader(view: ClusterView) -> str | None:
    return view.leader.node if view.leader else None


def _node_rows(view: ClusterView) -> list[list[str]]:
    rows = []
    members = view.cluster.spec.nodes if view.cluster else []
    for member in members:
        agent = view.agents.get(member.name)
        status = view.node_status.get(member.name)
        node = view.nodes.get(member.name)
        seen = status.phase if status else "Unknown"
        if seen == "Fenced":
            # Verified powered off: its record in the store only waits for its lease to
            # end (3 s), and says nothing true about the node any more.
            agent = None
        rows.append(
            [
                member.name,
                member.role,
                seen,
                "connected" if agent else "no agent",
                "yes" if node and node.spec.standby else "no",
                _links(agent),
                "leader" if _leader(view) == member.name else "",
            ]
        )
    return rows


def _links(agent: NodeRecord | None) -> str:
    """How this node hears each peer, per link: `n2:cluster=up`, or what is down."""
    if not agent:
        return NONE
    parts = []
    for peer, seen in sorted(agent.peers.items()):
        links = seen.links
        down = [name for name, state in sorted(links.items()) if state != "up"]
        if not links:
            parts.append(f"{peer}:never")
        elif down:
            parts.append(f"{peer}:{','.join(down)} DOWN")
        else:
            parts.append(f"{peer}:ok")
    return " ".join(parts) or NONE


def link_rows(view: ClusterView, now: float) -> list[dict[str, Any]]:
    """Every heartbeat link that is down, as each node hears its peers: degraded (the
    peer still heard on another link) or silent with its peer; with how long it has been
    silent, from the time the node recorded it was last heard."""
    rows = []
    for node, agent in sorted(view.agents.items()):
        for peer, seen in sorted(agent.peers.items()):
            degraded = set(seen.degraded())
            for link, state in sorted(seen.links.items()):
                if state == "up":
                    continue
                heard = seen.last_heard.get(link)
                rows.append(
                    {
                        "node": node,
                        "peer": peer,
                        "link": link,
                        "condition": "LinkDegraded" if link in degraded else "PeerSilent",
                        "silentFor": None if heard is None else round(max(0.0, now - heard), 1),
                        "liveLinks": sorted(n for n, st in seen.links.items() if st == "up"),
                    }
                )
    return rows


def _link_lines(view: ClusterView, now: float) -> list[str]:
    lines = []
    for node, agent in sorted(view.agents.items()):
        for link, counts in sorted(agent.links.items()):
            if counts.get("open") == 0:
                # A serial device that cannot be opened: its link carries nothing, and is
                # never heard, so no peer's row would show it.
                lines.append(
                    f"  LinkDown: link {link} on {node}: device not open (the agent retries; "
                    f"its log says why)\n"
                )
    for row in link_rows(view, now):
        silent = "silent" if row["silentFor"] is None else f"silent for {row['silentFor']:.1f} s"
        live = ", ".join(row["liveLinks"])
        tail = f"heard on {live}" if live else f"{row['peer']} not heard on any link"
        lines.append(
            f"  {row['condition']}: link {row['link']} from {row['node']} to {row['peer']}: "
            f"{silent} ({tail})\n"
        )
    return lines


def active_failures(
    groups: Mapping[str, ResourceGroup], failures: Iterable[FailureRecord], now: float
) -> dict[str, dict[str, int]]:
    """Failures per group and node that still count, by the scheduler's own rule (a record
    is forgotten whole once its last failure is failureTimeout old): what the migration
    threshold sees is what `ha status` and `ha describe` show."""
    counted = failure_counts(
        [Failure(f.group, f.node, f.count, f.last_failure) for f in failures],
        {name: to_scheduler_group(g) for name, g in groups.items()},
        now,
    )
    out: dict[str, dict[str, int]] = {}
    for (group, node), count in sorted(counted.items()):
        out.setdefault(group, {})[node] = count
    return out


def _ago(now: float, then: float) -> str:
    if not then:
        return NONE
    seconds = max(0.0, now - then)
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def _fence_rows(view: ClusterView, now: float) -> list[list[str]]:
    """Each node's last fencing: state, attempts, when, and what happened."""
    return [
        [
            node,
            record.state,
            str(record.attempts),
            _ago(now, record.fenced_at or record.requested_at),
            record.message or record.reason,
        ]
        for node, record in sorted(view.fencing.items())
    ]


def _held_for_fencing(view: ClusterView, node: str | None) -> str | None:
    """Why a group placed on `node` waits, if that node is lost and not yet fenced."""
    if node is None or view.cluster is None or not view.cluster.spec.fencing.enabled:
        return None
    status = view.node_status.get(node)
    if status is None or status.phase != "Lost":
        return None
    record = view.fencing.get(node)
    detail = f": {record.state}: {record.message}" if record and record.message else ""
    return f"waiting for lost {node} to be fenced{detail}"


def _group_rows(view: ClusterView, now: float) -> list[list[str]]:
    rows = []
    failures = {
        group: [f"{node}:{count}" for node, count in nodes.items()]
        for group, nodes in active_failures(view.groups, view.failures, now).items()
    }
    for name, group in sorted(view.groups.items()):
        placement = view.placements.get(name)
        status = view.group_status.get(name)
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
                _held_for_fencing(view, placement.node if placement else None)
                or (placement.reason if placement else "not placed yet"),
            ]
        )
    return rows


def render(cluster_name: str, view: ClusterView, now: float, colour: bool = False) -> str:
    parts = []
    if view.cluster is None:
        return f"Cluster {cluster_name}: no Cluster object; apply one (ha apply -f cluster.yaml)\n"
    quorum = view.cluster.spec.quorum.mode
    parts.append(
        f"Cluster {view.cluster.name}: {len(view.cluster.spec.nodes)} nodes, quorum {quorum}, "
        f"leader {_leader(view) or NONE}\n"
    )
    guard = protection(view.cluster, view.fences, view.groups)
    parts.append(f"Protection: {guard.summary()}\n")
    parts.append("\nNodes:\n")
    header = ["NAME", "ROLE", "STATE", "AGENT", "STANDBY", "HEARS", ""]
    parts.append(table(_node_rows(view), header, colour))
    links = _link_lines(view, now)
    if links:
        parts.append("\nHeartbeat links down:\n")
        parts.extend(links)
    fencing = _fence_rows(view, now)
    if fencing:
        parts.append("\nFencing:\n")
        parts.append(table(fencing, ["NODE", "STATE", "ATTEMPTS", "WHEN", "DETAIL"], colour))
    parts.append(render_volumes(view, now, colour))
    parts.append("\nGroups:\n")
    rows = _group_rows(view, now)
    if rows:
        header = ["NAME", "PLACED", "RUNNING", "PHASE", "FAILURES", "WHY"]
        parts.append(table(rows, header, colour))
    else:
        parts.append("  none\n")
    return "".join(parts)


def to_json(cluster_name: str, view: ClusterView, now: float) -> dict[str, Any]:
    failures = active_failures(view.groups, view.failures, now)
    return {
        "cluster": cluster_name,
        "leader": _leader(view),
        "protection": protection(view.cluster, view.fences, view.groups).to_json(),
        "nodes": [
            {
                "name": row[0],
                "role": row[1],
                "state": row[2],
                "agent": row[3] == "connected",
                "standby": row[4] == "yes",
                "hears": row[5],
                "serving": bool((agent := view.agents.get(row[0])) and agent.serving),
                "links": {p: dict(v.links) for p, v in agent.peers.items()} if agent else {},
            }
            for row in _node_rows(view)
        ],
        "links": link_rows(view, now),
        "linkCounters": {node: dict(agent.links) for node, agent in sorted(view.agents.items())},
        "fencing": [record.to_dict() for _, record in sorted(view.fencing.items())],
        "volumes": volumes_json(view, now),
        "groups": [
            {
                "name": name,
                "placed": p.node if (p := view.placements.get(name)) else None,
                "epoch": p.epoch if p else None,
                "running": s.node if (s := view.group_status.get(name)) else None,
                "phase": s.phase if s else "Pending",
                "reason": p.reason if p else "",
                "failures": failures.get(name, {}),
            }
            for name in sorted(view.groups)
        ],
    }
