"""The leader's placement writes follow docs/safety.md: two steps off a live node, one step
off a lost node, and nothing while a node is silent but not provably stopped."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from controller.api.cluster import Cluster
from controller.api.decode import decode
from controller.api.group import MoveTo, ResourceGroup, ResourceGroupStatus
from controller.api.liveness import Liveness
from controller.api.manifest import load
from controller.api.meta import ObjectMeta
from controller.api.node import Node, NodeSpec
from controller.api.volume import ReplicatedVolume
from controller.leader.decide import PlacementPlan, decide, next_deadline
from controller.store.fence_record import FenceRecord
from controller.store.records import FailureRecord, PlacementRecord
from controller.store.view import ClusterView
from tests.paths import EXAMPLES

UP = Liveness("up", False)
SILENT = Liveness("dead", False)
LOST = Liveness("dead", True)
NOW = 1_800_000_000.0


def pg_objects() -> tuple[Cluster, ResourceGroup]:
    cluster, group, _ = pg_with_volume()
    return cluster, group


def pg_with_volume() -> tuple[Cluster, ResourceGroup, ReplicatedVolume]:
    objects = [decode(d.data) for d in load([str(EXAMPLES / "pg")])]
    cluster = next(o for o in objects if isinstance(o, Cluster))
    group = next(o for o in objects if isinstance(o, ResourceGroup))
    volume = next(o for o in objects if isinstance(o, ReplicatedVolume))
    return cluster, group, volume


def snap(
    liveness: dict[str, Liveness],
    placement: PlacementRecord | None = None,
    status: ResourceGroupStatus | None = None,
    standby: tuple[str, ...] = (),
    failures: tuple[FailureRecord, ...] = (),
    groups: bool = True,
    fenced: tuple[str, ...] = (),
) -> tuple[ClusterView, dict[str, Liveness]]:
    cluster, group, volume = pg_with_volume()
    nodes = {
        n: Node(
            api_version="ha.vigil.dev/v1alpha1",
            kind="Node",
            metadata=ObjectMeta(name=n),
            spec=NodeSpec(standby=True),
        )
        for n in standby
    }
    view = ClusterView(
        cluster=cluster,
        groups={"pg": group} if groups else {},
        nodes=nodes,
        placements={"pg": placement} if placement else {},
        group_status={"pg": status} if status else {},
        failures=failures,
        fencing={n: FenceRecord(n, "fenced", liveness[n].incarnation) for n in fenced},
        volumes={"pgdata": volume},
    )
    return view, liveness


def decide_for(case: tuple[ClusterView, dict[str, Liveness]], leader: str) -> PlacementPlan:
    view, liveness = case
    return decide(view, liveness, NOW, leader)


def test_first_placement_goes_to_the_best_node() -> None:
    out = decide_for(snap({"host-m": UP, "host-s": UP}), leader="host-s")
    [record] = out.writes
    assert (record.node, record.epoch, record.leader) == ("host-m", 1, "host-s")
    assert record.recovered_from is None and record.stopping_from is None


def test_lost_node_is_recovered_in_one_step_once_fenced() -> None:
    on_m = PlacementRecord("pg", "host-m", 4, "best")
    out = decide_for(snap({"host-m": LOST, "host-s": UP}, on_m, fenced=("host-m",)), "host-s")
    [record] = out.writes
    assert (record.node, record.epoch, record.recovered_from) == ("host-s", 5, "host-m")
    assert "host-m" in record.reason


def test_lost_node_not_fenced_keeps_its_groups() -> None:
    on_m = PlacementRecord("pg", "host-m", 4, "best")
    out = decide_for(snap({"host-m": LOST, "host-s": UP}, on_m), leader="host-s")
    assert out.writes == []
    assert any("fenc" in note and "host-m" in note for note in out.notes), out.notes


def test_a_fence_of_an_earlier_life_does_not_count() -> None:
    on_m = PlacementRecord("pg", "host-m", 4, "best")
    view, liveness = snap({"host-m": replace(LOST, incarnation="b"), "host-s": UP}, on_m)
    earlier = {"host-m": FenceRecord("host-m", "fenced", incarnation="a")}
    assert decide(replace(view, fencing=earlier), liveness, NOW, "host-s").writes == []
    now = {"host-m": FenceRecord("host-m", "fenced", incarnation="b")}
    [record] = decide(replace(view, fencing=now), liveness, NOW, "host-s").writes
    assert record.node == "host-s"


def test_without_fencing_a_lost_node_is_recovered_at_once() -> None:
    on_m = PlacementRecord("pg", "host-m", 4, "best")
    view, liveness = snap({"host-m": LOST, "host-s": UP}, on_m)
    assert view.cluster is not None
    spec = view.cluster.spec.model_copy(
        update={"fencing": view.cluster.spec.fencing.model_copy(update={"enabled": False})}
    )
    cluster = view.cluster.model_copy(update={"spec": spec})
    [record] = decide(replace(view, cluster=cluster), liveness, NOW, "host-s").writes
    assert record.node == "host-s"


def test_silent_node_is_waited_for() -> None:
    on_m = PlacementRecord("pg", "host-m", 4, "best")
    out = decide_for(snap({"host-m": SILENT, "host-s": UP}, on_m), leader="host-s")
    assert out.writes == []
    assert any("pg" in note for note in out.notes)
    unknown = decide_for(snap({"host-s": UP}, on_m), leader="host-s")
    assert unknown.writes == []


def test_standby_moves_in_two_steps() -> None:
    on_m = PlacementRecord("pg", "host-m", 4, "best")
    first = decide_for(snap({"host-m": UP, "host-s": UP}, on_m, standby=("host-m",)), "host-s")
    [stop] = first.writes
    assert (stop.node, stop.epoch, stop.stopping_from) == (None, 5, "host-m")
    # Until host-m reports the group stopped at epoch 5, host-s must not start it.
    waiting = decide_for(snap({"host-m": UP, "host-s": UP}, stop, standby=("host-m",)), "host-s")
    assert waiting.writes == []
    assert "waiting for host-m to stop it" in waiting.notes[0]
    stale = ResourceGroupStatus(phase="Stopped", reporter="host-m", placement_epoch=4)
    assert (
        decide_for(snap({"host-m": UP, "host-s": UP}, stop, stale, ("host-m",)), "x").writes == []
    )
    done = ResourceGroupStatus(phase="Stopped", reporter="host-m", placement_epoch=5)
    [start] = decide_for(snap({"host-m": UP, "host-s": UP}, stop, done, ("host-m",)), "x").writes
    assert (start.node, start.epoch, start.recovered_from) == ("host-s", 6, None)


def test_a_node_lost_while_stopping_is_recovered() -> None:
    stop = PlacementRecord("pg", None, 5, "moving", stopping_from="host-m")
    unfenced = decide_for(snap({"host-m": LOST, "host-s": UP}, stop), "host-s")
    assert unfenced.writes == [] and "fenced" in " ".join(unfenced.notes)
    out = decide_for(snap({"host-m": LOST, "host-s": UP}, stop, fenced=("host-m",)), "host-s")
    [start] = out.writes
    assert (start.node, start.recovered_from) == ("host-s", "host-m")
    assert decide_for(snap({"host-m": SILENT, "host-s": UP}, stop), "host-s").writes == []


def test_migration_threshold_moves_the_group_off_a_failing_node() -> None:
    on_m = PlacementRecord("pg", "host-m", 2, "best")
    failures = (FailureRecord("pg", "host-m", 3, NOW - 5),)
    [stop] = decide_for(snap({"host-m": UP, "host-s": UP}, on_m, failures=failures), "x").writes
    assert stop.node is None and stop.stopping_from == "host-m"
    expired = (FailureRecord("pg", "host-m", 3, NOW - 3600),)
    assert decide_for(snap({"host-m": UP, "host-s": UP}, on_m, failures=expired), "x").writes == []


def test_stable_cluster_writes_nothing() -> None:
    on_m = PlacementRecord("pg", "host-m", 2, "best")
    assert decide_for(snap({"host-m": UP, "host-s": UP}, on_m), "x").writes == []


def test_placement_of_a_deleted_group_is_removed() -> None:
    on_m = PlacementRecord("pg", "host-m", 2, "best")
    out = decide_for(snap({"host-m": UP, "host-s": UP}, on_m, groups=False), "x")
    assert out.deletes == ["pg"] and out.writes == []


def test_restarted_agent_is_confirmed_under_its_new_incarnation() -> None:
    on_m = PlacementRecord("pg", "host-m", 4, "best", incarnation="aa")
    same = {"host-m": Liveness("up", False, "aa"), "host-s": UP}
    assert decide_for(snap(same, on_m), "host-s").writes == []
    restarted = {"host-m": Liveness("up", False, "bb"), "host-s": UP}
    [record] = decide_for(snap(restarted, on_m), "host-s").writes
    assert (record.node, record.epoch, record.incarnation) == ("host-m", 5, "bb")
    assert "started again" in record.reason


def test_recovery_names_the_lost_incarnation() -> None:
    on_m = PlacementRecord("pg", "host-m", 4, "best", incarnation="aa")
    view = {"host-m": Liveness("dead", True, "aa"), "host-s": Liveness("up", False, "cc")}
    [record] = decide_for(snap(view, on_m, fenced=("host-m",)), "host-s").writes
    assert (record.node, record.incarnation, record.recovered_incarnation) == ("host-s", "cc", "aa")


def test_the_next_deadline_is_the_first_failure_expiry_or_move_end_ahead() -> None:
    # Until then, the same view and liveness decide the same: an idle leader need not
    # decide again (controller/leader/loop.py).
    _cluster, group = pg_objects()
    timeout = group.spec.failure_timeout.total_seconds()
    assert timeout > 0
    failures = (
        FailureRecord("pg", "host-m", 3, NOW - 5),
        FailureRecord("pg", "host-s", 1, NOW - 2),
        FailureRecord("pg", "host-s", 1, NOW - timeout - 1),  # expired already
        FailureRecord("gone", "host-s", 1, NOW),  # of no group
    )
    view, _ = snap({"host-m": UP}, failures=failures)
    assert next_deadline(view, NOW) == NOW - 5 + timeout
    assert next_deadline(snap({"host-m": UP})[0], NOW) is None
    until = datetime.fromtimestamp(NOW + 60, UTC)
    moved = group.model_copy(deep=True)
    moved.spec.placement.move_to = MoveTo(node="host-s", until=until)
    view = replace(view, groups={"pg": moved})
    assert next_deadline(view, NOW) == min(NOW + 60, NOW - 5 + timeout)


def test_a_group_held_for_want_of_an_up_to_date_replica_says_why_in_its_placement() -> None:
    from controller.api.volume import ReplicaStatus, ReplicatedVolumeStatus
    from controller.store.outdate_record import OutdateRecord

    # host-m lost power while Primary; host-s was outdated by it before (a record names it).
    record = OutdateRecord("pgdata", "host-s", "00000000000000AB", "host-m")
    entries = [
        ReplicaStatus(node="host-m", role="Primary", disk_state="UpToDate",
                      connection="Connecting"),
        ReplicaStatus(node="host-s", role="Secondary", disk_state="UpToDate",
                      connection="Connecting"),
    ]  # fmt: skip
    view, liveness = snap({"host-m": LOST, "host-s": UP}, fenced=("host-m",))
    view = replace(
        view,
        volume_status={"pgdata": ReplicatedVolumeStatus(replicas=entries)},
        outdate_records={"pgdata": record},
    )
    reason = (
        "not placed: no eligible node (host-m: lost; host-s: no UpToDate replica of pgdata: "
        "Outdated since generation 00000000000000AB (record by host-m))"
    )
    [write] = decide(view, liveness, NOW, "host-s").writes
    assert (write.node, write.epoch, write.reason, write.stopping_from) == (None, 1, reason, None)
    # Written once: the same reason is not written again.
    settled = replace(view, placements={"pg": write})
    assert decide(settled, liveness, NOW, "host-s").writes == []
    # Recovering from the lost Primary: the group waits on no node, saying why.
    on_m = replace(view, placements={"pg": PlacementRecord("pg", "host-m", 3, "best")})
    [write] = decide(on_m, liveness, NOW, "host-s").writes
    assert (write.node, write.recovered_from, write.reason) == (None, "host-m", reason)
    # Power loss of a connected Primary, no record: host-s, UpToDate and Connected at
    # its last report, takes the group.
    connected = [e.model_copy(update={"connection": "Connected"}) for e in entries]
    power_loss = replace(
        on_m,
        volume_status={"pgdata": ReplicatedVolumeStatus(replicas=connected)},
        outdate_records={},
    )
    [write] = decide(power_loss, liveness, NOW, "host-s").writes
    assert (write.node, write.recovered_from) == ("host-s", "host-m")


def test_a_disabled_group_gets_no_reason_record() -> None:
    view, liveness = snap({"host-m": UP, "host-s": UP})
    group = view.groups["pg"]
    off = group.model_copy(update={"spec": group.spec.model_copy(update={"enabled": False})})
    assert decide(replace(view, groups={"pg": off}), liveness, NOW, "host-s").writes == []
