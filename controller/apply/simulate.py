"""What a spec change would do to placements: the crm_simulate part of `ha apply --dry-run`.

Runs the scheduler twice over the liveness the cluster last published (each Node's
status phase, written by the leader from its heartbeat view) and the current placements:
once on the stored specs, once on the specs the apply would leave. The difference is what
the change itself causes. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controller.api.liveness import Liveness, from_phase
from controller.api.meta import Object
from controller.scheduler import Decision, PlacementChange, diff_placements, schedule
from controller.scheduler.from_api import (
    group_start_order,
    node_states,
    to_scheduler_group,
    volume_facts,
)
from controller.store.view import ClusterView


def published_liveness(view: ClusterView) -> dict[str, Liveness]:
    """Each member as the leader last published it (its Node status phase)."""
    return {name: from_phase(status.phase) for name, status in view.node_status.items()}


def _schedule(view: ClusterView, now: float) -> dict[str, Decision]:
    current: Mapping[str, str | None] = {
        group: record.node
        for group, record in view.placements.items()
        if group in view.groups and record.node
    }
    return dict(
        schedule(
            [to_scheduler_group(g) for g in view.groups.values()],
            node_states(view.cluster, view.nodes, published_liveness(view)),
            current=current,
            now=now,
            volumes=volume_facts(view.volume_states()),
        )
    )


def placement_changes(
    view: ClusterView, after: Iterable[Object], now: float
) -> list[PlacementChange]:
    """Placement changes the specs ``after`` cause beyond what ``view``'s own specs would
    do anyway (a lost node's groups move whether or not anything is applied)."""
    changed = view.with_specs(after)
    old = _schedule(view, now)
    new = _schedule(changed, now)
    baseline: dict[str, str | None] = {g: d.runs_on for g, d in old.items()}
    return diff_placements(baseline, new, group_start_order(changed.groups.values()))
