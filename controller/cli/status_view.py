"""``ha status``: the cluster at a glance, built from one read of the store. Pure rendering.

Like crm_mon or clustat: the members and how they are seen, the leader, each group with
where it should run, where it runs, its health and its failures, and what the controller
is waiting for. This module only lays them out as text: the rows (``controller/status/rows.py``)
and the JSON document (``document.py`` there) are built below the CLI, where every agent's
status page builds the same.
"""

from __future__ import annotations

from controller.cli.output import table
from controller.status.document import active_failures, link_rows, status_document
from controller.status.rows import FENCE_HEADER, GROUP_HEADER, NODE_HEADER, status_rows
from controller.status.volume_rows import VOLUME_HEADER
from controller.store.view import ClusterView

__all__ = ["active_failures", "link_rows", "render", "to_json"]


def render(cluster_name: str, view: ClusterView, now: float, colour: bool = False) -> str:
    rows = status_rows(cluster_name, view, now)
    if view.cluster is None:
        return rows.headline + "\n"
    parts = [f"{rows.headline}\n", f"Protection: {rows.protection}\n"]
    parts.append("\nNodes:\n")
    parts.append(table(rows.nodes or [], NODE_HEADER, colour))
    if rows.links:
        parts.append("\nHeartbeat links down:\n")
        parts.extend(f"  {line}\n" for line in rows.links)
    if rows.fencing:
        parts.append("\nFencing:\n")
        parts.append(table(rows.fencing, FENCE_HEADER, colour))
    if rows.volumes:
        parts += ["\nVolumes:\n", table(rows.volumes, VOLUME_HEADER, colour)]
        parts += [f"  {line}\n" for line in rows.volume_notes or []]
    parts.append("\nGroups:\n")
    if rows.groups:
        parts.append(table(rows.groups, GROUP_HEADER, colour))
    else:
        parts.append("  none\n")
    return "".join(parts)


# `ha status -o json`: the document every agent also serves at /status.json.
to_json = status_document
