"""Writes on the failover's critical path survive a dropped etcd request.

When the node that died also led etcd, a request sent around its death can be dropped and
etcd answers only after its own ~5 s timeout (measured: a 5.3 s failover with tuned
timings). The election and the leader retry with short attempts instead; a store whose
first requests time out stands in for that etcd here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

from controller.api.liveness import Liveness
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.leader.election import CAMPAIGN_ATTEMPT, REVOKE_ATTEMPT, Election
from controller.leader.loop import WRITE_ATTEMPT, Leader
from controller.store import keys
from controller.store.base import Lease, Op
from controller.store.errors import Conflict, ConflictError, StoreUnavailableError
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.records import LeaderRecord
from tests.unit.static_liveness import StaticLiveness

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
  resources:
    - ip: {address: 10.0.0.100/24}
"""


class DroppingStore(MemoryStore):
    """The first `drops` revokes and commits time out without being applied."""

    def __init__(self, drops: int) -> None:
        super().__init__("lab")
        self.drops = drops
        self.timeouts: list[tuple[str, float | None]] = []

    def _drop(self, what: str, timeout: float | None) -> None:
        self.timeouts.append((what, timeout))
        if self.drops > 0:
            self.drops -= 1
            raise StoreUnavailableError(["memory"], f"no answer within {timeout}s")

    async def revoke_lease(self, lease_id: int, timeout: float | None = None) -> None:
        self._drop("revoke", timeout)
        await super().revoke_lease(lease_id, timeout)

    async def commit(self, ops: Sequence[Op], timeout: float | None = None) -> int:
        if any(op.key.startswith(keys.PLACEMENT) for op in ops):
            self._drop("placement", timeout)
        return await super().commit(ops, timeout)


@contextlib.asynccontextmanager
async def running_informer(store: MemoryStore) -> AsyncIterator[Informer]:
    """An informer over `store`, loaded, and stopped on the way out."""
    informer = Informer(store)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.ready.wait(), 5)
        yield informer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def led_by_n1(drops: int) -> DroppingStore:
    store = DroppingStore(drops)
    lease = await store.grant_lease(10)
    await store.put(keys.LEADER, {"node": "n1", "lease": lease.id}, lease=lease.id)
    return store


async def test_a_dropped_revoke_of_the_lost_leader_is_retried_at_once() -> None:
    store = await led_by_n1(drops=2)
    async with running_informer(store) as informer:
        election = Election(store, informer, "n2", StaticLiveness({"n1": LOST, "n2": UP}))
        await asyncio.wait_for(election._unseat_lost_leader(), REVOKE_ATTEMPT * 10)
    assert store.timeouts == [("revoke", REVOKE_ATTEMPT)] * 3
    assert await store.get(keys.LEADER) is None


async def test_a_leader_that_is_not_lost_is_left_alone() -> None:
    store = await led_by_n1(drops=0)
    async with running_informer(store) as informer:
        election = Election(store, informer, "n2", StaticLiveness({"n1": UP, "n2": UP}))
        await election._unseat_lost_leader()
    assert store.timeouts == []
    assert await store.get(keys.LEADER) is not None


async def test_a_dropped_placement_write_is_retried_within_a_fraction_of_a_second() -> None:
    store = DroppingStore(drops=1)
    await apply_objects(store, decode_documents(parse_text(SPEC, "spec.yaml")), cluster="lab")
    view = StaticLiveness({"n1": UP, "n2": UP, "n3": UP})
    async with running_informer(store) as informer:
        leader = asyncio.create_task(Leader(store, informer, "n3", view).run())
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            while await store.get(keys.placement_key("web")) is None:
                assert loop.time() - started < 1.0, "the placement was not retried promptly"
                await asyncio.sleep(0.01)
        finally:
            leader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leader
    assert store.timeouts[:2] == [("placement", WRITE_ATTEMPT)] * 2


class ConflictingStore(MemoryStore):
    """Every placement write conflicts, as when this node's copy of the store lags."""

    def __init__(self) -> None:
        super().__init__("lab")
        self.attempts = 0

    async def commit(self, ops: Sequence[Op], timeout: float | None = None) -> int:
        placement = [op for op in ops if op.key.startswith(keys.PLACEMENT)]
        if placement:
            self.attempts += 1
            raise ConflictError([Conflict(placement[0].key, 45, 58)])
        return await super().commit(ops, timeout)


@pytest.mark.timeout(20)  # a hot loop starves the event loop: only the timeout ends it
async def test_a_conflict_is_decided_again_after_a_back_off_never_in_a_hot_loop() -> None:
    store = ConflictingStore()
    await apply_objects(store, decode_documents(parse_text(SPEC, "spec.yaml")), cluster="lab")
    view = StaticLiveness({"n1": UP, "n2": UP, "n3": UP})
    async with running_informer(store) as informer:
        leader = asyncio.create_task(Leader(store, informer, "n3", view).run())
        try:
            await asyncio.sleep(1.5)
        finally:
            leader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leader
    # 0.1 + 0.2 + 0.4 + 0.8 s of back-off: a handful of attempts, not hundreds a second.
    assert 2 <= store.attempts <= 6, store.attempts


class LateAnsweringStore(MemoryStore):
    """The first `drops` leader claims time out; with `applied`, after being applied."""

    def __init__(self, drops: int, *, applied: bool) -> None:
        super().__init__("lab")
        self.drops = drops
        self.applied = applied
        self.claims: list[float | None] = []
        self.grants: list[float | None] = []
        self.revoked: list[int] = []

    async def grant_lease(self, ttl_seconds: int, timeout: float | None = None) -> Lease:
        self.grants.append(timeout)
        return await super().grant_lease(ttl_seconds, timeout)

    async def revoke_lease(self, lease_id: int, timeout: float | None = None) -> None:
        self.revoked.append(lease_id)
        await super().revoke_lease(lease_id, timeout)

    async def commit(self, ops: Sequence[Op], timeout: float | None = None) -> int:
        if not any(op.key == keys.LEADER for op in ops):
            return await super().commit(ops, timeout)
        self.claims.append(timeout)
        if self.drops > 0:
            self.drops -= 1
            if self.applied:
                await super().commit(ops, timeout)
            raise StoreUnavailableError(["memory"], f"no answer within {timeout}s")
        return await super().commit(ops, timeout)


async def holder(store: MemoryStore) -> LeaderRecord | None:
    kv = await store.get(keys.LEADER)
    return LeaderRecord.from_dict(kv.value) if kv else None


@pytest.mark.parametrize("applied", [False, True], ids=["lost-request", "lost-answer"])
async def test_a_claim_left_unanswered_is_retried_and_a_claim_that_landed_is_kept(
    applied: bool,
) -> None:
    store = LateAnsweringStore(drops=1, applied=applied)
    async with running_informer(store) as informer:
        election = Election(store, informer, "n2", StaticLiveness({"n2": UP}))
        claimed = await asyncio.wait_for(election._claim(), CAMPAIGN_ATTEMPT * 4)
    assert claimed is not None
    lease, term = claimed
    # Waiting for our own key to expire instead would stall the failover for its TTL.
    record = await holder(store)
    assert record is not None and (record.node, record.lease) == ("n2", lease.id)
    kv = await store.get(keys.LEADER)
    assert kv is not None and term == kv.mod_revision  # the term LeaderElected names
    assert store.revoked == []
    assert store.grants == [CAMPAIGN_ATTEMPT]
    assert store.claims == [CAMPAIGN_ATTEMPT] * 2  # the second meets our own key, or lands


async def test_a_claim_that_meets_another_leader_gives_its_lease_back() -> None:
    store = LateAnsweringStore(drops=0, applied=False)
    other = await store.grant_lease(10)
    await store.put(keys.LEADER, {"node": "n1", "lease": other.id}, lease=other.id)
    async with running_informer(store) as informer:
        election = Election(store, informer, "n2", StaticLiveness({"n2": UP}))
        assert await election._claim() is None
    record = await holder(store)
    assert record is not None and record.node == "n1"
    assert len(store.revoked) == 1 and store.revoked[0] != other.id


async def test_a_node_phase_overwritten_by_a_replaced_leader_is_published_again() -> None:
    """A leader that has not noticed yet that it was replaced can still write its view of a
    node; the current leader compares with the stored phase and writes its own again (a
    chaos run left a healthy node NotReady for a minute when it compared with its memory)."""
    store = MemoryStore("lab")
    await apply_objects(store, decode_documents(parse_text(SPEC, "spec.yaml")), cluster="lab")
    view = StaticLiveness({"n1": UP, "n2": UP, "n3": UP})
    key = keys.status_key("Node", "n2")

    async def phase_becomes(want: str) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while (kv := await store.get(key)) is None or kv.value.get("phase") != want:
            assert loop.time() - started < 2.0, f"n2's phase never became {want}"
            await asyncio.sleep(0.01)

    async with running_informer(store) as informer:
        leader = asyncio.create_task(Leader(store, informer, "n3", view).run())
        try:
            await phase_becomes("Ready")
            kv = await store.get(key)
            assert kv is not None
            stale = {**kv.value, "phase": "NotReady"}  # the replaced leader's late write
            await store.put(key, stale, expect_revision=kv.mod_revision)
            await phase_becomes("Ready")
        finally:
            leader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leader
