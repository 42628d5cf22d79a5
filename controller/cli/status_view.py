"""``ha status``: the cluster at a glance, built from one read of the store. Pure rendering.

Like crm_mon or clustat: the members and how they are seen, the leader, each group with
where it should run, where it runs, its health and its failures, and what the controller
is waiting for. The volumes' section is ``status_volumes.py``; the rows and the JSON
document are ``controller/status/document.py``'s, which the agents' web page shares.
"""

from __future__ import annotations

from controller.cli.output import NONE, table
from controller.cli.status_volumes import render_volumes
from controller.status.document import (
    active_failures,
    group_rows,
    leader,
    link_rows,
    node_rows,
    status_document,
)
from controller.status.protection import protection
from controller.store.view import ClusterView

__all__ = ["active_failures", "link_rows", "render", "to_json"]


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


def render(cluster_name: str, view: ClusterView, now: float, colour: bool = False) -> str:
    parts = []
    if view.cluster is None:
        return f"Cluster {cluster_name}: no Cluster object; apply one (ha apply -f cluster.yaml)\n"
    quorum = view.cluster.spec.quorum.mode
    parts.append(
        f"Cluster {view.cluster.name}: {len(view.cluster.spec.nodes)} nodes, quorum {quorum}, "
        f"leader {leader(view) or NONE}\n"
    )
    guard = protection(view.cluster, view.fences, view.groups)
    parts.append(f"Protection: {guard.summary()}\n")
    parts.append("\nNodes:\n")
    header = ["NAME", "ROLE", "STATE", "AGENT", "STANDBY", "HEARS", ""]
    parts.append(table(node_rows(view), header, colour))
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
    rows = group_rows(view, now)
    if rows:
        header = ["NAME", "PLACED", "RUNNING", "PHASE", "FAILURES", "WHY"]
        parts.append(table(rows, header, colour))
    else:
        parts.append("  none\n")
    return "".join(parts)


# `ha status -o json`: the document every agent also serves at /status.json.
to_json = status_document
