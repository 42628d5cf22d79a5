"""The replicated volumes in the status document, and the facts ``ha status`` and
``ha describe vol`` put in words (``controller/cli/status_volumes.py``). Pure.

Whether each replica may be promoted is the scheduler's own rule
(``scheduler/volumes.py``), so what is shown is what the leader decides on.
"""

from __future__ import annotations

from typing import Any

from controller.api.volume import ReplicaStatus
from controller.scheduler.from_api import volume_facts, volumes_used
from controller.scheduler.volumes import data_verdict
from controller.status.volume_text import NONE, resolve_command, sync_text
from controller.store.view import ClusterView, VolumeState

# An entry older than this whose node has no agent connected is shown as stale: nothing
# there can update it. (A connected node's entry may be old simply because nothing
# changed: entries are written on change.)
STALE_AFTER = 10.0


def stale_for(view: ClusterView, entry: ReplicaStatus, now: float) -> float | None:
    """How old a replica's entry is when it is stale (its node's agent not connected and
    the entry older than STALE_AFTER), else None."""
    phase = view.node_status.get(entry.node)
    connected = entry.node in view.agents and not (phase is not None and phase.phase == "Fenced")
    if connected:
        return None
    if entry.observed_at is None:
        return float("inf")
    age = now - entry.observed_at.timestamp()
    return age if age > STALE_AFTER else None


def split_brain(state: VolumeState) -> bool:
    return any(e.split_brain for e in state.entries.values())


def sync_words(state: VolumeState) -> str:
    if split_brain(state):
        return "SPLIT BRAIN"
    # The SyncSource knows the rate best; either side's entry will do.
    sources = [e for e in state.entries.values() if e.sync and e.sync.direction == "SyncSource"]
    targets = [e for e in state.entries.values() if e.sync and e.sync.direction == "SyncTarget"]
    for entry in sources + targets:
        if entry.sync is not None:
            return sync_text(entry.node, state.peer(entry.node), entry.sync)
    if len(state.entries) == len(state.replicas) and all(
        e.connection == "Connected" and not e.out_of_sync_bytes for e in state.entries.values()
    ):
        return "in sync"
    if any(e.connection in ("StandAlone", "Connecting", "Unknown") for e in state.entries.values()):
        return "not connected"
    return NONE


def runs_on(view: ClusterView, volume: str) -> dict[str, str]:
    """Groups using the volume, by the node their placement names."""
    out: dict[str, str] = {}
    for group_name, group in sorted(view.groups.items()):
        placement = view.placements.get(group_name)
        if volume in volumes_used(group) and placement is not None and placement.node:
            out[placement.node] = group_name
    return out


def promotable(view: ClusterView) -> dict[str, dict[str, str | None]]:
    """Per volume and replica node: None if its data may be promoted there (or stay
    Primary where its group is placed), else why not: the scheduler's rule, node
    liveness aside."""
    facts = volume_facts(view.volume_states())
    out: dict[str, dict[str, str | None]] = {}
    for name, fact in facts.items():
        placed = runs_on(view, name)
        out[name] = {node: data_verdict(fact, node, node in placed) for node in fact.replicas}
    return out


def volumes_json(view: ClusterView, now: float) -> list[dict[str, Any]]:
    verdicts = promotable(view)
    out = []
    for name, state in view.volume_states().items():
        replicas = []
        for node in state.replicas:
            entry = state.entries.get(node)
            age = stale_for(view, entry, now) if entry is not None else None
            replicas.append(
                {
                    "node": node,
                    "status": entry.model_dump(mode="json", by_alias=True) if entry else None,
                    "stale": age is not None,
                    "outdated": node in state.outdated_nodes(),
                    "promotable": verdicts[name][node] is None,
                    "notPromotableBecause": verdicts[name][node],
                }
            )
        record = state.outdated
        out.append(
            {
                "name": name,
                "replicas": replicas,
                "splitBrain": split_brain(state),
                # The same path on either node: run discardMine on the node whose changes
                # are thrown away, then connect on the other.
                "resolve": (
                    {
                        "discardMine": resolve_command(name, discard=True),
                        "connect": resolve_command(name, discard=False),
                    }
                    if split_brain(state)
                    else None
                ),
                "outdateRecord": None
                if record is None
                else {
                    "outdated": record.outdated,
                    "generation": record.generation,
                    "by": record.by,
                    "since": record.since,
                    "problem": record.problem or None,
                },
                "sync": sync_words(state),
            }
        )
    return out
