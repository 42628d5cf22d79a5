"""A replicated volume in ``ha describe vol``: every replica in full, whether a group may
promote each one's data, the outdate record, a split brain's commands. Pure.

The rows ``ha status`` prints per volume, the lines under them and the facts are
``controller/status/``'s (the agents' status page shows the same); whether each replica
may be promoted is the scheduler's own rule (``scheduler/volumes.py``), so what is shown
here is what the leader decides on.
"""

from __future__ import annotations

from controller.status.volume_rows import age_words, split_brain_lines
from controller.status.volume_text import human_bytes, human_seconds, sync_text
from controller.status.volumes import promotable, runs_on, split_brain, stale_for
from controller.store.view import ClusterView, VolumeState


def _replica_detail(state: VolumeState, node: str, view: ClusterView, now: float) -> list[str]:
    entry = state.entries.get(node)
    if entry is None:
        return [f"  {node}: no report (the replica has not run, or its node never wrote one)"]
    peer = f" (peer {entry.peer_role})" if entry.peer_role else ""
    when = (
        f"reported {human_seconds(now - entry.observed_at.timestamp())} ago"
        if entry.observed_at is not None
        else "report time unknown"
    )
    age = stale_for(view, entry, now)
    stale = f", STALE ({age_words(age)}, its agent is not connected)" if age is not None else ""
    lines = [
        f"  {node}: {entry.role}, disk {entry.disk_state}, {entry.connection}{peer}, out of "
        f"sync {human_bytes(entry.out_of_sync_bytes)}, {when}{stale}"
    ]
    if entry.sync is not None:
        sync = entry.sync
        lines.append(
            f"    resync: {sync_text(node, state.peer(node), sync)} "
            f"({human_bytes(sync.done_bytes)} of {human_bytes(sync.total_bytes)})"
        )
    if entry.split_brain:
        lines.append("    split brain: yes")
    if entry.last_error:
        lines.append(f"    last error: {entry.last_error}")
    return lines


def describe_lines(view: ClusterView, name: str, now: float) -> list[str]:
    """``ha describe vol``: every replica in full, whether a group may promote it, the
    outdate record, and a split brain's commands."""
    state = view.volume_states().get(name)
    if state is None:
        return []
    lines = ["Replicas:"]
    for node in state.replicas:
        lines += _replica_detail(state, node, view, now)
    lines.append("Data promotable (the scheduler's rule, node liveness aside):")
    placed = runs_on(view, name)
    for node, why in promotable(view)[name].items():
        entry = state.entries.get(node)
        if why is None and node in placed and entry is not None and entry.role == "Primary":
            lines.append(f"  {node}: yes (Primary where {placed[node]} is placed)")
        else:
            lines.append(f"  {node}: " + ("yes" if why is None else f"no: {why}"))
    record = state.outdated
    lines.append("Outdate record (volumes/" + name + "/outdated):")
    if record is None:
        lines.append("  <none>")
    else:
        lines.append(f"  {', '.join(state.outdated_nodes()) or '?'}: {record.describe()}")
        if record.since:
            lines.append(f"  since {record.since}, updated {record.updated or record.since}")
    if split_brain(state):
        lines.append("Split brain:")
        lines += ["  " + line for line in split_brain_lines(state, view)]
    return lines
