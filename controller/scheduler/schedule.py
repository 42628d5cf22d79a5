"""The scheduler: specs + node states + failure history + current placement + now -> placement.

A pure function: no I/O, no clock, no randomness. Colocation sets are placed one at a time
in a canonical order (what they depend on first, then by name), each on the best node by
the ranking in ``candidates``, so the same input always yields the same placement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from controller.scheduler import explain
from controller.scheduler.candidates import Candidate, candidate
from controller.scheduler.model import (
    Decision,
    DecisionStatus,
    Failure,
    Group,
    NodeState,
    VolumeFacts,
)
from controller.scheduler.snapshot import Snapshot, build


def schedule(
    groups: Iterable[Group],
    nodes: Iterable[NodeState],
    *,
    failures: Iterable[Failure] = (),
    current: Mapping[str, str | None] | None = None,
    now: float,
    volumes: Mapping[str, VolumeFacts] | None = None,
) -> dict[str, Decision]:
    """Decide where every group runs; returns one Decision per group, keyed and sorted by name.

    ``current`` maps groups to the node they run on now (missing or None: not running).
    ``now`` (epoch seconds) expires failures and ``ha move`` requests. ``volumes``: the
    replicated volumes by name; a group that uses one runs only where its data is
    (``volumes.py``; a volume missing here makes every node ineligible). Raises
    SchedulerInputError for contradictory specs (see ``snapshot.validate``).
    """
    snap = build(groups, nodes, failures, current or {}, now, volumes)
    placed: dict[str, Decision] = {}
    load: Counter[str] = Counter()
    for members in snap.bundles:
        _place_set(snap, members, placed, load)
    return {name: placed[name] for name in sorted(placed)}


def _place_set(
    snap: Snapshot, members: Sequence[str], placed: dict[str, Decision], load: Counter[str]
) -> None:
    enabled = [name for name in members if snap.groups[name].enabled]
    for name in members:
        if name not in enabled:
            placed[name] = Decision(name, None, DecisionStatus.UNPLACED, "not placed: disabled")
    if not enabled:
        return
    lost = {name: node for name in enabled if (node := snap.awaiting_fencing(name))}
    if lost:
        _hold_for_fencing(snap, enabled, lost, placed)
        return
    cands = [
        cand
        for node in snap.nodes
        if (cand := candidate(snap, members, node, placed, load)) is not None
    ]
    cands.sort(key=Candidate.rank)
    chosen = cands[0] if cands else None
    for name in enabled:
        if chosen is not None and name in chosen.running:
            reason = explain.placed_reason(snap, name, chosen, cands[1:])
            placed[name] = Decision(name, chosen.node, DecisionStatus.PLACED, reason)
    left = [name for name in enabled if name not in placed]
    # Mark them all first so each reason can point at a partner that is not placed either.
    for name in left:
        placed[name] = Decision(name, None, DecisionStatus.UNPLACED, "not placed")
    for name in left:
        reason = explain.unplaced(snap, name, chosen, placed)
        placed[name] = Decision(name, None, DecisionStatus.UNPLACED, reason)
    if chosen is not None:
        load[chosen.node] += len(chosen.running)


def _hold_for_fencing(
    snap: Snapshot, enabled: Sequence[str], lost: Mapping[str, str], placed: dict[str, Decision]
) -> None:
    # The group may still be running on the lost node; starting it anywhere else before that
    # node is fenced could make it active twice. Its colocated partners wait with it.
    for name in enabled:
        node = lost.get(name)
        if node is not None:
            reason = f"not moved: waiting until {node} is {snap.waits_for(node)}"
            placed[name] = Decision(name, node, DecisionStatus.AWAITING_FENCING, reason)
    for name in enabled:
        if name not in lost:
            holder = min(lost)
            reason = (
                f"not placed: colocated with {holder}, which waits until"
                f" {lost[holder]} is {snap.waits_for(lost[holder])}"
            )
            placed[name] = Decision(name, None, DecisionStatus.UNPLACED, reason)
