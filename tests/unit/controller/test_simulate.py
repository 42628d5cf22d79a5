"""`ha apply --dry-run` shows the placement changes a spec change causes."""

from __future__ import annotations

import copy
from pathlib import Path

from controller.api.decode import decode
from controller.api.meta import Object
from controller.api.node import NodeStatus
from controller.apply.simulate import liveness_from, placement_changes
from controller.manifest import load
from controller.validation import ObjectKey

EXAMPLES = Path(__file__).resolve().parents[3] / "deploy" / "examples"
NOW = 1_800_000_000.0


def pg_state() -> dict[ObjectKey, Object]:
    objects = [decode(d.data) for d in load([str(EXAMPLES / "pg")])]
    return {(o.KIND, o.name): o for o in objects}


def edited_group(state: dict[ObjectKey, Object], **placement: object) -> dict[ObjectKey, Object]:
    data = copy.deepcopy(state["ResourceGroup", "pg"].to_dict())
    data["spec"]["placement"].update(placement)
    out = dict(state)
    out["ResourceGroup", "pg"] = decode(data)
    return out


READY = liveness_from({"host-m": NodeStatus(phase="Ready"), "host-s": NodeStatus(phase="Ready")})


def test_fail_back_setting_moves_the_group_home() -> None:
    before = pg_state()
    after = edited_group(before, stickiness=0)
    changes = placement_changes(before, after, READY, {"pg": "host-s"}, NOW)
    assert [str(c).split(":")[0] for c in changes] == ["move pg host-s -> host-m"]


def test_a_change_that_moves_nothing_shows_nothing() -> None:
    before = pg_state()
    after = edited_group(before, stickiness=200)
    assert placement_changes(before, after, READY, {"pg": "host-m"}, NOW) == []


def test_a_lost_node_is_not_a_target() -> None:
    before = pg_state()
    lost = liveness_from({"host-m": NodeStatus(phase="Lost"), "host-s": NodeStatus(phase="Ready")})
    after = edited_group(before, stickiness=0)
    # Recovery off host-m happens anyway (baseline); the edit adds nothing.
    assert placement_changes(before, after, lost, {"pg": "host-m"}, NOW) == []
    removed = {k: v for k, v in before.items() if k != ("ResourceGroup", "pg")}
    [stop] = placement_changes(before, removed, READY, {"pg": "host-m"}, NOW)
    assert str(stop).startswith("stop pg on host-m")
