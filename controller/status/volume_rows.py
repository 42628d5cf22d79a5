"""The rows and lines of the Volumes section that ``ha status`` prints and the agents'
status page shows, and the split-brain commands ``ha describe vol`` repeats. Pure."""

from __future__ import annotations

from controller.status.volume_text import human_bytes, human_seconds, resolve_command
from controller.status.volumes import runs_on, split_brain, stale_for, sync_words
from controller.store.view import ClusterView, VolumeState

VOLUME_HEADER = ["NAME", "REPLICAS", "OUT-OF-SYNC", "SYNC"]


def age_words(age: float) -> str:
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
        text += f" (stale: {age_words(age)}, no agent)"
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
