"""The leader fences a lost node before it recovers that node's groups, retries a failed
fence with back-off, goes through fencing levels in order, and honours an operator's
confirmation. The devices are a scripted runner here (the real ones, against an IPMI
simulator and a Redfish emulator, are tested in tests/integration/fencing/)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from controller.api.fencing import FenceAction, FenceDevice, FenceOutcome
from controller.api.liveness import Liveness
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.leader import fencing_plan
from controller.leader.fencer import Fencer, fence_through_levels
from controller.leader.loop import Leader
from controller.store import keys
from controller.store.fence_record import FenceRecord
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.objects import ObjectStore
from controller.store.records import PlacementRecord
from tests.unit.static_liveness import StaticLiveness
from tests.unit.tasks import cancel_all

UP = Liveness("up", False, "i-up")
LOST = Liveness("dead", True, "i-lost")

SPEC = """
apiVersion: ha.vigil.dev/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  nodes:
    - {name: n1, address: 10.0.0.1}
    - {name: n2, address: 10.0.0.2}
    - {name: n3, address: 10.0.0.3}
  fencing: {enabled: true, action: "off", timeout: 5s}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: bmc}
spec: {agent: exec, command: [/bin/true], targets: [n1, n2, n3]}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: pdu}
spec: {agent: exec, command: [/bin/true], targets: [n1, n2, n3], level: 2}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {name: web}
spec:
  placement: {nodes: [{name: n1, score: 100}]}
  resources:
    - ip: {address: 10.0.0.100/24}
"""


class Devices:
    """A runner whose devices answer as told: `works[name]` True, False or 'unverified'."""

    def __init__(self, **works: bool | str) -> None:
        self.works: dict[str, bool | str] = dict(works)
        self.calls: list[tuple[str, str, str]] = []

    async def __call__(self, device: FenceDevice, target: str, action: FenceAction) -> FenceOutcome:
        self.calls.append((device.name, target, action))
        works = self.works.get(device.name, False)
        return FenceOutcome(
            device.name,
            target,
            action,
            ok=bool(works),
            verified=works is True,
            power="off" if works is True else "on",
            message="power off verified" if works is True else "BMC did not answer",
            seconds=0.01,
        )


@contextlib.asynccontextmanager
async def leading(
    store: MemoryStore, seen: StaticLiveness, devices: Devices
) -> AsyncIterator[None]:
    """n3 leads, with a fencer, until the block ends."""
    informer = Informer(store)
    tasks = [asyncio.create_task(informer.run())]
    await asyncio.wait_for(informer.ready.wait(), 5)
    fencer = Fencer(store, informer, "n3", devices)
    tasks.append(asyncio.create_task(Leader(store, informer, "n3", seen, fencer).run()))
    try:
        yield
    finally:
        await cancel_all(tasks)


async def placed_store() -> MemoryStore:
    store = MemoryStore("lab")
    await apply_objects(store, decode_documents(parse_text(SPEC, "spec.yaml")), cluster="lab")
    record = PlacementRecord("web", "n1", 1, "best", incarnation="i-up")
    await store.put(keys.placement_key("web"), record.to_dict())
    return store


async def until(check: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    while not await check():  # type: ignore[misc]
        assert loop.time() - began < timeout, f"timed out waiting: {what}"
        await asyncio.sleep(0.01)


async def placed_on(store: MemoryStore) -> str | None:
    kv = await store.get(keys.placement_key("web"))
    return PlacementRecord.from_dict(dict(kv.value)).node if kv else None


async def fence_record(store: MemoryStore, node: str = "n1") -> FenceRecord | None:
    kv = await store.get(keys.fencing_key(node))
    return FenceRecord.from_dict(dict(kv.value)) if kv else None


async def reasons(store: MemoryStore, node: str = "n1") -> list[str]:
    return [e.reason for e in await ObjectStore(store).events("Node", node)]


def three(n1: Liveness) -> StaticLiveness:
    return StaticLiveness({"n1": n1, "n2": UP, "n3": UP})


async def test_a_lost_node_is_fenced_then_its_groups_recovered() -> None:
    store = await placed_store()
    devices = Devices(bmc=True)
    async with leading(store, three(LOST), devices):

        async def moved() -> bool:
            return await placed_on(store) not in (None, "n1")

        await until(moved, "the group recovered after the fence")
    record = await fence_record(store)
    assert record is not None and record.state == "fenced"
    assert (record.incarnation, record.fenced_by) == ("i-lost", ("bmc",))
    assert devices.calls == [("bmc", "n1", "off")]
    assert {"FenceRequested", "FenceDone", "FenceVerified"} <= set(await reasons(store))


async def test_a_failed_fence_keeps_the_groups_and_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fencing_plan, "RETRY_FIRST", 0.05)
    store = await placed_store()
    devices = Devices(bmc=False, pdu=False)
    async with leading(store, three(LOST), devices):

        async def failed_twice() -> bool:
            record = await fence_record(store)
            return record is not None and record.state == "failed" and record.attempts >= 2

        await until(failed_twice, "two failed attempts")
        assert await placed_on(store) == "n1", "a group moved off a node that was not fenced"
        record = await fence_record(store)
        assert record is not None
        assert "BMC did not answer" in record.message and "ha fence --confirm n1" in record.message
        devices.works["bmc"] = True  # repaired

        async def moved() -> bool:
            return await placed_on(store) == "n2" or await placed_on(store) == "n3"

        await until(moved, "the takeover after the repair")
    assert "FenceFailed" in await reasons(store)


async def test_the_second_level_is_tried_when_the_first_fails() -> None:
    store = await placed_store()
    devices = Devices(bmc="unverified", pdu=True)
    async with leading(store, three(LOST), devices):

        async def fenced() -> bool:
            record = await fence_record(store)
            return record is not None and record.state == "fenced"

        await until(fenced, "fenced through level 2")
    record = await fence_record(store)
    assert record is not None and record.fenced_by == ("pdu",)
    assert [c[0] for c in devices.calls] == ["bmc", "pdu"]


async def test_an_operator_confirmation_counts_only_for_a_node_not_heard() -> None:
    store = await placed_store()
    confirm = FenceRecord("n1", "confirm", requested_by="ha fence --confirm (root on n2)")
    await store.put(keys.fencing_key("n1"), confirm.to_dict())
    seen = three(UP)
    async with leading(store, seen, Devices()):

        async def answered() -> bool:
            record = await fence_record(store)
            return record is not None and record.state != "confirm"

        await until(answered, "the confirmation answered")
        record = await fence_record(store)
        assert record is not None and record.state == "refused" and "hears n1" in record.message
    await store.put(keys.fencing_key("n1"), confirm.to_dict())
    async with leading(store, three(LOST), Devices()):

        async def moved() -> bool:
            return await placed_on(store) not in (None, "n1")

        await until(moved, "recovery after the confirmation")
    record = await fence_record(store)
    assert record is not None and record.state == "fenced"
    assert (record.fenced_by, record.incarnation) == (("manual confirmation",), "i-lost")


async def test_a_node_heard_again_after_its_fence_needs_a_new_one() -> None:
    store = await placed_store()
    fenced = FenceRecord("n1", "fenced", incarnation="i-lost", fenced_by=("bmc",))
    await store.put(keys.fencing_key("n1"), fenced.to_dict())
    async with leading(store, three(Liveness("up", False, "i-new")), Devices()):

        async def rejoined() -> bool:
            record = await fence_record(store)
            return record is not None and record.state == "rejoined"

        await until(rejoined, "the record marked rejoined")
    assert "Rejoined" in await reasons(store)


async def test_the_leader_does_not_fence_its_own_node() -> None:
    store = await placed_store()
    asked = FenceRecord("n3", "requested", requested_by="ha fence (root on n1)")
    await store.put(keys.fencing_key("n3"), asked.to_dict())
    devices = Devices(bmc=True)
    async with leading(store, three(UP), devices):

        async def refused() -> bool:
            record = await fence_record(store, "n3")
            return record is not None and record.state == "refused"

        await until(refused, "the request refused")
    assert devices.calls == []


def delayed_device(delay: str) -> FenceDevice:
    return FenceDevice.model_validate(
        {
            "apiVersion": "ha.vigil.dev/v1alpha1",
            "kind": "FenceDevice",
            "metadata": {"name": "bmc"},
            "spec": {"agent": "exec", "command": ["/bin/true"], "targets": ["n1"], "delay": delay},
        }
    )


@pytest.mark.parametrize(("power", "waits"), [("on", True), ("off", False)])
async def test_a_race_delay_is_waited_only_for_a_target_still_powered(
    power: str, waits: bool
) -> None:
    calls: list[str] = []

    async def runner(device: FenceDevice, target: str, action: FenceAction) -> FenceOutcome:
        calls.append(action)
        if action == "status":
            return FenceOutcome(device.name, target, action, True, False, power, power, 0.0)  # type: ignore[arg-type]
        return FenceOutcome(device.name, target, action, True, True, "off", "off", 0.0)

    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await fence_through_levels([[delayed_device("300ms")]], "n1", "off", runner)
    took = loop.time() - began
    assert result.ok and calls == ["status", "off"]
    assert (took >= 0.3) is waits, took
