"""The rows and lines ``ha status`` prints, which the agents' status page shows too, all
built from one view at one moment. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from controller.status.document import group_rows, leader, link_rows, node_rows
from controller.status.protection import protection
from controller.status.volume_rows import volume_notes, volume_rows
from controller.status.volume_text import NONE
from controller.store.view import ClusterView

NODE_HEADER = ["NAME", "ROLE", "STATE", "AGENT", "STANDBY", "HEARS", ""]
FENCE_HEADER = ["NODE", "STATE", "ATTEMPTS", "WHEN", "DETAIL"]
GROUP_HEADER = ["NAME", "PLACED", "RUNNING", "PHASE", "FAILURES", "WHY"]


@dataclass(frozen=True)
class StatusRows:
    """Every section of `ha status`; `headline` alone when the store has no Cluster."""

    headline: str
    protection: str = ""
    nodes: list[list[str]] | None = None
    links: list[str] | None = None  # heartbeat links down, one sentence each
    fencing: list[list[str]] | None = None
    volumes: list[list[str]] | None = None
    volume_notes: list[str] | None = None
    groups: list[list[str]] | None = None


def status_rows(cluster_name: str, view: ClusterView, now: float) -> StatusRows:
    if view.cluster is None:
        return StatusRows(
            f"Cluster {cluster_name}: no Cluster object; apply one (ha apply -f cluster.yaml)"
        )
    quorum = view.cluster.spec.quorum.mode
    return StatusRows(
        headline=f"Cluster {view.cluster.name}: {len(view.cluster.spec.nodes)} nodes, "
        f"quorum {quorum}, leader {leader(view) or NONE}",
        protection=protection(view.cluster, view.fences, view.groups).summary(),
        nodes=node_rows(view),
        links=[line.strip() for line in link_lines(view, now)],
        fencing=fence_rows(view, now),
        volumes=volume_rows(view, now),
        volume_notes=volume_notes(view),
        groups=group_rows(view, now),
    )


def link_lines(view: ClusterView, now: float) -> list[str]:
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


def fence_rows(view: ClusterView, now: float) -> list[list[str]]:
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
