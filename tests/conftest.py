from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from controller.store.etcd import EtcdStore
from controller.store.memory import MemoryStore
from tests.etcd_server import EtcdServer


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One real etcd for the whole test session; tests isolate by cluster name."""
    server = EtcdServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def store(etcd_server: EtcdServer) -> AsyncIterator[EtcdStore]:
    s = EtcdStore([etcd_server.endpoint], f"t-{uuid.uuid4().hex[:12]}", timeout=5.0)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def memory_store() -> AsyncIterator[MemoryStore]:
    s = MemoryStore(f"t-{uuid.uuid4().hex[:12]}")
    try:
        yield s
    finally:
        await s.close()
