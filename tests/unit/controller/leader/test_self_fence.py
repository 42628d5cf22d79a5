"""A node that fences itself through its watchdog counts as fenced once the watchdog wait
has elapsed on the leader's monotonic clock since that leader first saw it lost; a new
leader starts its own wait (never shorter). Pure rules first, then the leader's loop."""

from __future__ import annotations

import asyncio

import pytest

from controller.api.fencing import FenceDevice, self_fence_device
from controller.api.liveness import Liveness
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.leader import fencing_plan
from controller.leader.fencer import Fencer
from controller.leader.fencing_plan import (
    lost_clock,
    needs,
    self_fence_due,
    self_fence_wait,
    self_fence_waits,
    self_fenced,
)
from controller.store import keys
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.records import PlacementRecord
from controller.store.view import ClusterView
from nodeagent import selffence
from nodeagent.heartbeat import timing
from tests.unit.controller.leader.test_fencer import (
    Devices,
    fence_record,
    leading,
    placed_on,
    reasons,
    until,
)
from tests.unit.static_liveness import StaticLiveness

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
metadata: {name: wd-n1}
spec: {agent: watchdog, targets: [n1], timeout: %(timeout)s}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: wd-n2}
spec: {agent: watchdog, targets: [n2], timeout: %(timeout)s}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: wd-n3}
spec: {agent: watchdog, targets: [n3], timeout: %(timeout)s}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {name: web}
spec:
  placement: {nodes: [{name: n1, score: 100}]}
  resources:
    - ip: {address: 10.0.0.100/24}
"""

BMC = """
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: bmc}
spec: {agent: exec, command: [/bin/true], targets: [n1, n2, n3]}
"""


async def store_with(timeout: str = "10s", extra: str = "") -> MemoryStore:
    store = MemoryStore("lab")
    text = SPEC % {"timeout": timeout} + extra
    await apply_objects(store, decode_documents(parse_text(text, "spec.yaml")), cluster="lab")
    return store


async def view_of(store: MemoryStore) -> ClusterView:
    informer = Informer(store)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.ready.wait(), 5)
        return informer.view()
    finally:
        task.cancel()


def watchdog(view: ClusterView) -> FenceDevice:
    return view.fences["wd-n1"]


def test_the_constants_match_the_node_side() -> None:
    # The control plane does not import the node side: these are copies.
    assert fencing_plan.RHO == timing.RHO
    assert fencing_plan.PETS_PER_TIMEOUT == selffence.PETS_PER_TIMEOUT


async def test_the_wait_is_the_timeout_with_clock_drift_and_one_pet_interval() -> None:
    view = await view_of(await store_with("10s"))
    assert self_fence_wait(watchdog(view)) == pytest.approx(10 * 1.01 + 10 / 4)


def test_the_lost_clock_keeps_the_first_sight_of_one_incarnation() -> None:
    clock = lost_clock({}, {"n1": LOST, "n2": UP}, 100.0)
    assert clock == {"n1": ("i-lost", 100.0)}
    assert lost_clock(clock, {"n1": LOST}, 105.0) == {"n1": ("i-lost", 100.0)}
    # Heard again, then lost again: a new wait (the node may have petted meanwhile).
    assert lost_clock(clock, {"n1": UP}, 106.0) == {}
    again = Liveness("dead", True, "i-next")
    assert lost_clock(clock, {"n1": again}, 107.0) == {"n1": ("i-next", 107.0)}


async def test_fenced_only_once_the_wait_has_elapsed() -> None:
    view = await view_of(await store_with("10s"))
    seen = {"n1": LOST, "n2": UP, "n3": UP}
    clock = lost_clock({}, seen, 1000.0)
    wait = self_fence_wait(watchdog(view))
    assert self_fenced(view, seen, clock, 1000.0 + wait - 0.01, 5.0, "n3") == []
    assert self_fence_due(view, seen, clock) == pytest.approx(1000.0 + wait)
    [record] = self_fenced(view, seen, clock, 1000.0 + wait, 5.0, "n3")
    assert (record.node, record.state, record.incarnation) == ("n1", "fenced", "i-lost")
    assert record.covers("i-lost") and record.fenced_by == ("wd-n1",)
    assert record.message.startswith("self-fenced: watchdog timeout 10 s elapsed")
    assert (record.leader, record.fenced_at) == ("n3", 5.0)


async def test_the_wait_is_recorded_once_for_a_watchdog_only_node() -> None:
    view = await view_of(await store_with("10s"))
    seen = {"n1": LOST, "n2": UP, "n3": UP}
    clock = lost_clock({}, seen, 0.0)
    [record] = self_fence_waits(view, seen, clock, 5.0, "n3")
    assert (record.node, record.state, record.incarnation) == ("n1", "fencing", "i-lost")
    assert record.message == "waiting 12.6 s for wd-n1 (watchdog timeout 10 s) to have reset n1"
    # With a BMC to try, its attempts are what `ha status` shows.
    both = await view_of(await store_with("10s", BMC))
    assert self_fence_waits(both, seen, clock, 5.0, "n3") == []


async def test_a_new_leader_waits_from_when_it_first_sees_the_node_lost() -> None:
    view = await view_of(await store_with("10s"))
    seen = {"n1": LOST, "n2": UP, "n3": UP}
    wait = self_fence_wait(watchdog(view))
    first = lost_clock({}, seen, 1000.0)  # n3 led and saw n1 lost at 1000
    # n3 goes away at 1000 + wait - 1; n2 leads from then on, with a clock of its own
    # (another machine's monotonic clock: any origin) and no memory of n3's.
    second = lost_clock({}, {"n1": LOST, "n2": UP}, 50.0)
    assert self_fenced(view, seen, first, 1000.0 + wait, 5.0, "n3") != []
    # n3's wait would have ended 1 s after n2 took over: n2 waits a whole one anyway.
    assert self_fenced(view, seen, second, 50.0 + 1.0, 6.0, "n2") == []
    assert self_fenced(view, seen, second, 50.0 + wait - 0.01, 6.0, "n2") == []
    assert self_fenced(view, seen, second, 50.0 + wait, 6.0, "n2") != []


async def test_a_watchdog_only_node_needs_no_attempt_and_a_bmc_still_runs() -> None:
    view = await view_of(await store_with("10s"))
    seen = {"n1": LOST, "n2": UP, "n3": UP}
    assert needs(view, seen, 5.0, "n3") == []  # nothing to run against a watchdog
    both = await view_of(await store_with("10s", BMC))
    assert [n.node for n in needs(both, seen, 5.0, "n3")] == ["n1"]
    # The watchdog still counts, alongside the BMC's attempts.
    clock = lost_clock({}, seen, 0.0)
    assert [r.node for r in self_fenced(both, seen, clock, 100.0, 5.0, "n3")] == ["n1"]


async def test_no_wait_for_a_node_that_is_heard() -> None:
    view = await view_of(await store_with("10s"))
    seen = {"n1": UP, "n2": UP, "n3": UP}
    assert self_fenced(view, seen, lost_clock({}, seen, 0.0), 1e6, 5.0, "n3") == []


async def test_the_leader_recovers_a_self_fencing_node_after_the_wait() -> None:
    store = await store_with("1s")
    record = PlacementRecord("web", "n1", 1, "best", incarnation="i-up")
    await store.put(keys.placement_key("web"), record.to_dict())
    seen = StaticLiveness({"n1": LOST, "n2": UP, "n3": UP})
    devices = Devices()
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with leading(store, seen, devices):

        async def moved() -> bool:
            return await placed_on(store) not in (None, "n1")

        await until(moved, "the group recovered after the watchdog wait")
    took = loop.time() - began
    assert took >= 1 * 1.01 + 0.25  # never before the wait
    fenced = await fence_record(store)
    assert fenced is not None and fenced.state == "fenced"
    assert fenced.fenced_by == ("wd-n1",) and "self-fenced" in fenced.message
    assert devices.calls == []  # nothing was run against the watchdog
    assert fenced.requested_by == "controller on n3"  # the wait's record, closed
    assert {"FenceRequested", "FenceVerified"} <= set(await reasons(store))


async def test_node_and_leader_choose_the_same_watchdog() -> None:
    extra = """
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: a-wd-n1}
spec: {agent: watchdog, targets: [n1], timeout: 30s, level: 2}
"""
    view = await view_of(await store_with("10s", extra + BMC))
    # Lowest level first, then by name: the level-1 wd-n1, not a-wd-n1 (first by name).
    device = self_fence_device(view.fences.values(), "n1")
    assert device is not None and device.name == "wd-n1"
    assert self_fence_device([view.fences["bmc"]], "n1") is None


async def test_a_leader_that_leads_again_starts_a_new_wait() -> None:
    store = await store_with("10s")
    informer = Informer(store)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.ready.wait(), 5)
        fencer = Fencer(store, informer, "n3", Devices())
        await fencer.tend({"n1": LOST, "n2": UP, "n3": UP})
        assert fencer.next_wake() is not None and "n1" in fencer._lost_since
        await fencer.close()  # n3 no longer leads: what it saw between terms is unknown
        assert fencer._lost_since == {} and fencer.next_wake() is None
    finally:
        task.cancel()
