"""Candidate nodes for one colocation set, and the order that ranks them.

A colocation set (groups joined by ``colocate``) always lands on one node. On each node
some of its members can run: enabled, eligible there, dependencies placed, colocation
targets running there too. The best node is the first by ``Candidate.rank``:

1. fewest anti-colocated groups already on the node (a hard rule while avoidable);
2. fewest anti-colocated groups left without any free node (one-step look-ahead);
3. most members with an active ``ha move`` to the node (an operator's move beats scores);
4. most members able to run (availability);
5. highest combined score, stickiness included for members already there;
6. most members already there (no needless move on a tie);
7. fewest groups already placed on the node (spreading);
8. node name (determinism).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.scheduler.model import Decision, DecisionStatus
from controller.scheduler.snapshot import Snapshot


@dataclass(frozen=True)
class Candidate:
    node: str
    running: tuple[str, ...]
    conflicts: tuple[str, ...]
    strands: tuple[str, ...]
    moves: tuple[str, ...]
    base: int
    sticky: int
    here: int
    load: int

    @property
    def score(self) -> int:
        return self.base + self.sticky

    def rank(self) -> tuple[int, int, int, int, int, int, int, str]:
        return (
            len(self.conflicts),
            len(self.strands),
            -len(self.moves),
            -len(self.running),
            -self.score,
            -self.here,
            self.load,
            self.node,
        )


def runnable(
    snap: Snapshot, members: Sequence[str], node: str, placed: Mapping[str, Decision]
) -> tuple[str, ...]:
    """Members of the colocation set that can run on ``node`` (the largest such subset)."""
    inside = set(members)

    def standalone(name: str) -> bool:
        group = snap.groups[name]
        if not group.enabled or snap.verdicts[name][node] is not None:
            return False
        for dep in group.depends_on:
            if dep in inside:
                continue
            done = placed.get(dep)
            if done is None or done.status is not DecisionStatus.PLACED:
                return False
        return all(target in inside for target in group.colocate)

    able = {name for name in members if standalone(name)}
    # Drop members whose in-set dependency or colocation target cannot run, until stable;
    # mutual colocation (a with b, b with a) is fine, both stay.
    changed = True
    while changed:
        changed = False
        for name in sorted(able):
            group = snap.groups[name]
            needs = [d for d in group.depends_on if d in inside] + list(group.colocate)
            if any(need not in able for need in needs):
                able.discard(name)
                changed = True
    return tuple(sorted(able))


def _hosts_of_partners(snap: Snapshot, group: str, placed: Mapping[str, Decision]) -> set[str]:
    hosts: set[str] = set()
    for other in snap.anti[group]:
        done = placed.get(other)
        if done is not None and done.runs_on is not None:
            hosts.add(done.runs_on)
    return hosts


def candidate(
    snap: Snapshot,
    members: Sequence[str],
    node: str,
    placed: Mapping[str, Decision],
    load: Mapping[str, int],
) -> Candidate | None:
    running = runnable(snap, members, node, placed)
    if not running:
        return None
    inside = set(members)
    conflicts: set[str] = set()
    strands: set[str] = set()
    for name in running:
        for other in snap.anti[name]:
            done = placed.get(other)
            if done is not None:
                if done.runs_on == node:
                    conflicts.add(other)
                continue
            if other in inside or not snap.groups[other].enabled:
                continue
            if snap.awaiting_fencing(other) is not None:
                continue
            free = set(snap.eligible(other)) - _hosts_of_partners(snap, other, placed)
            if free == {node}:
                strands.add(other)
    moves = []
    base = sticky = here = 0
    for name in running:
        group = snap.groups[name]
        move = group.move_to
        if move is not None and move.active(snap.now) and move.node == node:
            moves.append(name)
        base += group.score_on(node)
        if snap.current.get(name) == node:
            sticky += group.stickiness
            here += 1
    return Candidate(
        node=node,
        running=running,
        conflicts=tuple(sorted(conflicts)),
        strands=tuple(sorted(strands)),
        moves=tuple(moves),
        base=base,
        sticky=sticky,
        here=here,
        load=load.get(node, 0),
    )
