"""Diskless operation after ``on-io-error detach`` (DRBD semantics), connection side.

Detached node (its backing disk failed): announces ``{"disk": "Diskless"}`` in STATE,
reads with READ_REQ/READ_REPLY from the peer and sends writes only to the peer.

Its peer (DRBD 8.4 ``after_state_ch``, "Lost contact to peer's copy of the data"): when a
Primary peer's disk goes Diskless while our bitmap UUID is 0 and our disk is UpToDate we
start a new data generation, and (``receive_Data``: ``pdsk < D_INCONSISTENT`` →
``drbd_set_out_of_sync``) every write received from then on is marked in our bitmap,
behind the activity log like a local write. When the failed node comes back its UUIDs
(or its Inconsistent flag) make it SyncTarget, and our bitmap says what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from blockrepl import generation as gen_ops
from blockrepl.generation import MdFlag
from blockrepl.replication import wire
from blockrepl.replication.wire import MsgType

if TYPE_CHECKING:
    from blockrepl.replication.node import ReplicaNode
    from blockrepl.replication.peer import Connection

log = logging.getLogger(__name__)
DISK_STATES = ("UpToDate", "Diskless")


# ---------------------------------------------------------------- detached side
def announce(node: ReplicaNode) -> None:
    """Tell the peer our disk is gone (STATE keeps the role field it always had)."""
    conn = node.conn
    if conn is None or conn.failure is not None:
        return
    role = "primary" if node.is_primary else "secondary"
    with contextlib.suppress(ConnectionError):
        conn.link.send(MsgType.STATE, json.dumps({"role": role, "disk": "Diskless"}).encode())


def peer_usable(node: ReplicaNode) -> Connection | None:
    """The connection that can serve a Diskless node's I/O: up, peer disk UpToDate, no
    resync running (during a resync the peer's disk is not UpToDate everywhere)."""
    conn = node.conn
    if conn is None or conn.failure is not None or node.sync_state is not None:
        return None
    if conn.peer_disk != "UpToDate":
        return None
    return conn


async def read_via_peer(conn: Connection, offset: int, length: int) -> bytes:
    conn.read_seq += 1
    req_id = conn.read_seq
    fut: asyncio.Future[bytes] = conn.loop.create_future()
    conn.reads[req_id] = fut
    try:
        conn.link.send(MsgType.READ_REQ, wire.encode_read_req(req_id, offset, length))
        return await fut
    finally:
        conn.reads.pop(req_id, None)


def on_read_reply(conn: Connection, payload: bytes) -> None:
    req_id, err, data = wire.decode_read_reply(payload)
    fut = conn.reads.pop(req_id, None)
    if fut is None or fut.done():
        return  # the reader gave up (connection closing): nothing waits any more
    if err:
        fut.set_exception(OSError(err, f"peer could not read the block: errno {err}"))
    else:
        fut.set_result(bytes(data))


# ---------------------------------------------------------------- peer side
async def serve_read(conn: Connection, req_id: int, offset: int, length: int) -> None:
    disk = conn.node.disk
    try:
        if disk.detached:
            raise OSError(errno.EIO, "this replica is Diskless too")
        data = await disk.read_local(offset, length)
        head = wire.read_reply_head(req_id, 0)
    except OSError as exc:
        log.error("READ_REQ [%d, +%d] from the peer failed: %s", offset, length, exc)
        head, data = wire.read_reply_head(req_id, exc.errno or errno.EIO), b""
    conn.link.send_parts(MsgType.READ_REPLY, head, data)  # the data is not copied


def on_peer_state(conn: Connection, state: dict[str, Any]) -> None:
    if "disk" not in state:
        return  # a role change only; the disk state stays what was announced last
    disk = state["disk"]
    if disk not in DISK_STATES:
        raise wire.BadPayload(f"STATE disk {disk!r} is not one of {DISK_STATES}")
    if disk == conn.peer_disk:
        return
    conn.peer_disk = disk
    if disk == "Diskless":
        log.warning("peer detached its disk: this node holds the only copy now")
        conn.spawn(new_generation_for_diskless_peer(conn.node, conn))


async def new_generation_for_diskless_peer(node: ReplicaNode, conn: Connection) -> None:
    store = node.store
    if not conn.peer_primary or store.generation.bitmap != 0 or node.disk.detached:
        return
    if not store.sb.has(MdFlag.CONSISTENT) or not store.sb.has(MdFlag.WAS_UP_TO_DATE):
        return
    sb = replace(store.sb, generation=gen_ops.new_current(store.generation, node.is_primary))
    await node.disk.run_blocking(store.write_superblock, sb)


async def track_for_peer(node: ReplicaNode, offset: int, length: int) -> None:
    """Mark a write from a Diskless Primary: its extent goes into our AL first, so the
    mark survives a crash (AL replay), like a write of our own."""
    async with node.disk.gate.writing(offset, length):
        node.store.bitmap.set_range(offset, length)


NO_RECONNECT = (
    "this replica detached its failed disk (Diskless); restart it on a repaired or "
    "replaced device to reconnect and resync"
)


def error_status(node: ReplicaNode) -> dict[str, Any] | None:
    """The ``disk_error`` field of status: None while the disk never failed."""
    disk = node.disk
    if disk.failure is None or disk.last_failure is None:
        return None
    if disk.detached:
        serving = (
            "through the peer (Diskless)"
            if peer_usable(node) is not None
            else "nowhere: no connected UpToDate peer, application I/O gets EIO"
        )
    else:
        serving = "locally; requests touching failed blocks get EIO (pass_on)"
    return {
        "policy": disk.on_io_error.value,
        "detached": disk.detached,
        "errors": disk.io_errors,
        "first": disk.failure.describe(),
        "last": disk.last_failure.describe(),
        "failed_bytes": disk.failed.count() * 4096,
        "metadata": disk.metadata_note,
        "serving": serving,
    }
