"""A promotion asked for while the peer's demotion is still on the wire waits for it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from blockrepl.replication.node import ReplicaNode


def _conn(primary: bool) -> Any:
    return SimpleNamespace(peer_primary=primary, failure=None, peer_secondary=asyncio.Event())


async def _announce_later(conn: Any, after: float) -> None:
    await asyncio.sleep(after)
    conn.peer_primary = False  # what Connection._on_state does for STATE "secondary"
    conn.peer_secondary.set()


def test_a_demotion_announced_shortly_after_is_waited_for() -> None:
    async def run() -> bool:
        conn = _conn(True)
        conn.peer_secondary.set()  # left over from an earlier demotion: must not count
        node = SimpleNamespace(conn=conn)
        task = asyncio.create_task(_announce_later(conn, 0.1))
        got = await ReplicaNode._peer_demotion(node, conn, 1.0)  # type: ignore[arg-type]
        await task
        return got is conn and not conn.peer_primary

    assert asyncio.run(run())


def test_a_peer_that_stays_primary_is_still_refused_after_the_wait() -> None:
    async def run() -> bool:
        conn = _conn(True)
        node = SimpleNamespace(conn=conn)
        await ReplicaNode._peer_demotion(node, conn, 1.0)  # type: ignore[arg-type]
        return bool(conn.peer_primary)

    assert asyncio.run(run())  # promote() then refuses: one Primary only
