"""MemoryStore semantics that need a controllable clock or outage, plus keys and LeaseKeeper.

Behaviour shared with etcd is checked against both in tests/integration/test_store_etcd.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from controller.store import keys
from controller.store.base import Check, Lease, Put, WatchEvent
from controller.store.errors import (
    CompactedError,
    Conflict,
    ConflictError,
    LeaseNotFoundError,
    StoreError,
    StoreUnavailableError,
    TxnTooLargeError,
)
from controller.store.lease_keeper import LeaseKeeper
from controller.store.memory import MemoryStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def take(events: AsyncIterator[WatchEvent], n: int) -> list[WatchEvent]:
    out: list[WatchEvent] = []

    async def run() -> None:
        async for ev in events:
            out.append(ev)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), 2)
    return out


def test_key_layout() -> None:
    assert keys.cluster_prefix("prod") == "/vigil/prod/"
    assert keys.spec_key("ResourceGroup", "pg") == "specs/ResourceGroup/pg"
    assert keys.status_key("ResourceGroup", "pg") == "status/ResourceGroup/pg"
    assert keys.node_key("n1") == "nodes/n1"
    assert keys.placement_key("pg") == "placement/pg"
    assert keys.fencing_key("n1") == "fencing/n1"
    assert keys.event_prefix("ResourceGroup", "pg") == "events/ResourceGroup/pg/"
    assert keys.LEADER == "leader"
    for bad in ("a/b", ""):
        with pytest.raises(ValueError, match="name"):
            keys.spec_key("ResourceGroup", bad)
    with pytest.raises(ValueError, match="'/'"):
        keys.cluster_prefix("x/y")


async def test_revisions_start_at_one_and_count_writes(memory_store: MemoryStore) -> None:
    s = memory_store
    assert await s.revision() == 1
    assert await s.put("a", {}) == 2
    assert await s.commit([Put("b", {}), Put("c", {})]) == 3
    assert await s.commit([Check("a", expect_revision=2)]) == 3
    assert s.stats.puts == 1 and s.stats.txns == 2


async def test_values_are_copies(memory_store: MemoryStore) -> None:
    value = {"list": [1]}
    await memory_store.put("a", value)
    value["list"].append(2)
    kv = await memory_store.get("a")
    assert kv is not None and kv.value == {"list": [1]}
    kv.value["list"].append(3)
    again = await memory_store.get("a")
    assert again is not None and again.value == {"list": [1]}


async def test_non_object_value_is_reported(memory_store: MemoryStore) -> None:
    await memory_store.put("a", {})
    memory_store._kv["a"].raw = b'"just a string"'
    with pytest.raises(StoreError, match=r"'a'.*expected an object"):
        await memory_store.get("a")


async def test_lease_expiry_by_clock() -> None:
    clock = FakeClock()
    s = MemoryStore("c", clock=clock)
    lease = await s.grant_lease(3)
    await s.put("nodes/b", {}, lease=lease.id)
    await s.put("nodes/a", {}, lease=lease.id)
    await s.put("nodes/keep", {})
    rev = await s.revision()
    events = s.watch("nodes/", rev + 1)
    clock.now += 2.9
    assert await lease.refresh() == 3  # renewed: expires at +5.9 now
    clock.now += 2.9
    assert await s.get("nodes/a") is not None
    clock.now += 0.2
    s.tick()
    got = await take(events, 2)
    assert [(e.type, e.key, e.mod_revision) for e in got] == [
        ("DELETE", "nodes/a", rev + 1),
        ("DELETE", "nodes/b", rev + 1),
    ]
    assert await s.revision() == rev + 1
    assert await s.get("nodes/keep") is not None
    with pytest.raises(LeaseNotFoundError):
        await lease.refresh()


async def test_minimum_lease_ttl() -> None:
    s = MemoryStore("c", min_lease_ttl=2)
    assert (await s.grant_lease(1)).ttl == 2
    with pytest.raises(ValueError, match="TTL"):
        await s.grant_lease(0)


async def test_put_without_lease_detaches_it() -> None:
    clock = FakeClock()
    s = MemoryStore("c", clock=clock)
    lease = await s.grant_lease(1)
    await s.put("k", {"v": 1}, lease=lease.id)
    await s.put("k", {"v": 2})
    clock.now += 5
    s.tick()
    kv = await s.get("k")
    assert kv is not None and kv.lease == 0 and kv.value == {"v": 2}


async def test_watch_from_now_and_compaction_of_live_watch(memory_store: MemoryStore) -> None:
    s = memory_store
    events = s.watch("", 0)
    task = asyncio.ensure_future(take(events, 1))
    await asyncio.sleep(0.05)  # "from now" = from the generator's first step
    await s.put("a", {"v": 1})
    (ev,) = await task
    assert ev.key == "a"
    r = await s.put("a", {"v": 2})
    await s.compact(r)
    got = await take(events, 1)  # events at or after the compaction revision survive
    assert got[0].mod_revision == r
    with pytest.raises(CompactedError):
        await take(s.watch("", r - 1), 1)
    with pytest.raises(ValueError, match="has not reached"):
        await s.compact(r + 10)


async def test_simulated_outage(memory_store: MemoryStore) -> None:
    memory_store.set_available(False)
    with pytest.raises(StoreUnavailableError, match="simulated outage"):
        await memory_store.get("a")
    memory_store.set_available(True)
    assert await memory_store.get("a") is None


async def test_limits_are_configurable() -> None:
    s = MemoryStore("c", max_txn_ops=3)
    await s.commit([Put(f"k{i}", {}) for i in range(3)])
    with pytest.raises(TxnTooLargeError, match="4 operations"):
        await s.commit([Put(f"k{i}", {}) for i in range(4)])


async def test_bad_ops_are_refused(memory_store: MemoryStore) -> None:
    with pytest.raises(ValueError, match="expect_revision"):
        await memory_store.put("a", {}, expect_revision=-1)
    with pytest.raises(ValueError, match="needs an expect_revision"):
        await memory_store.commit([Check("a", expect_revision=None)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        await memory_store.put("", {})
    with pytest.raises(TypeError, match="Put/Delete/Check"):
        await memory_store.commit(["a"])  # type: ignore[list-item]


async def test_conflict_error_message() -> None:
    err = ConflictError([Conflict("a", 0, 5), Conflict("b", 3, None), Conflict("c", 3, 4)])
    text = str(err)
    assert "a: expected absent, but it exists at revision 5" in text
    assert "b: expected revision 3, but it does not exist" in text
    assert "c: expected revision 3, found revision 4" in text


class ScriptedLease(Lease):
    """A lease whose refresh results are scripted, to test the keeper's decisions."""

    def __init__(self, results: list[int | Exception], ttl: int = 1) -> None:
        self.id = 0xABC
        self.ttl = ttl
        self.results = results
        self.calls = 0
        self.timeouts: list[float | None] = []

    async def refresh(self, timeout: float | None = None) -> int:
        self.calls += 1
        self.timeouts.append(timeout)
        r = self.results.pop(0) if self.results else self.ttl
        if isinstance(r, Exception):
            raise r
        return r

    async def revoke(self) -> None:
        self.results = [LeaseNotFoundError(self.id)] * 100


async def test_lease_keeper_rides_out_a_short_outage() -> None:
    outage = StoreUnavailableError(["x"], "down")
    lease = ScriptedLease([1, outage, outage, 1, 1], ttl=1)
    lost: list[str] = []
    async with LeaseKeeper(lease, 0.1, lost.append) as keeper:
        await asyncio.sleep(0.75)
    assert not lost and keeper.refreshes >= 3 and lease.calls >= 5


async def test_lease_keeper_reports_loss_after_ttl_without_renewal() -> None:
    outage = StoreUnavailableError(["x"], "down")
    lease = ScriptedLease([outage] * 1000, ttl=1)
    reasons: list[str] = []

    async def on_lost(reason: str) -> None:
        reasons.append(reason)

    keeper = LeaseKeeper(lease, 0.1, on_lost)
    keeper.start()
    await asyncio.wait_for(keeper.lost.wait(), 3)
    await keeper.stop()
    assert len(reasons) == 1 and "before its TTL ran out" in reasons[0]


async def test_lease_keeper_with_memory_store_revoked_lease() -> None:
    s = MemoryStore("c")
    lease = await s.grant_lease(5)
    keeper = LeaseKeeper(lease, 0.02)
    keeper.start()
    await asyncio.sleep(0.1)
    assert keeper.refreshes >= 2
    await lease.revoke()
    await asyncio.wait_for(keeper.lost.wait(), 1)
    assert keeper.lost_reason is not None and "revoked" in keeper.lost_reason
    await keeper.stop()


class HangingLease(ScriptedLease):
    """Its first renewal is never answered (sent to an etcd leader that just died)."""

    async def refresh(self, timeout: float | None = None) -> int:
        if self.calls == 0:
            self.calls += 1
            self.timeouts.append(timeout)
            await asyncio.sleep(3600 if timeout is None else timeout)
            raise StoreUnavailableError(["x"], f"no answer within {timeout}s")
        return await super().refresh(timeout)


async def test_a_renewal_left_unanswered_is_retried_before_the_lease_ends() -> None:
    lease = HangingLease([], ttl=1)
    lost: list[str] = []
    async with LeaseKeeper(lease, 0.25, lost.append) as keeper:
        await asyncio.sleep(1.5)
    assert not lost and keeper.refreshes >= 2
    # No attempt may outlast an interval, nor the lease's end.
    assert all(t is not None and t <= 0.25 for t in lease.timeouts), lease.timeouts
