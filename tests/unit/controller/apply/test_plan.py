"""Apply planning and commit logic over the in-memory store (the same interface as etcd)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controller.api.errors import ConflictingChangeError, InputError, NotFoundError
from controller.api.manifest import load, parse_text
from controller.api.meta import ObjectMeta
from controller.api.node import Node, NodeSpec
from controller.apply.plan import Applied, decode_documents
from controller.apply.run import GUARD_KEY, apply_objects, delete_objects, read_state
from controller.store.base import Put
from controller.store.memory import MemoryStore
from controller.store.objects import ObjectStore
from tests.paths import PG_TODAY


def pg_objects() -> list[Applied]:
    return decode_documents(load([str(PG_TODAY)]))


def edited(applied: list[Applied], kind: str, edit: dict[str, Any]) -> list[Applied]:
    out = []
    for item in applied:
        if kind == item.obj.KIND:
            data = copy.deepcopy(item.obj.to_dict())
            data.pop("status")
            for path, value in edit.items():
                target = data
                *parents, last = path.split(".")
                for part in parents:
                    target = target[part]
                target[last] = value
            out.extend(decode_documents([type(item.document)("x", 1, data)]))  # type: ignore[misc]
        else:
            out.append(item)
    return out


async def test_create_then_unchanged_then_configure(memory_store: MemoryStore) -> None:
    applied = pg_objects()
    first = await apply_objects(memory_store, applied, cluster="pg-cluster")
    assert [c.action for c in first.plan.changes] == ["create"] * 4
    rev = await memory_store.revision()
    again = await apply_objects(memory_store, applied, cluster="pg-cluster")
    assert [c.action for c in again.plan.changes] == ["unchanged"] * 4
    assert again.revision is None and await memory_store.revision() == rev

    stored = await ObjectStore(memory_store).get("ResourceGroup", "pg")
    assert stored is not None
    uid = stored.obj.metadata.uid
    assert stored.obj.metadata.generation == 1

    # Labels change: a new resourceVersion, the same generation.
    relabelled = edited(applied, "ResourceGroup", {"metadata.labels": {"app": "pg"}})
    out = await apply_objects(memory_store, relabelled, cluster="pg-cluster")
    assert [c.action for c in out.plan.changes if c.kind == "ResourceGroup"] == ["configure"]
    stored = await ObjectStore(memory_store).get("ResourceGroup", "pg")
    assert stored is not None
    assert stored.obj.metadata.generation == 1 and stored.obj.metadata.uid == uid

    # Spec change: generation moves.
    sticky = edited(relabelled, "ResourceGroup", {"spec.placement.stickiness": 0})
    await apply_objects(memory_store, sticky, cluster="pg-cluster")
    stored = await ObjectStore(memory_store).get("ResourceGroup", "pg")
    assert stored is not None
    assert stored.obj.metadata.generation == 2
    assert stored.obj.spec.placement.stickiness == 0
    events = await ObjectStore(memory_store).events("ResourceGroup", "pg")
    assert [e.reason for e in events] == ["Created", "Updated", "Updated"]


async def test_dry_run_writes_nothing(memory_store: MemoryStore) -> None:
    rev = await memory_store.revision()
    out = await apply_objects(memory_store, pg_objects(), cluster="pg-cluster", dry_run=True)
    assert [c.action for c in out.plan.changes] == ["create"] * 4
    assert await memory_store.revision() == rev


async def test_cluster_name_must_match_the_store(memory_store: MemoryStore) -> None:
    with pytest.raises(InputError, match=r"store is for cluster 'other'.*--cluster pg-cluster"):
        await apply_objects(memory_store, pg_objects(), cluster="other")


async def test_duplicates_in_one_apply(memory_store: MemoryStore) -> None:
    applied = pg_objects()
    with pytest.raises(InputError) as info:
        await apply_objects(memory_store, [*applied, applied[-1]], cluster="pg-cluster")
    assert "given twice in this apply" in info.value.details[0]


async def test_stale_resource_version_is_a_conflict(memory_store: MemoryStore) -> None:
    await apply_objects(memory_store, pg_objects(), cluster="pg-cluster")
    stale = edited(pg_objects(), "ResourceGroup", {"metadata.resourceVersion": "1"})
    with pytest.raises(ConflictingChangeError, match="changed since resourceVersion 1"):
        await apply_objects(memory_store, stale, cluster="pg-cluster")


async def test_concurrent_edit_of_the_same_object_conflicts(memory_store: MemoryStore) -> None:
    """Both read the same revision; the second commit finds the object changed."""
    await apply_objects(memory_store, pg_objects(), cluster="pg-cluster")
    objects = ObjectStore(memory_store)
    before, guard = await read_state(objects)
    group = before["ResourceGroup", "pg"]
    # Someone else edits pg between our read and our commit.
    doc = copy.deepcopy(group.obj.to_dict())
    doc.pop("status")
    doc["metadata"].pop("resourceVersion")
    doc["spec"]["placement"]["stickiness"] = 7
    await memory_store.commit(
        [
            Put("specs/ResourceGroup/pg", doc, expect_revision=group.spec_revision),
            Put(GUARD_KEY, {"by": "test"}, expect_revision=guard),
        ]
    )
    mine = edited(
        pg_objects(),
        "ResourceGroup",
        {
            "spec.placement.stickiness": 9,
            "metadata.resourceVersion": str(group.spec_revision),
        },
    )
    with pytest.raises(ConflictingChangeError):
        await apply_objects(memory_store, mine, cluster="pg-cluster")


async def test_delete_refuses_to_break_references(memory_store: MemoryStore) -> None:
    await apply_objects(memory_store, pg_objects(), cluster="pg-cluster")
    rev = await memory_store.revision()
    with pytest.raises(InputError) as info:
        # Fencing is on: host-m would be left without a fence device.
        await delete_objects(memory_store, [("FenceDevice", "bmc-host-m")])
    assert any("(stored Cluster pg-cluster)" in d for d in info.value.details)
    assert await memory_store.revision() == rev
    with pytest.raises(NotFoundError, match="fencedevice/nope"):
        await delete_objects(memory_store, [("FenceDevice", "nope")])
    out = await delete_objects(memory_store, [("ResourceGroup", "pg")])
    assert [c.ref for c in out.plan.changes] == ["resourcegroup/pg"]
    assert await ObjectStore(memory_store).get("ResourceGroup", "pg") is None


async def test_a_conflict_with_a_stored_group_is_named_in_the_applied_file_first(
    memory_store: MemoryStore,
) -> None:
    await apply_objects(memory_store, pg_objects(), cluster="pg-cluster")
    # "alpha" sorts before the stored "pg": the applied object must still be the one named.
    text = (
        "apiVersion: ha.vigil.dev/v1alpha1\nkind: ResourceGroup\nmetadata: {name: alpha}\n"
        "spec:\n  resources:\n    - ip: {address: 192.168.1.10/24}\n"
    )
    with pytest.raises(InputError) as info:
        await apply_objects(
            memory_store, decode_documents(parse_text(text, "alpha.yaml")), cluster="pg-cluster"
        )
    first = info.value.details[0]
    assert first.startswith("alpha.yaml:6: document 1 (ResourceGroup alpha): spec.resources[0]"), (
        first
    )
    assert "also claimed by ResourceGroup 'pg' (spec.resources[0])" in first


async def _register(store: MemoryStore, name: str, standby: bool = False) -> None:
    node = Node(
        api_version="ha.vigil.dev/v1alpha1",
        kind="Node",
        metadata=ObjectMeta(name=name),
        spec=NodeSpec(standby=standby),
    )
    assert await ObjectStore(store).create(node)


def _witness_renamed() -> list[Applied]:
    return edited(
        pg_objects(),
        "Cluster",
        {
            "spec.nodes": [
                *pg_objects()[0].obj.to_dict()["spec"]["nodes"][:2],
                {"name": "witness2", "address": "192.168.1.14", "role": "witness"},
            ]
        },
    )


async def test_a_member_dropped_from_the_cluster_takes_its_registered_node_along(
    memory_store: MemoryStore,
) -> None:
    await apply_objects(memory_store, pg_objects(), cluster="pg-cluster")
    for name in ("host-m", "host-s", "witness"):
        await _register(memory_store, name)
    out = await apply_objects(memory_store, _witness_renamed(), cluster="pg-cluster")
    assert [(c.action, c.ref) for c in out.plan.writes] == [
        ("configure", "cluster/pg-cluster"),
        ("delete", "node/witness"),
    ]
    assert await ObjectStore(memory_store).get("Node", "witness") is None


async def test_a_node_in_standby_is_left_for_the_operator_to_delete(
    memory_store: MemoryStore,
) -> None:
    await apply_objects(memory_store, pg_objects(), cluster="pg-cluster")
    await _register(memory_store, "witness", standby=True)
    with pytest.raises(InputError) as info:
        await apply_objects(memory_store, _witness_renamed(), cluster="pg-cluster")
    assert any("(stored Node witness)" in d and "not in Cluster" in d for d in info.value.details)
