"""Reason sentences: each decision says, in one line, why (Patroni style).

A choice between nodes is explained by the first ranking rule (see ``candidates``) on
which the winner beat the node it is compared with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from controller.scheduler.candidates import Candidate
from controller.scheduler.model import Decision, DecisionStatus
from controller.scheduler.scoring import describe_ineligible
from controller.scheduler.snapshot import Snapshot


def score_text(cand: Candidate) -> str:
    prefix = "combined score" if len(cand.running) > 1 else "score"
    if cand.sticky:
        return f"{prefix} {cand.base} + stickiness {cand.sticky} = {cand.score}"
    return f"{prefix} {cand.base}"


def compare(win: Candidate, other: Candidate) -> str:
    """Why ``win`` ranks before ``other``, naming the deciding rule."""
    if len(win.conflicts) < len(other.conflicts):
        return f"{other.node} already runs anti-colocated {', '.join(other.conflicts)}"
    if len(win.strands) < len(other.strands):
        return f"{other.node} is the last free node for anti-colocated {', '.join(other.strands)}"
    if len(win.moves) > len(other.moves):
        return f"ha move to {win.node}"
    if len(win.running) > len(other.running):
        return (
            f"{len(win.running)} colocated groups can run on {win.node},"
            f" only {len(other.running)} on {other.node}"
        )
    if win.score > other.score:
        return f"{score_text(win)} beats {other.node} {score_text(other)}"
    if win.here > other.here:
        return f"already there; {other.node} ties at {score_text(other)}"
    if win.load < other.load:
        return (
            f"ties {other.node} at {score_text(other)}; fewer groups there"
            f" ({win.load} vs {other.load})"
        )
    groups = "group" if win.load == 1 else "groups"
    return f"ties {other.node} at {score_text(other)} and {win.load} {groups} each; first by name"


def _waits(snap: Snapshot, done: Decision) -> str:
    return snap.waits_for(done.node) if done.node else "declared lost"


def _blocker(snap: Snapshot, name: str, placed: Mapping[str, Decision]) -> str | None:
    """A missing or unplaced dependency or colocation target, worded as a reason."""
    group = snap.groups[name]
    for dep in sorted(group.depends_on):
        if dep not in snap.groups:
            return f"depends on {dep}, which does not exist"
        done = placed.get(dep)
        if done is not None and done.status is DecisionStatus.AWAITING_FENCING:
            return f"depends on {dep}, which waits until {done.node} is {_waits(snap, done)}"
        if done is not None and done.status is DecisionStatus.UNPLACED:
            return f"depends on {dep}, which is not placed"
    for target in sorted(group.colocate):
        if target not in snap.groups:
            return f"colocated with {target}, which does not exist"
        done = placed.get(target)
        if done is not None and done.status is DecisionStatus.AWAITING_FENCING:
            return f"colocated with {target}, which waits until {done.node} is {_waits(snap, done)}"
        if done is not None and done.status is DecisionStatus.UNPLACED:
            return f"colocated with {target}, which is not placed"
    return None


def unplaced(
    snap: Snapshot,
    name: str,
    chosen: Candidate | None,
    placed: Mapping[str, Decision],
) -> str:
    """Why an enabled member of a colocation set does not run."""
    blocker = _blocker(snap, name, placed)
    if blocker is not None:
        return f"not placed: {blocker}"
    verdicts = snap.verdicts[name]
    if all(why is not None for why in verdicts.values()):
        if not verdicts:
            return "not placed: the cluster has no nodes"
        listed = describe_ineligible(why for why in verdicts.values() if why is not None)
        return f"not placed: no eligible node ({listed})"
    if chosen is not None:
        why = verdicts[chosen.node]
        if why is not None:
            return (
                f"not placed: must run with {', '.join(chosen.running)} (colocated) on"
                f" {chosen.node}, which is {why.short} for it"
            )
    return "not placed: no node can run it together with its colocated groups"


def _rival(chosen: Candidate, others: Sequence[Candidate]) -> Candidate:
    # Explain against a better-scoring node that lost on a harder rule (anti-colocation, a
    # move) when there is one: that is the surprising part. Otherwise against the runner-up.
    top = others[0]
    for cand in others:
        if cand.score > top.score:
            top = cand
    return top if top.score > chosen.score else others[0]


def placed_reason(
    snap: Snapshot,
    name: str,
    chosen: Candidate,
    others: Sequence[Candidate],
) -> str:
    """Why ``name`` runs on ``chosen.node``; ``others`` are the losing candidates, best first."""
    node = chosen.node
    group = snap.groups[name]
    previous = snap.current.get(name)
    notes: list[str] = []
    by_node = {cand.node: cand for cand in others}
    if previous is not None and previous != node:
        head = f"moved to {node}"
        why = snap.verdicts[name].get(previous)
        was = by_node.get(previous)
        if previous not in snap.nodes:
            cause = f"{previous} is not a cluster member"
        elif why is not None:
            cause = why.sentence(name)
        elif was is None or name not in was.running:
            cause = f"{previous} cannot run it together with its colocated groups"
        else:
            cause = compare(chosen, was)
            if group.stickiness == 0 and chosen.score > was.score and not chosen.moves:
                cause += " (stickiness 0: fail back)"
        notes.append(cause)
    else:
        head = f"stays on {node}" if previous == node else f"placed on {node}"
        notes.append(compare(chosen, _rival(chosen, others)) if others else "only eligible node")
    partners = [other for other in chosen.running if other != name]
    if partners:
        notes.append(f"colocated with {', '.join(partners)}")
    sharing = sorted(set(snap.anti[name]) & set(chosen.conflicts))
    if sharing:
        notes.append(
            f"shares {node} with anti-colocated {', '.join(sharing)}: no other eligible node"
        )
    move = group.move_to
    if move is not None and move.active(snap.now) and move.node != node:
        why = snap.verdicts[name].get(move.node)
        target = by_node.get(move.node)
        if move.node not in snap.nodes:
            notes.append(f"ha move to {move.node} ignored: not a cluster member")
        elif why is not None:
            notes.append(f"ha move to {move.node} ignored: {why.sentence(name)}")
        elif target is not None and name in target.running:
            notes.append(f"ha move to {move.node} not possible: {compare(chosen, target)}")
        else:
            notes.append(f"ha move to {move.node} not possible with its colocated groups")
    if head.startswith("moved"):
        return f"{head}: {'; '.join(notes)}"
    return f"{head} ({'; '.join(notes)})"
