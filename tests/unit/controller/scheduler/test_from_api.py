"""From the API's objects and a heartbeat view to the scheduler's input (from_api.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.api.cluster import Cluster
from controller.api.decode import decode
from controller.api.group import MoveTo, ResourceGroup
from controller.api.liveness import Liveness
from controller.api.manifest import load
from controller.api.meta import ObjectMeta
from controller.api.node import Node, NodeSpec
from controller.scheduler.from_api import group_start_order, node_states, to_scheduler_group
from tests.paths import EXAMPLES


def pg() -> tuple[Cluster, ResourceGroup]:
    objects = [decode(d.data) for d in load([str(EXAMPLES / "pg")])]
    cluster = next(o for o in objects if isinstance(o, Cluster))
    group = next(o for o in objects if isinstance(o, ResourceGroup))
    return cluster, group


def test_a_group_keeps_its_placement_rules_in_plain_values() -> None:
    _, group = pg()
    until = datetime(2030, 1, 1, tzinfo=UTC)
    moved = group.model_copy(
        update={
            "spec": group.spec.model_copy(
                update={
                    "placement": group.spec.placement.model_copy(
                        update={"move_to": MoveTo(node="host-s", until=until)}
                    )
                }
            )
        }
    )
    plain = to_scheduler_group(moved)
    assert plain.nodes == (("host-m", 100), ("host-s", 50))
    assert plain.restricted and plain.stickiness == 100 and plain.migration_threshold == 3
    assert plain.move_to is not None and plain.move_to.until == until.timestamp()
    assert to_scheduler_group(group).failure_timeout == group.spec.failure_timeout.total_seconds()


def test_node_states_from_the_heartbeat_view() -> None:
    cluster, _ = pg()
    standby = {
        "host-s": Node(
            api_version="ha.vigil.dev/v1alpha1",
            kind="Node",
            metadata=ObjectMeta(name="host-s"),
            spec=NodeSpec(standby=True),
        )
    }
    seen = {"host-m": Liveness("dead", False), "host-s": Liveness("up", False)}
    states = {s.name: s for s in node_states(cluster, standby, seen)}
    assert not states["host-m"].alive and states["host-m"].fenced_pending  # silent, not lost
    assert states["host-s"].alive and states["host-s"].standby
    lost = {s.name: s for s in node_states(cluster, {}, {"host-m": Liveness("dead", True)})}
    assert not lost["host-m"].fenced_pending and not lost["host-s"].alive  # unknown: not alive
    assert node_states(None, {}, seen) == []


def test_start_order_of_api_groups() -> None:
    _, group = pg()
    assert group_start_order([group]) == ["pg"]


def test_a_groups_volumes_and_each_volumes_facts_come_from_the_view() -> None:
    from controller.api.volume import ReplicaStatus, SyncProgress
    from controller.scheduler import ReplicaReport
    from controller.scheduler.from_api import volume_facts
    from controller.store.outdate_record import OutdateRecord
    from controller.store.view import VolumeState

    _, group = pg()
    assert to_scheduler_group(group).volumes == ("pgdata",)
    sync = SyncProgress(direction="SyncTarget", done_bytes=1, total_bytes=2, percent=50.0)
    entry = ReplicaStatus(
        node="host-s", role="Secondary", disk_state="Inconsistent", connection="SyncTarget",
        sync=sync,
    )  # fmt: skip
    record = OutdateRecord("pgdata", "host-s", "00000000000000AB", "host-m")
    state = VolumeState("pgdata", ("host-m", "host-s"), {"host-s": entry}, record)
    facts = volume_facts({"pgdata": state})["pgdata"]
    assert facts.replicas == ("host-m", "host-s") and facts.outdated == ("host-s",)
    assert facts.outdated_note == "Outdated since generation 00000000000000AB (record by host-m)"
    assert facts.report("host-s") == ReplicaReport(
        "host-s", "Secondary", "Inconsistent", "SyncTarget", "SyncTarget"
    )
    assert facts.report("host-m") == ReplicaReport("host-m")
