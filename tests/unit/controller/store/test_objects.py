"""ObjectStore's event writes: one shared lease, granted again when it is gone."""

from __future__ import annotations

from controller.store import keys
from controller.store.base import Put
from controller.store.memory import MemoryStore
from controller.store.objects import ObjectStore, make_event


async def test_events_share_one_lease_across_commits() -> None:
    store = MemoryStore("c")
    objects = ObjectStore(store)
    for n in range(3):
        put = Put(f"{keys.PLACEMENT}web", {"n": n})
        await objects.commit_with_events([put], [make_event("ResourceGroup", "web", "Placed", "")])
    # One grant for three writes: a grant is a round trip on the failover's critical path.
    assert store.stats.lease_ops == 1
    assert [e.reason for e in await objects.events("ResourceGroup", "web")] == ["Placed"] * 3
    assert (await store.get(f"{keys.PLACEMENT}web")) is not None


async def test_an_event_lease_revoked_under_the_store_is_granted_again() -> None:
    store = MemoryStore("c")
    objects = ObjectStore(store)
    await objects.commit_with_events([], [make_event("ResourceGroup", "web", "Placed", "")])
    first = objects._event_lease
    assert first is not None
    await store.revoke_lease(first[0])  # what etcd does when the lease expires
    assert await objects.events() == []
    await objects.commit_with_events(
        [Put(f"{keys.PLACEMENT}web", {"n": 1})],
        [make_event("ResourceGroup", "web", "Stopping", "")],
    )
    assert [e.reason for e in await objects.events()] == ["Stopping"]
    assert objects._event_lease is not None and objects._event_lease[0] != first[0]
    assert (await store.get(f"{keys.PLACEMENT}web")) is not None


async def test_a_commit_without_events_grants_no_lease() -> None:
    store = MemoryStore("c")
    await ObjectStore(store).commit_with_events([Put(f"{keys.PLACEMENT}web", {"n": 1})], [])
    assert store.stats.lease_ops == 0
