"""The leader's decision, as a pure function: from a snapshot of the cluster to the
placement records to write.

The scheduler says where each group should run. This module turns that into the
safe sequence of placement writes of docs/safety.md: a group leaves a live node in two
steps (nowhere, then the new node once the old one reports it stopped); it is recovered
from a lost node in one step; it waits while its node is silent but not yet lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from controller.api.cluster import Cluster
from controller.api.group import ResourceGroup, ResourceGroupStatus
from controller.api.node import Node
from controller.placement import FailureRecord, PlacementRecord
from controller.scheduler import Failure, Group, MoveTo, NodeState, schedule
from controller.scheduler import Placement as Decision
from controller.scheduler.model import Status

PeerState = Literal["up", "warn", "dead", "unknown"]


@dataclass(frozen=True)
class Liveness:
    """One member as the leader's heartbeat view sees it."""

    state: PeerState
    lost: bool  # declared lost by the majority rule of docs/safety.md
    # The member's current incarnation (a new one at every agent start or rejoin).
    incarnation: str | None = None

    @property
    def alive(self) -> bool:
        return self.state in ("up", "warn")


@dataclass(frozen=True)
class Snapshot:
    cluster: Cluster | None
    groups: Mapping[str, ResourceGroup]
    nodes: Mapping[str, Node]
    liveness: Mapping[str, Liveness]
    placements: Mapping[str, PlacementRecord]
    statuses: Mapping[str, ResourceGroupStatus]
    failures: Sequence[FailureRecord]
    now: float  # wall-clock seconds, for failure timeouts and move expiries


@dataclass(frozen=True)
class Outcome:
    writes: list[PlacementRecord]
    deletes: list[str]  # placements of groups that no longer exist
    notes: list[str]  # why a group is waiting, for logs and events


def to_scheduler_group(group: ResourceGroup) -> Group:
    spec = group.spec
    move = spec.placement.move_to
    timeout = spec.failure_timeout.total_seconds()
    return Group(
        name=group.name,
        nodes=tuple((n.name, n.score) for n in spec.placement.nodes),
        restricted=spec.placement.restricted,
        stickiness=spec.placement.stickiness,
        migration_threshold=spec.migration_threshold,
        failure_timeout=timeout if timeout > 0 else None,
        depends_on=tuple(spec.depends_on),
        colocate=tuple(spec.colocate),
        anti_colocate=tuple(spec.anti_colocate),
        enabled=spec.enabled,
        move_to=(
            MoveTo(move.node, move.until.timestamp() if move.until else None) if move else None
        ),
    )


def node_states(snapshot: Snapshot) -> list[NodeState]:
    if snapshot.cluster is None:
        return []
    states = []
    for member in snapshot.cluster.spec.nodes:
        if member.role != "server":
            continue
        seen = snapshot.liveness.get(member.name, Liveness("unknown", False))
        node = snapshot.nodes.get(member.name)
        standby = bool(node and node.spec.standby)
        # Silent but not provably stopped: whatever runs there must wait (docs/safety.md).
        pending = not seen.alive and not seen.lost
        states.append(NodeState(member.name, seen.alive, standby, pending))
    return states


def _stopped_by(status: ResourceGroupStatus | None, node: str, epoch: int) -> bool:
    return (
        status is not None
        and status.reporter == node
        and (status.placement_epoch or 0) >= epoch
        and status.phase in ("Stopped", "Failed")
    )


def decide(snapshot: Snapshot, leader: str) -> Outcome:
    groups = [to_scheduler_group(g) for g in snapshot.groups.values()]
    current = {
        name: record.node
        for name, record in snapshot.placements.items()
        if name in snapshot.groups and record.node
    }
    failures = [
        Failure(f.group, f.node, f.count, f.last_failure)
        for f in snapshot.failures
        if f.group in snapshot.groups
    ]
    decisions = schedule(
        groups, node_states(snapshot), failures=failures, current=current, now=snapshot.now
    )
    writes: list[PlacementRecord] = []
    notes: list[str] = []
    for name in sorted(decisions):
        record = snapshot.placements.get(name)
        write, note = _next_record(snapshot, decisions[name], record, leader)
        if write is not None:
            writes.append(write)
        if note:
            notes.append(note)
    deletes = sorted(set(snapshot.placements) - set(snapshot.groups))
    return Outcome(writes, deletes, notes)


def _next_record(
    snapshot: Snapshot, decision: Decision, record: PlacementRecord | None, leader: str
) -> tuple[PlacementRecord | None, str]:
    group = decision.group
    epoch = record.epoch if record else 0
    have = record.node if record else None
    if decision.status is Status.AWAITING_FENCING:
        return None, f"{group}: {decision.reason}"
    want = decision.runs_on

    def record_for(
        node: str | None,
        reason: str,
        stopping_from: str | None = None,
        recovered_from: str | None = None,
    ) -> PlacementRecord:
        target = snapshot.liveness.get(node) if node else None
        lost = snapshot.liveness.get(recovered_from) if recovered_from else None
        previous = record.incarnation if record and record.node == recovered_from else None
        return PlacementRecord(
            group,
            node,
            epoch + 1,
            reason,
            stopping_from,
            recovered_from,
            leader=leader,
            incarnation=target.incarnation if target else None,
            recovered_incarnation=previous or (lost.incarnation if lost else None),
        )

    if want == have:
        seen = snapshot.liveness.get(have, Liveness("unknown", False)) if have else None
        if (
            record is not None
            and have is not None
            and seen is not None
            and seen.alive
            and seen.incarnation
            and record.incarnation != seen.incarnation
        ):
            # The agent there restarted (or rejoined): it keeps what runs but starts
            # nothing until a placement names its new incarnation.
            reason = f"confirmed on {have}, whose agent started again: {decision.reason}"
            return record_for(have, reason), ""
        return None, ""
    if have is None:
        # A group told to stop on a live node moves on only once that node says so.
        stopping = record.stopping_from if record else None
        if stopping and want is not None:
            seen = snapshot.liveness.get(stopping, Liveness("unknown", False))
            confirmed = _stopped_by(snapshot.statuses.get(group), stopping, epoch)
            if seen.alive and not confirmed:
                return None, f"{group}: waiting for {stopping} to stop it before {want} starts it"
            if not seen.alive and not seen.lost:
                return None, f"{group}: waiting for silent {stopping} to be declared lost"
            if not seen.alive:
                return record_for(want, decision.reason, recovered_from=stopping), ""
        if want is None:
            return None, ""
        return record_for(want, decision.reason), ""
    seen = snapshot.liveness.get(have, Liveness("unknown", False))
    if seen.lost:
        return record_for(want, decision.reason, recovered_from=have), ""
    if want is None:
        return record_for(None, decision.reason, stopping_from=have), ""
    reason = f"stopping on {have} first: {decision.reason}"
    return record_for(None, reason, stopping_from=have), ""
