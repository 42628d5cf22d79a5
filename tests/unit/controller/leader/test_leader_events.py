"""LeaderElected: the new leader records its term on the Cluster object, naming the
leader it saw before it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from controller.api.liveness import Liveness
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.leader.election import Election, elected_message
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.objects import Event, ObjectStore
from tests.unit.static_liveness import StaticLiveness
from tests.unit.tasks import cancel_all

UP = Liveness("up", False, "i-up")

SPEC = """
apiVersion: ha.vigil.dev/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  nodes:
    - {name: n1, address: 10.0.0.1}
    - {name: n2, address: 10.0.0.2}
    - {name: n3, address: 10.0.0.3}
  fencing: {enabled: false}
"""


def test_the_message_names_the_term_the_lease_and_the_previous_leader() -> None:
    assert elected_message("n2", "n1", 42, 0x1F) == (
        "n2 leads the controller: term 42, lease 1f; previous leader n1"
    )
    assert elected_message("n2", None, 7, 1).endswith("no previous leader seen by this node")
    assert elected_message("n2", "n2", 7, 1).endswith("it led before")


async def idle() -> None:
    await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def campaigning(
    store: MemoryStore, node: str, seen: StaticLiveness
) -> AsyncIterator[Election]:
    informer = Informer(store)
    tasks = [asyncio.create_task(informer.run())]
    await asyncio.wait_for(informer.ready.wait(), 5)
    election = Election(store, informer, node, seen)
    tasks.append(asyncio.create_task(election.run(idle)))
    try:
        yield election
    finally:
        await cancel_all(tasks)


async def elected(store: MemoryStore, count: int) -> list[Event]:
    for _ in range(500):
        events = [
            e
            for e in await ObjectStore(store).events("Cluster", "lab")
            if e.reason == "LeaderElected"
        ]
        if len(events) >= count:
            return events
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} LeaderElected events")


async def test_a_new_leader_records_its_term_and_the_leader_before_it() -> None:
    store = MemoryStore("lab")
    await apply_objects(store, decode_documents(parse_text(SPEC, "spec.yaml")), cluster="lab")
    seen_by_n1 = StaticLiveness({"n1": UP, "n2": UP})
    async with campaigning(store, "n1", seen_by_n1) as first:
        [one] = await elected(store, 1)
        assert first.leading
        async with campaigning(store, "n2", StaticLiveness({"n1": UP, "n2": UP})) as second:
            await asyncio.sleep(0.1)
            assert not second.leading  # n1 holds the key
            seen_by_n1.set_serving(False)  # n1 steps down and gives its lease back
            one_then_two = await elected(store, 2)
            assert second.leading
    assert [e.reason for e in one_then_two] == ["LeaderElected", "LeaderElected"]
    assert one.source["component"] == "controller" and one.source["node"] == "n1"
    assert one.message.startswith("n1 leads the controller: term ")
    assert one.message.endswith("no previous leader seen by this node")
    two = one_then_two[1]
    assert two.source == {**two.source, "component": "controller", "node": "n2"}
    assert two.message.endswith("previous leader n1")
    terms = [int(e.message.split("term ")[1].split(",")[0]) for e in one_then_two]
    assert terms[0] < terms[1]
