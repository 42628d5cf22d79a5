"""The replicated volumes in ``ha status``, ``ha get vol`` and ``ha describe vol``. Pure.

One line per volume at a glance: each replica's node, role, disk and connection, the
bytes out of sync, the resync under way; below it, only what needs a person: a split
brain with the exact commands that resolve it, an outdate record, a replica's last error.
Whether each replica may be promoted is the scheduler's own rule (``scheduler/volumes.py``),
so what is shown here is what the leader decides on.
"""

from __future__ import annotations

from controller.cli.output import table
from controller.status.volume_text import human_bytes, human_seconds, resolve_command, sync_text
from controller.status.volumes import (
    promotable,
    runs_on,
    split_brain,
    stale_for,
    sync_words,
)
from controller.store.view import ClusterView, VolumeState


def _age_words(age: float) -> str:
    return "no time recorded" if age == float("inf") else f"{human_seconds(age)} old"


def replica_cell(state: VolumeState, node: str, view: ClusterView, now: float) -> str:
    """``host-s Secondary/UpToDate Connected``, with what the reader must not miss."""
    entry = state.entries.get(node)
    if entry is None:
        return f"{node} no report"
    text = f"{node} {entry.role}/{entry.disk_state} {entry.connection}"
    if node in state.outdated_nodes():
        text += " OUTDATED(record)"
    age = stale_for(view, entry, now)
    if age is not None:
        text += f" (stale: {_age_words(age)}, no agent)"
    return text


def _out_of_sync(state: VolumeState) -> str:
    most = max((e.out_of_sync_bytes for e in state.entries.values()), default=0)
    return human_bytes(most) if most else "0"


def volume_rows(view: ClusterView, now: float) -> list[list[str]]:
    rows = []
    for name, state in view.volume_states().items():
        cells = [replica_cell(state, node, view, now) for node in state.replicas]
        rows.append([name, ", ".join(cells), _out_of_sync(state), sync_words(state)])
    return rows


def split_brain_lines(state: VolumeState, view: ClusterView) -> list[str]:
    """What a split brain means and the commands that end it, keeping one side's data."""
    name = state.name
    lines = [
        f"SPLIT BRAIN on volume {name}: both replicas changed apart and nothing is "
        "resynced until you choose whose changes to discard."
    ]
    running = runs_on(view, name)
    primaries = [n for n in state.replicas if (e := state.entries.get(n)) and e.role == "Primary"]
    keep_first = [n for n in state.replicas if n in primaries or n in running]
    choices = keep_first[:1] if len(keep_first) == 1 else list(state.replicas)
    for keep in choices:
        other = state.peer(keep)
        if other is None:
            continue
        why = []
        if keep in primaries:
            why.append("Primary")
        if keep in running:
            why.append(f"{running[keep]} placed there")
        because = f" ({', '.join(why)})" if why else ""
        lines.append(f"  to keep {keep}'s data{because}, discarding {other}'s changes:")
        lines.append(f"    on {other}: {resolve_command(name, discard=True)}")
        lines.append(f"    then on {keep}: {resolve_command(name, discard=False)}")
    return lines


def volume_notes(view: ClusterView) -> list[str]:
    """Lines under the volume table: split brains, outdate records, last errors."""
    lines: list[str] = []
    for name, state in view.volume_states().items():
        if split_brain(state):
            lines += split_brain_lines(state, view)
        record = state.outdated
        if record is not None:
            who = ", ".join(state.outdated_nodes()) or (record.outdated or "?")
            lines.append(
                f"{name}: {who} {record.describe()}: not promoted until it resyncs from "
                f"{record.by or 'its peer'}"
            )
        for node in state.replicas:
            entry = state.entries.get(node)
            if entry is not None and entry.last_error:
                lines.append(f"{name} on {node}: last error: {entry.last_error}")
    return lines


def render_volumes(view: ClusterView, now: float, colour: bool = False) -> str:
    """The Volumes section of ``ha status``; "" when the cluster has no volume."""
    rows = volume_rows(view, now)
    if not rows:
        return ""
    parts = ["\nVolumes:\n", table(rows, ["NAME", "REPLICAS", "OUT-OF-SYNC", "SYNC"], colour)]
    parts += [f"  {line}\n" for line in volume_notes(view)]
    return "".join(parts)


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
    stale = f", STALE ({_age_words(age)}, its agent is not connected)" if age is not None else ""
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
