"""nodes/<node> comes back at once when it is lost: deleted, or its lease gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from controller.store import keys
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.records import NodeRecord
from nodeagent.registration import Registration
from tests.unit.tasks import cancel_all

RECORD = NodeRecord("n1", 42, "v", "0001", "t", True)


@dataclass
class Running:
    store: MemoryStore
    registration: Registration


@contextlib.asynccontextmanager
async def registering(store: MemoryStore) -> AsyncIterator[Running]:
    """n1's registration and an informer running over `store`."""
    informer = Informer(store)
    registration = Registration(store, informer, "n1", lambda: RECORD, asyncio.Event())
    tasks = [asyncio.create_task(informer.run()), asyncio.create_task(registration.run())]
    try:
        yield Running(store, registration)
    finally:
        await cancel_all(tasks)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    async with registering(MemoryStore("reg")) as running:
        yield running


async def registered(store: MemoryStore, within: float = 3.0) -> NodeRecord:
    for _ in range(int(within / 0.02)):
        kv = await store.get(keys.node_key("n1"))
        if kv is not None:
            return NodeRecord.from_dict(kv.value)
        await asyncio.sleep(0.02)
    raise AssertionError("nodes/n1 was not written")


async def test_a_deleted_registration_is_written_again(running: Running) -> None:
    assert await registered(running.store) == RECORD
    await asyncio.sleep(0.6)  # the informer has seen it
    await running.store.delete(keys.node_key("n1"))
    assert await registered(running.store, within=2.0) == RECORD


async def test_a_registration_whose_lease_is_revoked_gets_a_new_lease(running: Running) -> None:
    await registered(running.store)
    await asyncio.sleep(0.6)
    kv = await running.store.get(keys.node_key("n1"))
    assert kv is not None and kv.lease
    await running.store.revoke_lease(kv.lease)
    assert await registered(running.store, within=2.0) == RECORD
    again = await running.store.get(keys.node_key("n1"))
    assert again is not None and again.lease != kv.lease and running.registration.leases == 2


class VanishingStore(MemoryStore):
    """The first write of the registration lands and is gone at once, before the informer
    can show it (a put on a lease etcd expired meanwhile; a copy that missed both)."""

    def __init__(self) -> None:
        super().__init__("reg")
        self.vanished = False

    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        expect_revision: int | None = None,
        lease: int | None = None,
    ) -> int:
        revision = await super().put(key, value, expect_revision=expect_revision, lease=lease)
        if key == keys.node_key("n1") and not self.vanished:
            self.vanished = True
            await self.delete(key)
        return revision


async def test_a_registration_gone_before_the_informer_saw_it_is_written_again() -> None:
    store = VanishingStore()
    async with registering(store):
        assert await registered(store, within=5.0) == RECORD
        assert store.vanished
