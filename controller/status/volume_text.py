"""Words for a replicated volume's state, shared by ``ha status``, ``ha get`` and
``ha describe`` (``controller/cli/status_volumes.py``, ``output.py``) and the status
document (``volumes.py``). Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

from controller.api.local_status import DEFAULT_RUN_DIR
from controller.api.volume import ReplicaStatus, SyncProgress

NONE = "<none>"  # an empty cell, in every table of ha


def control_socket(volume: str) -> str:
    """The replica's control socket on its node, as the node agent lays it out
    (``nodeagent/actuators/volume_paths.py`` with the default run dir: the control plane
    may not import the node agent, and a unit test keeps the two equal)."""
    return str(PurePosixPath(DEFAULT_RUN_DIR) / "volumes" / volume / "control.sock")


def resolve_command(volume: str, discard: bool) -> str:
    """``blockrepl resolve`` on one replica: ``--discard-mine`` where the changes are thrown
    away (it becomes SyncTarget), ``--connect`` on the replica whose data is kept."""
    how = "--discard-mine" if discard else "--connect"
    return f"blockrepl resolve {how} --control {control_socket(volume)}"


def human_bytes(count: float) -> str:
    """``1.5 GiB``, ``512 B``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns


def human_seconds(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h10m``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{total % 3600 // 60:02d}m"


def sync_text(node: str, peer: str | None, sync: SyncProgress) -> str:
    """``host-m->host-s 42.0% at 180.0 MiB/s, ETA 1m05s``."""
    source, target = (node, peer) if sync.direction == "SyncSource" else (peer, node)
    text = f"{source or '?'}->{target or '?'} {sync.percent:.1f}%"
    if sync.rate:
        text += f" at {human_bytes(sync.rate)}/s"
    if sync.eta_seconds is not None:
        text += f", ETA {human_seconds(sync.eta_seconds)}"
    return text


def replica_columns(statuses: Mapping[str, ReplicaStatus], nodes: list[str]) -> dict[str, str]:
    """``ha get vol`` cells: ROLE, DISK, CONNECTION per node (``host-m:Primary,...``), SYNC."""

    def per_node(pick: Callable[[ReplicaStatus], str]) -> str:
        parts = [f"{n}:{pick(statuses[n])}" for n in nodes if n in statuses]
        return ",".join(parts) or NONE

    sync = NONE
    if any(s.split_brain for s in statuses.values()):
        sync = "SPLIT BRAIN"
    else:
        for node in nodes:
            entry = statuses.get(node)
            if entry is not None and entry.sync is not None:
                peer = next((n for n in nodes if n != node), None)
                sync = sync_text(node, peer, entry.sync)
                break
        else:
            if statuses and all(
                s.connection == "Connected" and not s.out_of_sync_bytes for s in statuses.values()
            ):
                sync = "in sync"
    connections = {s.connection for s in statuses.values()}
    return {
        "ROLE": per_node(lambda s: s.role),
        "DISK": per_node(lambda s: s.disk_state),
        "CONNECTION": connections.pop()
        if len(connections) == 1
        else per_node(lambda s: s.connection),
        "SYNC": sync,
    }
