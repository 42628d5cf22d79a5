"""What a spec change would do to placements: the crm_simulate part of `ha apply --dry-run`.

Runs the scheduler twice over the liveness the cluster last published (each Node's
status phase, written by the leader from its heartbeat view) and the current placements:
once on the stored specs, once on the specs the apply would leave. The difference is what
the change itself causes. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.api.cluster import Cluster
from controller.api.group import ResourceGroup
from controller.api.meta import Object
from controller.api.node import Node, NodeStatus
from controller.decide import Liveness, Snapshot, node_states, to_scheduler_group
from controller.scheduler import Change, Placement, diff_placements, schedule, start_order
from controller.validation import ObjectKey

_PHASE_LIVENESS = {
    "Ready": Liveness("up", False),
    "NotReady": Liveness("dead", False),
    "Lost": Liveness("dead", True),
    "Fenced": Liveness("dead", True),
}


def liveness_from(node_status: Mapping[str, NodeStatus]) -> dict[str, Liveness]:
    unknown = Liveness("unknown", False)
    return {name: _PHASE_LIVENESS.get(s.phase, unknown) for name, s in node_status.items()}


def _schedule(
    state: Mapping[ObjectKey, Object],
    liveness: Mapping[str, Liveness],
    current: Mapping[str, str],
    now: float,
) -> tuple[dict[str, Placement], list[str]]:
    clusters = [o for o in state.values() if isinstance(o, Cluster)]
    groups = {o.name: o for o in state.values() if isinstance(o, ResourceGroup)}
    nodes = {o.name: o for o in state.values() if isinstance(o, Node)}
    snapshot = Snapshot(
        cluster=clusters[0] if clusters else None,
        groups=groups,
        nodes=nodes,
        liveness=liveness,
        placements={},
        statuses={},
        failures=[],
        now=now,
    )
    scheduler_groups = [to_scheduler_group(g) for g in groups.values()]
    result = schedule(
        scheduler_groups,
        node_states(snapshot),
        current={g: n for g, n in current.items() if g in groups},
        now=now,
    )
    return dict(result), start_order(scheduler_groups)


def placement_changes(
    before: Mapping[ObjectKey, Object],
    after: Mapping[ObjectKey, Object],
    liveness: Mapping[str, Liveness],
    current: Mapping[str, str],
    now: float,
) -> list[Change]:
    """Placement changes the new specs cause beyond what the old ones would do anyway."""
    old, _ = _schedule(before, liveness, current, now)
    new, order = _schedule(after, liveness, current, now)
    baseline: dict[str, str | None] = {g: p.runs_on for g, p in old.items()}
    return diff_placements(baseline, new, order)
