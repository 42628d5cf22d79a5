"""A stop that fails leaves the group where it may still run: it is reported StopFailed
(never "Failed", which the leader takes for stopped), nothing starts it elsewhere, and with
fencing on the node is fenced and the group then recovered (Pacemaker's on-fail=fence for
stops). Leader, reconcilers and a scripted fence device over the in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from controller.api.fencing import FenceAction, FenceDevice, FenceOutcome
from controller.api.liveness import Liveness
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.leader.election import Election
from controller.leader.fencer import Fencer
from controller.leader.loop import Leader
from controller.store import keys
from controller.store.fence_record import FenceRecord
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.records import PlacementRecord
from nodeagent.reconciler.loop import Reconciler
from tests.unit.nodeagent.test_control_flow import SPEC, World, registry_for, until
from tests.unit.static_liveness import StaticLiveness
from tests.unit.tasks import cancel_all

FENCED_SPEC = (
    SPEC.replace("fencing: {enabled: false}", "fencing: {enabled: true}")
    + """
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: bmc}
spec: {agent: exec, command: [/bin/true], targets: [n1, n2, n3]}
"""
)
STANDBY_N1 = (
    "apiVersion: ha.vigil.dev/v1alpha1\nkind: Node\nmetadata: {name: n1}\nspec: {standby: true}\n"
)
IP = "web.ip-10-0-0-100"


PowerOff = Callable[[FenceDevice, str, FenceAction], Awaitable[FenceOutcome]]


def scripted_power_off(
    world: World, views: dict[str, StaticLiveness], fenced: list[str]
) -> PowerOff:
    async def power_off(device: FenceDevice, target: str, action: FenceAction) -> FenceOutcome:
        # The node goes dark: what ran there is gone, its peers declare it lost.
        fenced.append(target)
        world.on(target).clear()
        views[target].set_serving(False)
        for other, view in views.items():
            if other != target:
                view.set(target, Liveness("dead", True, f"{target}-1"))
        return FenceOutcome(device.name, target, action, True, True, "off", "off", 0.01)

    return power_off


async def start_nodes(
    spec: str, tmp_path: Path, world: World
) -> tuple[MemoryStore, dict[str, StaticLiveness], dict[str, Informer], list[asyncio.Task[None]]]:
    """Three nodes' informers and reconcilers over one store, the spec applied."""
    store = MemoryStore("lab")
    nodes = ["n1", "n2", "n3"]
    views = {n: StaticLiveness({m: Liveness("up", False, f"{m}-1") for m in nodes}) for n in nodes}
    informers: dict[str, Informer] = {}
    tasks: list[asyncio.Task[None]] = []
    for node in nodes:
        informers[node] = informer = Informer(store)
        tasks.append(asyncio.create_task(informer.run()))
        reconciler = Reconciler(
            node, store, informer, views[node], registry=registry_for(world, node),
            run_dir=tmp_path / node,
        )  # fmt: skip
        tasks.append(asyncio.create_task(reconciler.run()))
    await apply_objects(store, decode_documents(parse_text(spec, "spec.yaml")), cluster="lab")
    return store, views, informers, tasks


async def run_cluster(
    spec: str, tmp_path: Path, world: World, fenced: list[str]
) -> tuple[MemoryStore, list[asyncio.Task[None]]]:
    """The nodes, and n3 leading without an election."""
    store, views, informers, tasks = await start_nodes(spec, tmp_path, world)
    fencer = Fencer(store, informers["n3"], "n3", scripted_power_off(world, views, fenced))
    leader = Leader(store, informers["n3"], "n3", views["n3"], fencer)
    tasks.append(asyncio.create_task(leader.run()))
    return store, tasks


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    await cancel_all(tasks)


async def phase(store: MemoryStore) -> str | None:
    kv = await store.get(keys.status_key("ResourceGroup", "web"))
    return str(kv.value.get("phase")) if kv else None


async def drain_n1_with_a_stuck_stop(store: MemoryStore, world: World) -> None:
    async def on_n1() -> bool:
        return len(world.on("n1")) == 2

    await until(on_n1)
    world.unknown.add(("n1", IP))  # its stop now fails (a stuck umount, say)
    await apply_objects(store, decode_documents(parse_text(STANDBY_N1, "n.yaml")), cluster="lab")


async def test_without_fencing_a_failed_stop_holds_the_group(tmp_path: Path) -> None:
    world, fenced = World(), list[str]()
    store, tasks = await run_cluster(SPEC, tmp_path, world, fenced)
    try:
        await drain_n1_with_a_stuck_stop(store, world)

        async def stop_failed() -> bool:
            return await phase(store) == "StopFailed"

        await until(stop_failed)
        await asyncio.sleep(0.5)
        assert not world.on("n2"), "started on n2 while it may still run on n1"
        assert await phase(store) == "StopFailed" and fenced == []
    finally:
        await stop(tasks)


async def test_with_fencing_the_node_that_cannot_stop_is_fenced_then_recovered(
    tmp_path: Path,
) -> None:
    world, fenced = World(), list[str]()
    store, tasks = await run_cluster(FENCED_SPEC, tmp_path, world, fenced)
    try:
        await drain_n1_with_a_stuck_stop(store, world)

        async def moved() -> bool:
            return len(world.on("n2")) == 2

        await until(moved)
        assert fenced == ["n1"]
        kv = await store.get(keys.fencing_key("n1"))
        assert kv is not None
        record = FenceRecord.from_dict(dict(kv.value))
        assert record.state == "fenced" and record.reason.startswith("could not stop web: ")
        placement = await store.get(keys.placement_key("web"))
        assert placement is not None
        assert PlacementRecord.from_dict(dict(placement.value)).recovered_from == "n1"
    finally:
        await stop(tasks)


async def n1_service_turns_unstoppable(world: World) -> str:
    """Once the group runs on n1, its service there can be neither observed nor stopped."""

    async def on_n1() -> bool:
        return len(world.on("n1")) == 2

    await until(on_n1)
    service = next(r for r in world.on("n1") if r != IP)
    world.unknown.add(("n1", service))
    return service


def assert_ip_left_under(world: World, service: str) -> None:
    assert ("n1", "stop", service) in world.log
    assert ("n1", "stop", IP) not in world.log and IP in world.on("n1")


async def test_a_failed_stop_leaves_what_the_resource_stands_on_alone(tmp_path: Path) -> None:
    # Stopped last started first: the service's stop fails, so the IP under it is not
    # stopped (as a volume must not be demoted under a filesystem still mounted).
    world, fenced = World(), list[str]()
    store, tasks = await run_cluster(SPEC, tmp_path, world, fenced)
    try:
        service = await n1_service_turns_unstoppable(world)
        await apply_objects(
            store, decode_documents(parse_text(STANDBY_N1, "n.yaml")), cluster="lab"
        )

        async def stop_failed() -> bool:
            return await phase(store) == "StopFailed"

        await until(stop_failed)
        await asyncio.sleep(0.5)
        assert_ip_left_under(world, service)
    finally:
        await stop(tasks)


async def test_a_failed_restart_leaves_what_an_unstoppable_resource_stands_on(
    tmp_path: Path,
) -> None:
    # The service turns unobservable and unstoppable where it runs: the reconciler tries
    # to start it again, that start fails, and the clean-up after it must not stop the
    # IP under a service it could not stop (it stopped everything, ignoring errors).
    world, fenced = World(), list[str]()
    store, tasks = await run_cluster(SPEC, tmp_path, world, fenced)
    try:
        service = await n1_service_turns_unstoppable(world)

        async def failure_counted() -> bool:
            return await store.get(keys.failure_key("web", "n1")) is not None

        await until(failure_counted)
        await asyncio.sleep(0.5)
        assert_ip_left_under(world, service)
    finally:
        await stop(tasks)


async def test_a_leader_whose_own_stop_fails_hands_the_lead_over_and_is_fenced(
    tmp_path: Path,
) -> None:
    # The controller does not fence its own node: n1 leads when its stop fails, so it
    # steps down and does not campaign again; n3 then leads, fences n1 and recovers.
    world, fenced = World(), list[str]()
    store, views, informers, tasks = await start_nodes(FENCED_SPEC, tmp_path, world)
    power_off = scripted_power_off(world, views, fenced)

    def campaign(node: str) -> None:
        informer = informers[node]
        fencer = Fencer(store, informer, node, power_off)
        leader = Leader(store, informer, node, views[node], fencer)
        election = Election(store, informer, node, views[node])
        tasks.append(asyncio.create_task(election.run(leader.run)))

    try:

        async def leads(node: str) -> bool:
            kv = await store.get(keys.LEADER)
            return kv is not None and kv.value.get("node") == node

        campaign("n1")
        await until(lambda: leads("n1"))
        campaign("n3")
        await drain_n1_with_a_stuck_stop(store, world)

        async def moved() -> bool:
            return len(world.on("n2")) == 2

        await until(moved, within=15)
        assert fenced == ["n1"]
        assert await leads("n3")
    finally:
        await stop(tasks)
