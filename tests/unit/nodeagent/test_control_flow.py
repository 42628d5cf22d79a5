"""Leader and reconcilers together over the in-memory store, with recording actuators.

These check the control flow of docs/safety.md (who writes what, in which order) without
machines; the lab tests check the same with real namespaces, etcd and addresses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.group import Resource
from controller.api.liveness import Liveness
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.leader.loop import Leader
from controller.store import keys
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.records import PlacementRecord
from nodeagent.actuators.base import (
    Actuator,
    ActuatorContext,
    ActuatorRegistry,
)
from nodeagent.agent_events import running_groups
from nodeagent.observation import Observation
from nodeagent.reconciler.loop import Reconciler
from tests.unit.static_liveness import StaticLiveness
from tests.unit.tasks import cancel_all

UP, LOST = Liveness("up", False), Liveness("dead", True)

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
---
apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {name: web}
spec:
  placement: {nodes: [{name: n1, score: 100}, {name: n2, score: 50}]}
  migrationThreshold: 2
  resources:
    - ip: {address: 10.0.0.100/24}
    - service: {exec: {command: [/bin/true]}}
"""


@dataclass
class World:
    """What runs on each node, as the recording actuators see it."""

    running: dict[str, set[str]] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    fail_start: set[tuple[str, str]] = field(default_factory=set)
    tending: dict[str, set[str]] = field(default_factory=dict)  # tend() running now
    crashed: set[tuple[str, str]] = field(default_factory=set)  # exited by themselves
    unknown: set[tuple[str, str]] = field(default_factory=set)  # cannot be observed or stopped

    def on(self, node: str) -> set[str]:
        return self.running.setdefault(node, set())

    def tended(self, node: str) -> set[str]:
        return self.tending.setdefault(node, set())


def registry_for(world: World, node: str) -> ActuatorRegistry:
    registry = ActuatorRegistry()

    class Recording(Actuator):
        @property
        def where(self) -> str:
            return node

        async def _observe(self) -> Observation:
            if (node, self.ctx.resource) in world.unknown:
                return Observation.unknown("status exited 4 (status unknown)")
            if (node, self.ctx.resource) in world.crashed:
                return Observation.failed("exited with code 1")
            if self.ctx.resource in world.on(node):
                return Observation.running("up")
            return Observation.stopped("down")

        async def _start(self) -> None:
            world.log.append((node, "start", self.ctx.resource))
            if (node, self.ctx.resource) not in world.fail_start:
                world.on(node).add(self.ctx.resource)

        async def _stop(self) -> None:
            world.log.append((node, "stop", self.ctx.resource))
            if (node, self.ctx.resource) in world.unknown:
                raise self.error("stop exited 1", "fix the init script")
            world.on(node).discard(self.ctx.resource)
            world.crashed.discard((node, self.ctx.resource))

        async def tend(self) -> None:
            world.tended(node).add(self.ctx.resource)
            try:
                await asyncio.Event().wait()  # until the reconciler cancels it
            finally:
                world.tended(node).discard(self.ctx.resource)

    def make(_resource: Resource, ctx: ActuatorContext) -> Actuator:
        return Recording(ctx)

    registry.register("ip")(make)
    registry.register("service.exec")(make)
    return registry


@dataclass
class Cluster:
    store: MemoryStore
    world: World
    views: dict[str, StaticLiveness]
    reconcilers: dict[str, Reconciler]
    tasks: list[asyncio.Task[None]]

    def cut_off(self, node: str) -> None:
        """node loses its lease; the others declare it lost."""
        self.views[node].set_serving(False)
        for other, view in self.views.items():
            if other != node:
                view.set(node, LOST)

    async def placement(self) -> PlacementRecord | None:
        kv = await self.store.get(keys.placement_key("web"))
        return PlacementRecord.from_dict(kv.value) if kv else None


async def until(check: Any, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    store = MemoryStore("lab")
    world = World()
    nodes = ["n1", "n2", "n3"]
    views = {n: StaticLiveness({m: UP for m in nodes}) for n in nodes}
    tasks: list[asyncio.Task[None]] = []
    reconcilers = {}
    for node in nodes:
        informer = Informer(store)
        tasks.append(asyncio.create_task(informer.run()))
        reconciler = Reconciler(
            node, store, informer, views[node], registry=registry_for(world, node), run_dir=tmp_path
        )
        reconcilers[node] = reconciler
        tasks.append(asyncio.create_task(reconciler.run()))
        if node == "n3":  # the leader: a node that runs nothing in this spec
            tasks.append(asyncio.create_task(Leader(store, informer, node, views[node]).run()))
    await apply_objects(store, decode_documents(parse_text(SPEC, "spec.yaml")), cluster="lab")
    try:
        yield Cluster(store, world, views, reconcilers, tasks)
    finally:
        await cancel_all(tasks)


async def test_group_starts_in_order_on_the_best_node(cluster: Cluster) -> None:
    async def running() -> bool:
        return cluster.world.on("n1") == {"web.ip-10-0-0-100", "web.service-true"}

    await until(running)
    starts = [entry for entry in cluster.world.log if entry[1] == "start"]
    assert starts == [("n1", "start", "web.ip-10-0-0-100"), ("n1", "start", "web.service-true")]
    placement = await cluster.placement()
    assert placement is not None and (placement.node, placement.epoch) == ("n1", 1)

    async def reported() -> bool:
        kv = await cluster.store.get(keys.status_key("ResourceGroup", "web"))
        return kv is not None and kv.value.get("phase") == "Running"

    await until(reported)


async def test_lost_node_stops_and_survivor_takes_over(cluster: Cluster) -> None:
    async def on_n1() -> bool:
        return len(cluster.world.on("n1")) == 2

    await until(on_n1)
    cluster.cut_off("n1")

    async def moved() -> bool:
        return not cluster.world.on("n1") and len(cluster.world.on("n2")) == 2

    await until(moved)
    placement = await cluster.placement()
    assert placement is not None
    assert (placement.node, placement.recovered_from) == ("n2", "n1")
    # n1 stopped everything before n2 started anything.
    last_n1_stop = max(i for i, e in enumerate(cluster.world.log) if e[:2] == ("n1", "stop"))
    first_n2_start = min(i for i, e in enumerate(cluster.world.log) if e[:2] == ("n2", "start"))
    assert last_n1_stop < first_n2_start


async def test_standby_moves_in_two_steps(cluster: Cluster) -> None:
    async def on_n1() -> bool:
        return len(cluster.world.on("n1")) == 2

    await until(on_n1)
    node_doc = (
        "apiVersion: ha.vigil.dev/v1alpha1\nkind: Node\nmetadata: {name: n1}\n"
        "spec: {standby: true}\n"
    )
    await apply_objects(
        cluster.store, decode_documents(parse_text(node_doc, "n.yaml")), cluster="lab"
    )

    async def moved() -> bool:
        return not cluster.world.on("n1") and len(cluster.world.on("n2")) == 2

    await until(moved)
    placement = await cluster.placement()
    assert placement is not None and placement.node == "n2" and placement.epoch == 3
    n1_stops = [i for i, e in enumerate(cluster.world.log) if e[:2] == ("n1", "stop")]
    n2_starts = [i for i, e in enumerate(cluster.world.log) if e[:2] == ("n2", "start")]
    assert max(n1_stops) < min(n2_starts)


async def test_start_failures_move_the_group_after_the_threshold(cluster: Cluster) -> None:
    cluster.world.fail_start.add(("n1", "web.service-true"))

    async def moved() -> bool:
        return len(cluster.world.on("n2")) == 2

    await until(moved, within=10)
    kv = await cluster.store.get(keys.failure_key("web", "n1"))
    assert kv is not None and kv.value["count"] >= 2
    assert "web.ip-10-0-0-100" not in cluster.world.on("n1")


async def test_restarted_agent_keeps_its_resources_until_confirmed(cluster: Cluster) -> None:
    for view in cluster.views.values():
        for member in ("n1", "n2", "n3"):
            view.set(member, Liveness("up", False, f"{member}-1"))

    async def confirmed_on_n1() -> bool:
        placement = await cluster.placement()
        return (
            placement is not None
            and placement.incarnation == "n1-1"
            and len(cluster.world.on("n1")) == 2
        )

    await until(confirmed_on_n1)
    # n1's agent starts again: a new incarnation, seen by itself first.
    cluster.views["n1"].set("n1", Liveness("up", False, "n1-2"))
    await asyncio.sleep(0.3)
    assert len(cluster.world.on("n1")) == 2, "a restarted agent must not stop what runs"
    assert not [e for e in cluster.world.log if e[:2] == ("n1", "stop")]
    # The leader hears the new incarnation and confirms the placement for it.
    cluster.views["n3"].set("n1", Liveness("up", False, "n1-2"))

    async def reconfirmed() -> bool:
        placement = await cluster.placement()
        return placement is not None and placement.incarnation == "n1-2"

    await until(reconfirmed)
    assert len(cluster.world.on("n1")) == 2
    assert not [e for e in cluster.world.log if e[:2] == ("n1", "stop")]


async def test_a_resource_running_where_it_is_not_placed_is_stopped(cluster: Cluster) -> None:
    cluster.world.on("n2").add("web.ip-10-0-0-100")  # left over from before a restart

    async def cleaned() -> bool:
        return not cluster.world.on("n2") and len(cluster.world.on("n1")) == 2

    await until(cleaned)


BOTH = {"web.ip-10-0-0-100", "web.service-true"}


async def test_work_while_running_follows_the_resource(cluster: Cluster) -> None:
    async def tended_on_n1() -> bool:
        return cluster.world.tended("n1") == BOTH

    await until(tended_on_n1)
    cluster.cut_off("n1")

    async def moved() -> bool:
        return not cluster.world.tended("n1") and cluster.world.tended("n2") == BOTH

    await until(moved)


async def web_placed_on_n1(world: World, run_dir: Path) -> Reconciler:
    """n1's reconciler, web placed on n1 in the store, before its first turn."""
    store = MemoryStore("lab")
    await apply_objects(store, decode_documents(parse_text(SPEC, "spec.yaml")), cluster="lab")
    record = PlacementRecord("web", "n1", 1, "best")
    await store.put(keys.placement_key("web"), record.to_dict())
    informer = Informer(store)
    informer.load(*await store.list(""))
    view = StaticLiveness({m: UP for m in ("n1", "n2", "n3")})
    return Reconciler(
        "n1", store, informer, view, registry=registry_for(world, "n1"), run_dir=run_dir
    )


async def test_a_resource_adopted_after_an_agent_restart_is_tended(tmp_path: Path) -> None:
    # The group runs on n1 from before this agent started: no start, yet its tend() runs.
    world = World()
    world.on("n1").update(BOTH)
    reconciler = await web_placed_on_n1(world, tmp_path)
    assert reconciler.first_look is None
    await reconciler.turn()
    await asyncio.sleep(0)  # let the tend tasks begin
    assert world.tended("n1") == BOTH
    assert not [entry for entry in world.log if entry[1] == "start"]
    assert reconciler.first_look is not None
    assert running_groups(reconciler.first_look) == ["web"]  # AgentStarted: adopted
    await reconciler.stop_all("test over")
    assert not world.tended("n1") and not world.on("n1")


async def test_the_first_look_is_what_was_found_not_what_the_turn_started(
    tmp_path: Path,
) -> None:
    world = World()
    reconciler = await web_placed_on_n1(world, tmp_path)
    await reconciler.turn()
    await reconciler.turn()
    assert world.on("n1") == BOTH  # the first turn started it, the second saw it run
    assert running_groups(reconciler.views.values()) == ["web"]
    assert reconciler.first_look is not None and running_groups(reconciler.first_look) == []
    await reconciler.stop_all("test over")


BLOCKED = """
apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {name: data, generation: 1, uid: u-data}
spec:
  placement: {nodes: [{name: n1, score: 100}]}
  resources:
    - ip: {address: 10.0.0.101/24}
    - volume: {name: pgdata}
"""
# The group's volume exists (the scheduler places a group that uses a volume only where a
# replica of it is): what blocks it is the node, which has no actuator for it.
PGDATA = """
apiVersion: ha.vigil.dev/v1alpha1
kind: ReplicatedVolume
metadata: {name: pgdata, generation: 1, uid: u-pgdata}
spec:
  replicas:
    - {node: n1, disk: /dev/vdb, address: "10.0.0.1:7789"}
    - {node: n2, disk: /dev/vdb, address: "10.0.0.2:7789"}
"""


async def test_a_group_this_node_cannot_run_never_stops_the_others(cluster: Cluster) -> None:
    # A kind with no actuator here (written by a newer `ha`, say): that group is Blocked,
    # with its reason and an event; every other group is reconciled as before.
    await cluster.store.put(keys.spec_key("ReplicatedVolume", "pgdata"), yaml.safe_load(PGDATA))
    data = yaml.safe_load(BLOCKED)
    await cluster.store.put(keys.spec_key("ResourceGroup", "data"), data)

    async def blocked() -> bool:
        kv = await cluster.store.get(keys.status_key("ResourceGroup", "data"))
        return kv is not None and kv.value.get("phase") == "Blocked"

    await until(blocked)
    kv = await cluster.store.get(keys.status_key("ResourceGroup", "data"))
    assert kv is not None and "volume resources have no actuator" in kv.value["lastAction"]
    assert "data.ip-10-0-0-101" not in cluster.world.on("n1")  # not started without its volume
    events, _ = await cluster.store.list(keys.event_prefix("ResourceGroup", "data"))
    assert any(e.value["reason"] == "Blocked" for e in events)

    async def web_runs() -> bool:
        return cluster.world.on("n1") == BOTH

    await until(web_runs)
    cluster.cut_off("n1")  # and the cluster still fails over

    async def moved() -> bool:
        return cluster.world.on("n2") == BOTH

    await until(moved)


async def test_a_service_that_exits_by_itself_counts_and_moves_at_the_threshold(
    cluster: Cluster,
) -> None:
    def starts() -> int:
        return cluster.world.log.count(("n1", "start", "web.service-true"))

    async def on_n1() -> bool:
        return cluster.world.on("n1") == BOTH

    await until(on_n1)
    for crash in (1, 2):  # migrationThreshold: 2
        before = starts()
        cluster.world.crashed.add(("n1", "web.service-true"))

        async def counted(crash: int = crash) -> bool:
            kv = await cluster.store.get(keys.failure_key("web", "n1"))
            return kv is not None and kv.value["count"] == crash

        await until(counted)
        if crash == 1:

            async def restarted(before: int = before) -> bool:
                return starts() > before and await on_n1()

            await until(restarted)

    async def moved() -> bool:
        return cluster.world.on("n2") == BOTH and not cluster.world.on("n1")

    await until(moved)
    events, _ = await cluster.store.list(keys.event_prefix("ResourceGroup", "web"))
    failed = [e.value["message"] for e in events if e.value["reason"] == "Failed"]
    assert len(failed) == 2 and "service-true failed: exited with code 1" in failed[0]


async def test_a_node_that_cannot_see_a_service_neither_claims_it_nor_hammers_it(
    cluster: Cluster,
) -> None:
    # n2 and n3 cannot observe or stop the service (an init script that answers "unknown"
    # there): they retry the stop with back-off, and only n1, where the group runs, reports.
    for node in ("n2", "n3"):
        cluster.world.unknown.add((node, "web.service-true"))

    async def on_n1() -> bool:
        return cluster.world.on("n1") == BOTH

    await until(on_n1)
    reporters = set()
    began = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - began < 3.0:
        kv = await cluster.store.get(keys.status_key("ResourceGroup", "web"))
        if kv is not None:
            reporters.add(kv.value.get("reporter"))
        cluster.reconcilers["n2"]._probe_wake.set()  # turns as often as a busy store would
        await asyncio.sleep(0.05)
    assert reporters == {"n1"}
    stops = [e for e in cluster.world.log if e[:2] == ("n2", "stop")]
    assert 1 <= len(stops) <= 4, stops  # 0.5 s, 1 s, 2 s apart: not one per turn


async def test_a_recovered_group_keeps_running_when_the_lost_node_is_heard_again(
    cluster: Cluster,
) -> None:
    # A partition heals: n2, which recovered the group from lost n1, hears n1's old
    # incarnation again for a moment. What runs on n2 keeps running.
    async def on_n1() -> bool:
        return cluster.world.on("n1") == BOTH

    await until(on_n1)
    cluster.cut_off("n1")

    async def on_n2() -> bool:
        return cluster.world.on("n2") == BOTH

    await until(on_n2)
    stops_before = [e for e in cluster.world.log if e[:2] == ("n2", "stop")]
    cluster.views["n2"].set("n1", UP)
    await asyncio.sleep(2.5)  # more than a resync: every wake of n2 has had its turn
    assert cluster.world.on("n2") == BOTH
    assert [e for e in cluster.world.log if e[:2] == ("n2", "stop")] == stops_before


async def test_a_recovery_waits_while_the_new_node_still_hears_the_lost_one(
    cluster: Cluster,
) -> None:
    async def on_n1() -> bool:
        return cluster.world.on("n1") == BOTH

    await until(on_n1)
    cluster.views["n1"].set_serving(False)
    cluster.views["n3"].set("n1", LOST)  # the leader declares n1 lost; n2 still hears it

    async def recovered_to_n2() -> bool:
        placement = await cluster.placement()
        return placement is not None and placement.node == "n2"

    await until(recovered_to_n2)
    await asyncio.sleep(0.5)
    assert not cluster.world.on("n2"), "n2 started while it still heard n1"
    cluster.views["n2"].set("n1", LOST)

    async def on_n2() -> bool:
        return cluster.world.on("n2") == BOTH

    await until(on_n2)


async def test_actions_are_timed_failures_counted_and_a_group_start_reported(
    cluster: Cluster,
) -> None:
    from nodeagent.metrics.instruments import ACTION_DURATION, ACTION_FAILURES
    from tests.unit.nodeagent.metrics.test_tracker import value

    started: list[str] = []
    started_n2: list[str] = []
    cluster.reconcilers["n1"].on_group_started = started.append
    cluster.reconcilers["n2"].on_group_started = started_n2.append
    starts = value(ACTION_DURATION, "_count", action="start", type="service.exec")
    monitors = value(ACTION_DURATION, "_count", action="monitor", type="ip")
    failures = value(ACTION_FAILURES, group="web", resource="service-true", action="start")
    cluster.world.fail_start.add(("n1", "web.service-true"))

    async def moved() -> bool:
        return len(cluster.world.on("n2")) == 2

    await until(moved, within=10)
    assert value(ACTION_FAILURES, group="web", resource="service-true", action="start") >= (
        failures + 2
    )  # the migration threshold
    assert value(ACTION_DURATION, "_count", action="start", type="service.exec") >= starts + 3
    assert value(ACTION_DURATION, "_count", action="monitor", type="ip") > monitors
    assert started == []  # its last resource never started on n1
    assert started_n2 == ["web"]
