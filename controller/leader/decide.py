"""The leader's decision, as a pure function: from the cluster view and the leader's
heartbeat view to the placement records to write.

The scheduler says where each group should run. This module turns that into the
safe sequence of placement writes of docs/safety.md: a group leaves a live node in two
steps (nowhere, then the new node once the old one reports it stopped); it is recovered
from a lost node in one step; it waits while its node is silent but not yet lost. A group
that cannot be placed anywhere gets a placement of no node that says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.api.group import ResourceGroupStatus
from controller.api.liveness import UNKNOWN, Liveness
from controller.leader.fencing_plan import awaiting_fence
from controller.scheduler import Decision, DecisionStatus, Failure, schedule
from controller.scheduler.from_api import node_states, to_scheduler_group, volume_facts
from controller.store.records import PlacementRecord
from controller.store.view import ClusterView


@dataclass(frozen=True)
class PlacementPlan:
    writes: list[PlacementRecord]
    deletes: list[str]  # placements of groups that no longer exist
    notes: list[str]  # why a group is waiting, for logs and events


def _stopped_by(status: ResourceGroupStatus | None, node: str, epoch: int) -> bool:
    return (
        status is not None
        and status.reporter == node
        and (status.placement_epoch or 0) >= epoch
        and status.phase in ("Stopped", "Failed")
    )


def decide(
    view: ClusterView, liveness: Mapping[str, Liveness], now: float, leader: str
) -> PlacementPlan:
    """``liveness``: the leader's heartbeat view; ``now``: wall-clock seconds, for failure
    timeouts and move expiries; ``leader``: the deciding node, recorded in each write."""
    groups = [to_scheduler_group(g) for g in view.groups.values()]
    current = {
        name: record.node
        for name, record in view.placements.items()
        if name in view.groups and record.node
    }
    failures = [
        Failure(f.group, f.node, f.count, f.last_failure)
        for f in view.failures
        if f.group in view.groups
    ]
    waiting = awaiting_fence(view, liveness)
    states = node_states(view.cluster, view.nodes, liveness, waiting)
    decisions = schedule(
        groups,
        states,
        failures=failures,
        current=current,
        now=now,
        volumes=volume_facts(view.volume_states()),
    )
    writes: list[PlacementRecord] = []
    notes: list[str] = []
    for name in sorted(decisions):
        record = view.placements.get(name)
        write, note = _next_record(view, liveness, decisions[name], record, leader, waiting)
        if write is not None:
            writes.append(write)
        if note:
            notes.append(note)
    deletes = sorted(set(view.placements) - set(view.groups))
    return PlacementPlan(writes, deletes, notes)


def _next_record(
    view: ClusterView,
    liveness: Mapping[str, Liveness],
    decision: Decision,
    record: PlacementRecord | None,
    leader: str,
    waiting: frozenset[str] = frozenset(),
) -> tuple[PlacementRecord | None, str]:
    group = decision.group
    epoch = record.epoch if record else 0
    have = record.node if record else None
    if decision.status is DecisionStatus.AWAITING_FENCING:
        return None, f"{group}: {decision.reason}"
    want = decision.runs_on

    def record_for(
        node: str | None,
        reason: str,
        stopping_from: str | None = None,
        recovered_from: str | None = None,
    ) -> PlacementRecord:
        target = liveness.get(node) if node else None
        lost = liveness.get(recovered_from) if recovered_from else None
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

    if want is None and have is None:
        stopping = record.stopping_from if record else None
        if stopping is None and _says_more(view, decision, record):
            # Held with nothing running and no stop to confirm: the record carries the
            # scheduler's reason (no UpToDate replica, every node lost, ...) so that
            # `ha status` can say why; no node acts on a placement of no node.
            return record_for(None, decision.reason), ""
        return None, ""
    if want == have:
        seen = liveness.get(have, UNKNOWN) if have else None
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
            seen = liveness.get(stopping, UNKNOWN)
            confirmed = _stopped_by(view.group_status.get(group), stopping, epoch)
            if seen.alive and not confirmed:
                return None, f"{group}: waiting for {stopping} to stop it before {want} starts it"
            if not seen.alive and not seen.lost:
                return None, f"{group}: waiting for silent {stopping} to be declared lost"
            if stopping in waiting:
                return None, f"{group}: waiting for lost {stopping} to be fenced"
            if not seen.alive:
                return record_for(want, decision.reason, recovered_from=stopping), ""
        if want is None:
            return None, ""
        return record_for(want, decision.reason), ""
    seen = liveness.get(have, UNKNOWN)
    if have in waiting:
        return None, f"{group}: waiting for lost {have} to be fenced"
    if seen.lost:
        return record_for(want, decision.reason, recovered_from=have), ""
    if want is None:
        return record_for(None, decision.reason, stopping_from=have), ""
    reason = f"stopping on {have} first: {decision.reason}"
    return record_for(None, reason, stopping_from=have), ""


def _says_more(view: ClusterView, decision: Decision, record: PlacementRecord | None) -> bool:
    """An enabled group the scheduler cannot place, whose record does not say why yet."""
    group = view.groups.get(decision.group)
    return (
        group is not None
        and group.spec.enabled
        and decision.status is DecisionStatus.UNPLACED
        and (record is None or record.reason != decision.reason)
    )


def next_deadline(view: ClusterView, now: float) -> float | None:
    """The first wall-clock time after `now` at which `decide` may answer differently for
    the same view and liveness: a failure that expires (``failureTimeout``) or an ``ha
    move`` that ends. None if no such time is ahead."""
    ahead: list[float] = []
    for failure in view.failures:
        group = view.groups.get(failure.group)
        timeout = group.spec.failure_timeout.total_seconds() if group is not None else 0.0
        if timeout > 0 and failure.last_failure + timeout > now:
            ahead.append(failure.last_failure + timeout)
    for group in view.groups.values():
        move = group.spec.placement.move_to
        if move is not None and move.until is not None and move.until.timestamp() > now:
            ahead.append(move.until.timestamp())
    return min(ahead, default=None)
