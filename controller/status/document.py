"""The status document: what ``ha status -o json`` prints and every agent serves at
``/status.json``, one function of a ClusterView and the time. Pure.

Like crm_mon's XML: the members and how they are seen, the leader, each group with where
it should run, where it runs, its health and its failures, fencing and volumes. The rows
and reasons ``ha status`` prints as text are built here too, so that the text, the JSON
and the web page cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.api.group import ResourceGroup
from controller.scheduler import Failure
from controller.scheduler.from_api import to_scheduler_group
from controller.scheduler.scoring import failure_counts
from controller.status.protection import protection
from controller.status.volume_text import NONE
from controller.status.volumes import volumes_json
from controller.store.records import FailureRecord, NodeRecord
from controller.store.view import ClusterView


def leader(view: ClusterView) -> str | None:
    return view.leader.node if view.leader else None


def node_rows(view: ClusterView) -> list[list[str]]:
    """Per member: NAME, ROLE, STATE, AGENT, STANDBY, HEARS and "leader" or ""."""
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
                "leader" if leader(view) == member.name else "",
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


def group_rows(view: ClusterView, now: float) -> list[list[str]]:
    """Per group: NAME, PLACED, RUNNING, PHASE (Disabled for a disabled group), FAILURES
    and WHY (a wait for fencing, else the placement's reason)."""
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


def status_document(cluster_name: str, view: ClusterView, now: float) -> dict[str, Any]:
    failures = active_failures(view.groups, view.failures, now)
    return {
        "cluster": cluster_name,
        "leader": leader(view),
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
            for row in node_rows(view)
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
