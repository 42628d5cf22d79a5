"""How a ReplicaNode uses its PeerOutdater (blockrepl/outdate.py): the hooks node.py calls.

* A Primary's writes are held (``gen_ready`` cleared) from the instant its replication
  connection fails until ``_lost_peer`` has started the new generation *and*, with
  ``--outdate-peer resource-only``, the outdater has answered for the peer. Writes that were in
  flight when the link died are held too: their peer acknowledgement never came, so
  acknowledging them before the peer is outdated would let the peer be promoted without them.
* Promotion asks the outdater (``may_promote``) and refuses with its reason; a refusal backed
  by a record marks the local metadata Outdated (WAS_UP_TO_DATE cleared), as does
  ``blockrepl outdate`` (what a fence-peer handler runs on the peer).
* A disconnected Secondary polls the outdater, so its status shows Outdated as soon as the
  record naming it exists, not only when someone tries to promote it.
* After a completed resync as SyncTarget the replica is UpToDate again and lifts its
  outdate record (``clear``): the resync already set WAS_UP_TO_DATE.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from blockrepl.errors import RoleError
from blockrepl.generation import MdFlag
from blockrepl.outdate import OutdateResult, now_iso

if TYPE_CHECKING:
    from blockrepl.replication.node import ReplicaNode
    from blockrepl.replication.peer import Connection

log = logging.getLogger(__name__)
LEARN_INTERVAL = 1.0


def replica_id(node: ReplicaNode) -> str:
    return node.cfg.node_name or socket.gethostname()


def active(node: ReplicaNode) -> bool:
    return node.outdater is not None and node.cfg.outdate_peer == "resource-only"


def spawn(node: ReplicaNode, coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coro)
    node.outdate_tasks.add(task)
    task.add_done_callback(node.outdate_tasks.discard)


async def hold_writes(node: ReplicaNode, conn: Connection) -> None:
    """Close the write gate the moment ``conn`` fails, before its pending writes resolve.

    Connection.fail() sets ``_closed``; this task wakes in the same loop iteration as
    Connection.run(), which resolves the pending writes' futures only afterwards.
    """
    await conn._closed.wait()
    if node.conn is conn and node.is_primary:
        node.gen_ready.clear()


async def outdate_peer(node: ReplicaNode) -> None:
    """Primary lost its peer: outdate it before further writes are acknowledged."""
    if not active(node) or not node.is_primary:
        return
    assert node.outdater is not None
    peer = node.cfg.peer_id
    gen = node.store.generation.current
    node.outdate_status = {"peer": peer, "result": "outdating", "since": now_iso()}
    result = await node.outdater.outdate_peer(node.cfg.volume, peer, gen)
    node.outdate_status = _describe(peer, gen, result)
    if result.peer_safe:
        log.info("outdated peer %s: %s", peer, result.detail)
    else:
        # resource-only: go on serving (DRBD does the same); status says the peer is not safe.
        log.warning("outdating peer %s: %s; writes continue (resource-only)", peer, result)


async def drop_lost_peer(node: ReplicaNode, within: float = 5.0) -> None:
    """Promotion after the cluster declared the peer lost: drop the link at once (it would
    time out anyway) and, with resource-only, outdate the peer before promoting."""
    conn = node.conn
    if conn is not None:
        conn.fail(ConnectionError("the cluster declared the peer lost"))
        # The session's cleanup clears node.conn; nothing else signals it, and this runs
        # once per failover.
        async with asyncio.timeout(within):
            while node.conn is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    if not active(node):
        return
    assert node.outdater is not None
    peer = node.cfg.peer_id
    gen = node.store.generation.current
    result = await node.outdater.outdate_peer(node.cfg.volume, peer, gen)
    node.outdate_status = _describe(peer, gen, result)
    if not result.peer_safe:
        raise RoleError(f"cannot promote: outdating the lost peer {peer!r} failed: {result}")


def _describe(peer: str, gen: int, result: OutdateResult) -> dict[str, Any]:
    return {
        "peer": peer,
        "result": result.code.name.lower().replace("_", "-"),
        "exit_code": int(result.code),
        "peer_outdated": result.peer_safe,
        "generation": f"{gen:016X}",
        "detail": result.detail,
        "at": now_iso(),
    }


def lost_peer(node: ReplicaNode) -> None:
    """Called by _lost_peer: a Secondary starts watching for a record naming it."""
    if active(node) and not node.is_primary:
        spawn(node, _learn_outdated(node))


async def _learn_outdated(node: ReplicaNode) -> None:
    assert node.outdater is not None
    while node.conn is None and not node._stopping and not node.is_primary:
        seen = node.store.generation
        verdict = await node.outdater.may_promote(node.cfg.volume, replica_id(node), seen)
        if verdict is not None and verdict.outdated:
            # Not if a resync ran meanwhile: the verdict describes the data seen before it.
            if node.conn is None and node.store.generation == seen:
                await mark_outdated(node, verdict.reason)
            return
        await asyncio.sleep(LEARN_INTERVAL)


async def mark_outdated(node: ReplicaNode, why: str) -> None:
    """Clear WAS_UP_TO_DATE: disk_state() says Outdated until a resync sets it again."""
    sb = node.store.sb
    if sb.has(MdFlag.CONSISTENT) and sb.has(MdFlag.WAS_UP_TO_DATE):
        log.warning("disk is Outdated: %s", why)
        await node.disk.run_blocking(
            node.store.write_superblock, sb.with_flags(clear=MdFlag.WAS_UP_TO_DATE)
        )


async def outdate_self(node: ReplicaNode) -> None:
    """`blockrepl outdate` (DRBD's `drbdadm outdate`), run by a fence-peer handler."""
    if node.is_primary:
        raise RoleError("this replica is Primary: a Primary cannot be outdated (exit code 6)")
    if node.conn is not None:
        raise RoleError(
            "this replica is connected to its peer and gets every write; outdate applies "
            "only to a disconnected Secondary"
        )
    if not node.consistent:
        return  # Inconsistent is already worse than Outdated
    await mark_outdated(node, "outdated by request (blockrepl outdate)")


async def check_promote(node: ReplicaNode, force: bool) -> None:
    """Refuse to promote Outdated data unless forced; a forced promotion lifts its record."""
    me = replica_id(node)
    if force:
        if node.consistent and not node.store.sb.has(MdFlag.WAS_UP_TO_DATE):
            sb = node.store.sb.with_flags(set_=MdFlag.WAS_UP_TO_DATE)
            await node.disk.run_blocking(node.store.write_superblock, sb)
        if active(node):
            assert node.outdater is not None
            try:
                await node.outdater.clear(node.cfg.volume, me)
            except Exception as exc:  # the operator forced it: do not fail on the store
                log.warning("forced promotion: could not clear the outdate records: %s", exc)
        return
    if active(node):
        assert node.outdater is not None
        # The record first: it names who outdated whom, which the local flag cannot.
        verdict = await node.outdater.may_promote(node.cfg.volume, me, node.store.generation)
        if verdict is not None:
            if verdict.outdated:
                await mark_outdated(node, verdict.reason)
            raise RoleError(f"refusing to promote {me!r}: {verdict}")
    if node.consistent and not node.store.sb.has(MdFlag.WAS_UP_TO_DATE):
        raise RoleError(
            "disk is Outdated (its peer went on writing without it, or `blockrepl outdate` "
            "was run); reconnect it and let it resync, or promote with --force accepting "
            "that the newer writes are lost"
        )


def resynced(node: ReplicaNode) -> None:
    """A resync as SyncTarget completed: this replica is UpToDate, lift its record."""
    if active(node):
        spawn(node, _clear(node))


async def _clear(node: ReplicaNode) -> None:
    assert node.outdater is not None
    try:
        if await node.outdater.clear(node.cfg.volume, replica_id(node)):
            log.info("resync complete: outdate records of %s cleared", replica_id(node))
    except Exception as exc:  # may_promote drops a stale record later (generation check)
        log.warning("resync complete but the outdate records was not cleared: %s", exc)
