"""One builder of the cluster view, from the informer's copy of the store."""

from __future__ import annotations

from controller.api.decode import decode
from controller.api.group import ResourceGroup
from controller.api.manifest import load
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.store import keys
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.records import FailureRecord, LeaderRecord, NodeRecord, PlacementRecord
from controller.store.view import ClusterView
from tests.paths import EXAMPLES, PG_TODAY


async def test_the_view_holds_every_record_typed() -> None:
    store = MemoryStore("pg-cluster")
    await apply_objects(store, decode_documents(load([str(PG_TODAY)])), cluster="pg-cluster")
    await store.put(keys.placement_key("pg"), PlacementRecord("pg", "host-m", 1, "best").to_dict())
    await store.put(
        keys.failure_key("pg", "host-s"), FailureRecord("pg", "host-s", 1, 1.0).to_dict()
    )
    await store.put(keys.node_key("host-m"), NodeRecord("host-m", 1, "v", "i", "s", True).to_dict())
    await store.put(keys.LEADER, LeaderRecord("host-m", 5).to_dict())
    await store.put(keys.status_key("Node", "host-m"), {"phase": "Ready"})
    await store.put(keys.status_key("ResourceGroup", "pg"), {"phase": "Running", "node": "host-m"})
    informer = Informer(store)
    informer.load(*await store.list(""))

    view = informer.view()
    assert view.cluster is not None and view.cluster.name == "pg-cluster"
    assert list(view.groups) == ["pg"] and view.groups["pg"].spec.resources
    assert view.group_status["pg"].phase == "Running"
    assert view.node_status["host-m"].phase == "Ready"
    assert view.agents["host-m"].serving and view.leader == LeaderRecord("host-m", 5)
    assert view.placements["pg"].node == "host-m"
    assert [(f.group, f.node) for f in view.failures] == [("pg", "host-s")]


def test_with_specs_replaces_the_specs_and_keeps_the_records() -> None:
    objects = [decode(d.data) for d in load([str(EXAMPLES / "pg")])]
    placed = {"pg": PlacementRecord("pg", "host-m", 1, "best")}
    view = ClusterView(placements=placed)
    without_group = [o for o in objects if not isinstance(o, ResourceGroup)]
    after = view.with_specs(without_group)
    assert after.cluster is not None and after.groups == {} and after.placements == placed
    assert ClusterView.of_specs(objects).groups.keys() == {"pg"}


async def test_the_view_holds_each_volume_its_replicas_entries_and_outdate_record() -> None:
    store = MemoryStore("pg-cluster")
    for obj in (decode(d.data) for d in load([str(EXAMPLES / "pg")])):
        await store.put(keys.spec_key(obj.KIND, obj.name), obj.to_dict())
    entry = {"node": "host-m", "role": "Primary", "diskState": "UpToDate"}
    await store.put(keys.status_key("ReplicatedVolume", "pgdata"), {"replicas": [entry]})
    record = {"volume": "pgdata", "outdated": "host-s", "generation": "00000000000000ab",
              "by": "host-m", "since": "2026-12-05T12:00:00.000+00:00"}  # fmt: skip
    await store.put(keys.volume_outdate_key("pgdata"), record)
    # A record of a volume that has no spec any more, and a stray key under volumes/.
    await store.put(keys.volume_outdate_key("gone"), record)
    await store.put("volumes/pgdata/other", {"x": 1})
    informer = Informer(store)
    informer.load(*await store.list(""))

    view = informer.view()
    assert set(view.outdate_records) == {"pgdata", "gone"}
    states = view.volume_states()
    assert list(states) == ["pgdata"]
    pgdata = states["pgdata"]
    assert pgdata.replicas == ("host-m", "host-s") and pgdata.peer("host-m") == "host-s"
    assert pgdata.entries["host-m"].role == "Primary" and "host-s" not in pgdata.entries
    assert pgdata.outdated_nodes() == ("host-s",)
    assert pgdata.outdated is not None
    assert pgdata.outdated.describe() == (
        "Outdated since generation 00000000000000AB (record by host-m)"
    )
    # A dry run replaces the volume specs too.
    assert view.with_specs([]).volume_states() == {}


async def test_a_replica_entry_written_as_json_reads_back_with_its_time() -> None:
    # The strict API models read no plain datetime from a JSON string: observedAt is a
    # Timestamp, or one entry's time would hide every replica's entry from the view.
    from datetime import UTC, datetime

    from controller.api.volume import ReplicaStatus, ReplicatedVolumeStatus

    when = datetime(2026, 12, 5, 12, 0, 1, 500000, tzinfo=UTC)
    written = ReplicatedVolumeStatus(
        replicas=[ReplicaStatus(node="host-m", role="Primary", observed_at=when)]
    ).model_dump(mode="json", by_alias=True)
    store = MemoryStore("pg-cluster")
    await store.put(keys.status_key("ReplicatedVolume", "pgdata"), written)
    informer = Informer(store)
    informer.load(*await store.list(""))
    [entry] = informer.view().volume_status["pgdata"].replicas
    assert (entry.role, entry.observed_at) == ("Primary", when)
