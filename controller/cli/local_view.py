"""`ha status` when the store does not answer: this node's agent's own view, marked so.

On the minority side of a partition (or with the store down) the cluster's view cannot
be read. What this node's agent wrote last (controller/api/local_status.py) still says
whether the node has quorum, whom it hears and what it runs or has stopped: enough for
the administrator at that console to know that this side stands down.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from controller.api.local_status import DEFAULT_RUN_DIR, LocalStatus, local_status_path

STALE_AFTER = 5.0  # seconds: the agent writes or renews the file every second


def local_status_file(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return local_status_path(Path(env.get("VIGIL_RUN_DIR") or DEFAULT_RUN_DIR))


def read_local_status(path: Path) -> LocalStatus | None:
    """The file, with `written` the last time the agent vouched for it: the agent writes
    it again only when its content changes and otherwise renews its modification time
    (nodeagent/local_status.py)."""
    try:
        with path.open("rb") as file:
            touched = datetime.fromtimestamp(os.fstat(file.fileno()).st_mtime, UTC)
            status = LocalStatus.model_validate_json(file.read())
    except (OSError, ValueError, ValidationError):
        return None
    if touched > status.written:
        status = status.model_copy(update={"written": touched})
    return status


def render_local(status: LocalStatus, now: datetime) -> str:
    age = (now - status.written).total_seconds()
    node = status.node
    lines = [
        f"LOCAL VIEW of node {node}, written by its agent {age:.1f}s ago. The store does not "
        "answer here, so this is",
        "this node's own view, not the cluster's, and may be stale.",
    ]
    if age > STALE_AFTER:
        lines.append(
            f"STALE: the agent has not written for {age:.0f}s; is vigil-agent running on {node}?"
        )
    heard = [p for p in status.peers if p.state in ("up", "warn")]
    members = len(status.peers) + 1
    if status.serving:
        quorum = (
            f"yes: {node} hears {len(heard)} of {len(status.peers)} peers and holds its serving "
            "lease; without the store, placements cannot change"
        )
    else:
        quorum = (
            f"NO: {node} hears {len(heard)} of {len(status.peers)} peers, not a majority of "
            f"{members}: it holds no serving lease, so it runs nothing and stops what it ran "
            "(the majority side may recover it)"
        )
    lines.append(f"Quorum:  {quorum}")
    lines.append(f"Leader:  {status.leader or 'none'} (the controller, as last seen in the store)")
    peers = ", ".join(
        f"{p.name} {p.state}{' (declared lost)' if p.lost else ''}" for p in status.peers
    )
    lines.append(f"Peers:   {peers or '(none)'}")
    lines.append(f"Groups on {node}:")
    if not status.groups:
        lines.append("  (none)")
    width = max((len(g.name) for g in status.groups), default=0)
    for g in status.groups:
        doing = {"run": "running here", "keep": "kept here", "stop": "not here"}.get(g.mode, g.mode)
        states = ", ".join(f"{r.name} {r.state}" for r in g.resources) or "(no resources)"
        lines.append(f"  {g.name:<{width}}  {doing:<12}  {states}")
    return "\n".join(lines) + "\n"
