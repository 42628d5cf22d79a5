"""`ha apply --dry-run` shows the placement changes a spec change causes."""

from __future__ import annotations

import copy
from dataclasses import replace

from controller.api.decode import decode
from controller.api.manifest import load
from controller.api.meta import Object
from controller.api.node import NodeStatus
from controller.apply.simulate import placement_changes, published_liveness
from controller.apply.validation import ObjectKey
from controller.store.records import PlacementRecord
from controller.store.view import ClusterView
from tests.paths import EXAMPLES

NOW = 1_800_000_000.0
READY = {"host-m": NodeStatus(phase="Ready"), "host-s": NodeStatus(phase="Ready")}


def pg_state() -> dict[ObjectKey, Object]:
    objects = [decode(d.data) for d in load([str(EXAMPLES / "pg")])]
    return {(o.KIND, o.name): o for o in objects}


def edited_group(state: dict[ObjectKey, Object], **placement: object) -> dict[ObjectKey, Object]:
    data = copy.deepcopy(state["ResourceGroup", "pg"].to_dict())
    data["spec"]["placement"].update(placement)
    out = dict(state)
    out["ResourceGroup", "pg"] = decode(data)
    return out


def published(
    state: dict[ObjectKey, Object], phases: dict[str, NodeStatus], pg_on: str
) -> ClusterView:
    """The cluster as the store holds it: these specs, these Node phases, pg on ``pg_on``."""
    return replace(
        ClusterView.of_specs(state.values()),
        node_status=phases,
        placements={"pg": PlacementRecord("pg", pg_on, 3, "best")},
    )


def test_fail_back_setting_moves_the_group_home() -> None:
    before = pg_state()
    after = edited_group(before, stickiness=0)
    changes = placement_changes(published(before, READY, "host-s"), after.values(), NOW)
    assert [str(c).split(":")[0] for c in changes] == ["move pg host-s -> host-m"]


def test_a_change_that_moves_nothing_shows_nothing() -> None:
    before = pg_state()
    after = edited_group(before, stickiness=200)
    assert placement_changes(published(before, READY, "host-m"), after.values(), NOW) == []


def test_a_lost_node_is_not_a_target() -> None:
    before = pg_state()
    lost = {"host-m": NodeStatus(phase="Lost"), "host-s": NodeStatus(phase="Ready")}
    after = edited_group(before, stickiness=0)
    # Recovery off host-m happens anyway (baseline); the edit adds nothing.
    assert placement_changes(published(before, lost, "host-m"), after.values(), NOW) == []
    removed = {k: v for k, v in before.items() if k != ("ResourceGroup", "pg")}
    [stop] = placement_changes(published(before, READY, "host-m"), removed.values(), NOW)
    assert str(stop).startswith("stop pg on host-m")


def test_the_published_phases_read_back_as_liveness() -> None:
    phases = {"a": "Ready", "b": "NotReady", "c": "Lost", "d": "Unknown"}
    view = ClusterView(node_status={n: NodeStatus(phase=p) for n, p in phases.items()})  # type: ignore[arg-type]
    seen = published_liveness(view)
    assert [(seen[n].alive, seen[n].lost) for n in "abcd"] == [
        (True, False),
        (False, False),
        (False, True),
        (False, False),
    ]
