"""The event of each reconciler action (reconciler/report.py action_event): a volume's
start and stop are its promotion and demotion, a failed stop is a Warning, and each names
the node that acted; ActionEvents writes them in order in the background, drops a batch
the store refuses and holds a bounded number."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from controller.store.base import Op
from controller.store.errors import StoreUnavailableError
from controller.store.memory import MemoryStore
from controller.store.objects import Event, ObjectStore
from nodeagent.reconciler.report import ActionEvents, action_event
from tests.unit.nodeagent.test_control_flow import until


@pytest.mark.parametrize(
    ("kind", "verb", "reason", "words"),
    [
        ("ip", "start", "Started", "ip vip started on n1"),
        ("service", "stop", "Stopped", "service vip stopped on n1"),
        ("volume", "start", "Promoted", "volume vip promoted to Primary on n1"),
        ("volume", "stop", "Demoted", "volume vip demoted to Secondary on n1"),
    ],
)
def test_each_action_has_its_reason(kind: str, verb: str, reason: str, words: str) -> None:
    event = action_event("n1", "web", kind, "vip", verb)
    assert (event.kind, event.name, event.reason, event.type) == (
        "ResourceGroup",
        "web",
        reason,
        "Normal",
    )
    assert event.message == words
    assert event.source["component"] == "agent" and event.source["node"] == "n1"
    assert event.source_label == "agent/n1"


def test_a_failed_stop_is_a_warning_with_the_error() -> None:
    event = action_event("n2", "pg", "filesystem", "data", "stop", "umount: target is busy")
    assert (event.reason, event.type) == ("StopFailed", "Warning")
    assert event.message == "stop of filesystem data on n2 failed: umount: target is busy"


class RefusingStore(MemoryStore):
    """Refuses the next `refusals` commits, as a store without quorum does."""

    def __init__(self, refusals: int) -> None:
        super().__init__("c")
        self.refusals = refusals

    async def commit(self, ops: Sequence[Op], timeout: float | None = None) -> int:
        if self.refusals:
            self.refusals -= 1
            raise StoreUnavailableError(["fake"], "no quorum")
        return await super().commit(ops, timeout)


def started(i: int) -> Event:
    return action_event("n1", "web", "ip", f"vip{i}", "start")


async def written(store: MemoryStore, count: int) -> list[str]:
    async def enough() -> bool:
        return len(await ObjectStore(store).events()) >= count

    await until(enough)
    return [e.message.split()[1] for e in await ObjectStore(store).events()]


async def test_action_events_are_written_in_order_in_the_background() -> None:
    store = MemoryStore("c")
    actions = ActionEvents(ObjectStore(store))
    task = asyncio.create_task(actions.run())
    try:
        actions.add([started(i) for i in range(ActionEvents.BATCH + 5)])  # two batches
        actions.add([])
        names = await written(store, ActionEvents.BATCH + 5)
        assert names == [f"vip{i}" for i in range(ActionEvents.BATCH + 5)]
    finally:
        task.cancel()


async def test_a_refused_batch_is_dropped_and_the_next_one_written() -> None:
    store = RefusingStore(refusals=1)
    actions = ActionEvents(ObjectStore(store))
    task = asyncio.create_task(actions.run())
    try:
        actions.add([started(0), started(1)])

        async def refused() -> bool:
            return actions.dropped == 2

        await until(refused)
        actions.add([started(2)])
        assert await written(store, 1) == ["vip2"]
    finally:
        task.cancel()


def test_pending_events_are_bounded_oldest_dropped() -> None:
    actions = ActionEvents(ObjectStore(MemoryStore("c")))  # not running: nothing drains
    actions.add([started(i) for i in range(ActionEvents.MAX_PENDING + 3)])
    assert actions.dropped == 3
    assert [e.message.split()[1] for e in actions._pending[:1]] == ["vip3"]
