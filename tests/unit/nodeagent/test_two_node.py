"""The two-node survivor fences its lost peer before it restarts the store alone, records
the fence, and does nothing when the fence fails (stopped is better than doubled)."""

from __future__ import annotations

import pytest

from controller.api.fencing import FenceAction, FenceDevice, FenceOutcome
from controller.api.liveness import Liveness
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.leader.fencer import Result
from controller.store import keys
from controller.store.fence_record import FenceRecord
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.objects import spec_document
from nodeagent.two_node import TwoNodeSurvivor, two_node_peer
from tests.unit.static_liveness import StaticLiveness

SPEC = """
apiVersion: ha.vigil.dev/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  nodes:
    - {name: a, address: 10.0.0.1}
    - {name: b, address: 10.0.0.2}
  quorum: {mode: two-node}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: bmc-a}
spec: {agent: exec, command: [/bin/true], targets: [a], delay: 2s}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: bmc-b}
spec: {agent: exec, command: [/bin/true], targets: [b]}
"""


class Steps:
    def __init__(self, works: bool) -> None:
        self.works = works
        self.log: list[str] = []

    async def fence(
        self, levels: list[list[FenceDevice]], target: str, action: FenceAction
    ) -> Result:
        names = [d.name for level in levels for d in level]
        self.log.append(f"fence {target} via {','.join(names)} ({action})")
        if not self.works:
            return Result(False, (), (), "bmc-b: no answer")
        outcome = FenceOutcome(names[0], target, action, True, True, "off", "off", 0.05)
        return Result(True, (outcome,), (names[0],), f"{action} by {names[0]}: verified")

    async def force_new_cluster(self) -> None:
        self.log.append("force-new-cluster")


async def survivor(works: bool, peer: Liveness) -> tuple[TwoNodeSurvivor, Steps, MemoryStore]:
    store = MemoryStore("lab")
    # Stored directly: apply refuses two-node mode until every part of it is built.
    for applied in decode_documents(parse_text(SPEC, "s.yaml")):
        obj = applied.obj
        await store.put(keys.spec_key(obj.KIND, obj.name), spec_document(obj))
    informer = Informer(store)
    informer.load(*await store.list(""))
    steps = Steps(works)
    seen = StaticLiveness({"a": Liveness("up", False, "a1"), "b": peer})
    return (
        TwoNodeSurvivor("a", store, informer, seen, steps.fence, steps.force_new_cluster),
        steps,
        store,
    )


async def test_the_survivor_fences_then_runs_the_store_alone_then_records_it() -> None:
    two, steps, store = await survivor(True, Liveness("dead", True, "b1"))
    await two.tend()
    assert steps.log == ["fence b via bmc-b (reboot)", "force-new-cluster"]
    kv = await store.get(keys.fencing_key("b"))
    assert kv is not None
    record = FenceRecord.from_dict(dict(kv.value))
    assert (record.state, record.incarnation, record.fenced_by) == ("fenced", "b1", ("bmc-b",))
    await two.tend()  # that life of b is fenced: nothing more
    assert len(steps.log) == 2


async def test_a_failed_fence_leaves_the_store_alone_and_is_retried_later() -> None:
    two, steps, store = await survivor(False, Liveness("dead", True, "b1"))
    await two.tend()
    await two.tend()  # within the back-off: no second attempt yet
    assert steps.log == ["fence b via bmc-b (reboot)"]
    assert await store.get(keys.fencing_key("b")) is None


async def test_a_peer_never_heard_since_boot_is_fenced_too() -> None:
    # Booted alone: the peer's incarnation is unknown (None) once initdead ran out.
    two, steps, store = await survivor(True, Liveness("dead", True, None))
    await two.tend()
    assert steps.log == ["fence b via bmc-b (reboot)", "force-new-cluster"]
    kv = await store.get(keys.fencing_key("b"))
    assert kv is not None and FenceRecord.from_dict(dict(kv.value)).covers(None)
    await two.tend()
    assert len(steps.log) == 2


@pytest.mark.parametrize("peer", [Liveness("up", False, "b1"), Liveness("dead", False, "b1")])
async def test_a_peer_heard_or_not_yet_lost_is_left_alone(peer: Liveness) -> None:
    two, steps, _ = await survivor(True, peer)
    await two.tend()
    assert steps.log == []


def test_only_two_node_clusters_have_a_survivor_peer() -> None:
    [cluster, *_] = [d.obj for d in decode_documents(parse_text(SPEC, "s.yaml"))]
    assert two_node_peer(cluster, "a") == "b"  # type: ignore[arg-type]
    majority = SPEC.replace("quorum: {mode: two-node}", "quorum: {mode: majority}")
    [other, *_] = [d.obj for d in decode_documents(parse_text(majority, "s.yaml"))]
    assert two_node_peer(other, "a") is None  # type: ignore[arg-type]
