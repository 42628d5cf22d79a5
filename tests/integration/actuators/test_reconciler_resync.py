"""A reconciler with hundreds of settled groups looks at a slice of them per turn, not at
all of them (nodeagent/reconciler/dirty.py), yet a VIP deleted by hand behind its back is
still noticed by the spread resync and added again."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from controller.api.liveness import Liveness
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.store import keys
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.records import PlacementRecord
from nodeagent.observation import State
from nodeagent.reconciler.dirty import resync_period
from nodeagent.reconciler.loop import Reconciler
from tests.integration.actuators.conftest import Topology
from tests.unit.static_liveness import StaticLiveness

pytestmark = pytest.mark.slow

GROUPS = 300  # more than one resync period's worth of a turn: the rotation is spread


def address(i: int) -> str:
    return f"10.78.{i // 250}.{i % 250 + 1}"


def manifest() -> str:
    return "---\n".join(
        f"apiVersion: ha.vigil.dev/v1alpha1\nkind: ResourceGroup\n"
        f"metadata: {{name: g-{i:04d}}}\nspec:\n  resources:\n"
        f"    - ip: {{address: {address(i)}/32, interface: eth0, arp: {{count: 1}}}}\n"
        for i in range(GROUPS)
    )


async def until(check: object, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_a_vip_deleted_by_hand_is_noticed_by_the_spread_resync(
    topology: Topology, tmp_path: Path
) -> None:
    store = MemoryStore("lab")
    await apply_objects(store, decode_documents(parse_text(manifest(), "g.yaml")), cluster="lab")
    for i in range(GROUPS):
        record = PlacementRecord(f"g-{i:04d}", "n1", 1, "test")
        await store.put(keys.placement_key(record.group), record.to_dict())
    informer = Informer(store)
    watching = asyncio.create_task(informer.run())
    await informer.ready.wait()
    liveness = StaticLiveness({"n1": Liveness("up", False)})
    reconciler = Reconciler("n1", store, informer, liveness, run_dir=tmp_path, netns=topology.n1)
    looked: list[int] = []
    observe = reconciler._observe

    async def counted(*args: object) -> object:
        looked[-1] += 1
        return await observe(*args)  # type: ignore[arg-type]

    reconciler._observe = counted  # type: ignore[assignment,method-assign]
    turn = reconciler.turn

    async def counting_turn() -> None:
        looked.append(0)
        await turn()

    reconciler.turn = counting_turn  # type: ignore[method-assign]
    task = asyncio.create_task(reconciler.run())
    try:

        def all_running() -> bool:
            views = reconciler.views
            return len(views) == GROUPS and all(
                r.state is State.RUNNING for v in views.values() for r in v.resources
            )

        await until(all_running, within=60)
        settled_from = len(looked)
        await until(lambda: len(looked) >= settled_from + 3, within=30)
        # Settled: later turns look at a slice, not at every group.
        assert max(looked[settled_from + 1 :]) < GROUPS, looked

        victim = address(123)
        topology.run(topology.n1, "ip", "addr", "del", f"{victim}/32", "dev", "eth0")
        assert victim not in topology.run(topology.n1, "ip", "-4", "addr", "show").stdout

        def back() -> bool:
            return f"inet {victim}/32" in topology.run(topology.n1, "ip", "addr").stdout

        # Noticed within a resync period (plus the address table's age); the bound here
        # only keeps a broken build from hanging.
        await until(back, within=10 * resync_period(GROUPS))
    finally:
        for running in (task, watching):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await reconciler.stop_all("test over")
