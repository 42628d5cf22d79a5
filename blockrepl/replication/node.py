"""A replica: role, connection management (listen/dial) and state changes (node_status.py
reports them).

Exactly one side dials: the node whose ``--listen-repl`` address sorts lower (or the only
one given ``--peer`` without ``--listen-repl``); the other accepts. The listener takes
connections only from the peer's addresses (``--peer`` HOST and ``--allow-peer``), closing
others at once, and a connection claims the node's single link only once it passed the
HMAC authentication, which must end within ``auth_timeout``: a stranger, or a stalled
attempt, cannot keep the replicas apart. A Primary that loses its
peer starts a new data generation (DRBD: B := C, C := new) before acknowledging further
writes, so on reconnect the UUIDs say which side changed and the bitmap says what.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from blockrepl import generation as gen_ops
from blockrepl.diskerror import OnIoError
from blockrepl.errors import BlockReplError, RoleError
from blockrepl.generation import MdFlag
from blockrepl.layout import BM_BYTES_PER_BIT
from blockrepl.metadata import MetadataStore
from blockrepl.replicated import ReplicatedBackend
from blockrepl.replication import accept, diskless, node_status, outdating, splitbrain, tls, wire
from blockrepl.replication.conflicts import Conflicts
from blockrepl.replication.handshake import (
    Identity,
    SyncAction,
    decide,
    decode_identity,
    incompatibility,
)
from blockrepl.replication.link import AuthError, PeerError, ReplicationLink
from blockrepl.replication.peer import Connection
from blockrepl.replication.syncrate import RateWindow
from blockrepl.replication.tls import ReplTLS
from blockrepl.replication.wire import MsgType

if TYPE_CHECKING:
    from blockrepl.outdate import PeerOutdater
    from blockrepl.replication.verify import VerifyRun

log = logging.getLogger(__name__)
# Above the largest frame: with asyncio's 64 KiB default a 1 MiB frame pauses and resumes
# the transport many times per frame.
STREAM_LIMIT = 2 * wire.MAX_PAYLOAD
# Unauthenticated connections from the peer's address served at once; more are closed.
# A real peer needs one; the cap bounds what a misbehaving process on the peer's host can
# make us hold, each for at most auth_timeout.
MAX_PENDING_AUTH = 16


@dataclass(frozen=True)
class ReplConfig:
    volume: str
    secret: bytes
    protocol: str = "C"
    listen: tuple[str, int] | None = None
    peer: tuple[str, int] | None = None
    ping_interval: float = 1.0
    timeout: float = 5.0
    resync_rate: int = 100 * 1024 * 1024
    csums: bool = False  # checksum resync: skip marked blocks already equal (csum_resync.py)
    csums_after_crash_only: bool = False  # ... only for the first resync after a crash
    retry: float = 0.5
    # after-sb-0pri/1pri/2pri (DRBD names; see blockrepl.replication.splitbrain_policy)
    after_sb: tuple[str, str, str] = ("disconnect", "disconnect", "disconnect")
    node_name: str = ""  # for discard-node-NAME; also the replica id in outdate records
    outdate_peer: str = "dont-care"  # or "resource-only" (blockrepl/outdate.py)
    peer_id: str = ""  # the peer's replica id, named in the outdate records
    on_io_error: OnIoError = OnIoError.DETACH  # backing-disk errors (blockrepl/diskerror.py)
    tls: ReplTLS | None = None  # mutual TLS on the link (blockrepl/replication/tls.py)
    # Hosts the listener accepts besides --peer's (--allow-peer; needed without --peer).
    allow_peers: tuple[str, ...] = ()
    # HELLO/AUTH exchange of an accepted connection: two round trips on the replication
    # network, so seconds are plenty; a stalled attempt only holds its own connection.
    auth_timeout: float = 2.0

    @property
    def peer_hosts(self) -> tuple[str, ...]:
        """Who may connect to --listen-repl."""
        own = (self.peer[0],) if self.peer is not None else ()
        return own + tuple(h for h in self.allow_peers if h not in own)


class Refused(BlockReplError):
    """The connection was refused for a reason that retrying will not fix by itself."""


class ReplicaNode:
    def __init__(
        self,
        store: MetadataStore,
        disk: ReplicatedBackend,
        cfg: ReplConfig,
        outdater: PeerOutdater | None = None,
    ) -> None:
        self.store = store
        self.disk = disk
        self.cfg = cfg
        disk.node = self
        self.is_primary = store.sb.has(MdFlag.PRIMARY_IND)
        self.conflicts = Conflicts()
        self.conn: Connection | None = None
        self.state = "StandAlone"
        self.last_error = ""
        self.gen_ready = asyncio.Event()
        self.gen_ready.set()
        self.sync_state: dict[str, Any] | None = None
        self.sync_rate: RateWindow | None = None  # speed of the running resync
        self.last_sync: dict[str, Any] | None = None
        self.verify: VerifyRun | None = None  # the online verify this node runs as source
        self.last_verify: dict[str, Any] | None = None
        self.totals = {"bytes_in": 0, "bytes_out": 0, "connections": 0}
        self._busy = False  # a connection is being set up or is up
        self._pending_auth = 0  # accepted connections not authenticated yet
        self._server: asyncio.Server | None = None
        self._dialer: asyncio.Task[None] | None = None
        self._stopping = False
        self.bound_port = 0
        self.resync_rate = cfg.resync_rate  # adjustable at run time (control socket)
        self.discard_mine = False  # `resolve --discard-mine`: be sync target next time
        self.in_use: Callable[[], int] = lambda: 0  # attached NBD clients (set by serve)
        self.demoting = False  # new NBD clients are turned away while a demote runs
        self.outdater = outdater
        self.outdate_status: dict[str, Any] | None = None  # the last outdating of the peer
        self.outdate_tasks: set[asyncio.Task[None]] = set()
        # (server, client) contexts; built here so bad --tls-* files fail at start
        self._tls_ctx = tls.contexts(cfg.tls) if cfg.tls is not None else None
        self.tls_status: dict[str, Any] | None = None  # the connected peer's TLS session

    # ------------------------------------------------------------------ lifecycle
    @property
    def busy(self) -> bool:
        """A replication link is being set up or is up."""
        return self._busy

    @property
    def tls_contexts(self) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
        """(server, client) TLS contexts of the link, if it uses TLS."""
        return self._tls_ctx

    @property
    def dials(self) -> bool:
        if self.cfg.peer is None:
            return False
        if self.cfg.listen is None:
            return True
        return self.cfg.listen < self.cfg.peer

    async def start(self) -> None:
        if self.cfg.listen is not None and not self.cfg.peer_hosts:
            raise Refused("--listen-repl needs --peer or --allow-peer: whom to accept")
        if self.cfg.listen is not None:
            host, port = self.cfg.listen
            self._server = await asyncio.start_server(
                self._on_accept, host, port, limit=STREAM_LIMIT
            )
            self.bound_port = int(self._server.sockets[0].getsockname()[1])
        if self.dials:
            self._dialer = asyncio.create_task(self._dial_loop())
        if self.cfg.peer is not None or self.cfg.listen is not None:
            self.state = "Connecting"

    async def stop(self) -> None:
        self._stopping = True
        if self._dialer is not None:
            self._dialer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dialer
        if self._server is not None:
            self._server.close()
        if self.conn is not None:
            self.conn.fail(ConnectionError("shutting down"))
            await self.conn.close()
        if self._server is not None:
            await self._server.wait_closed()

    def replicating(self) -> Connection | None:
        """The connection Primary writes are replicated on, if any."""
        conn = self.conn
        if conn is None or conn.failure is not None or not self.is_primary:
            return None
        return conn

    # ------------------------------------------------------------------ connecting
    async def _dial_loop(self) -> None:
        assert self.cfg.peer is not None
        host, port = self.cfg.peer
        while not self._stopping:
            # After a split brain stay StandAlone: a human must pick the data to discard.
            if not self._busy and self.state != "SplitBrain" and not self.disk.detached:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port, limit=STREAM_LIMIT, **self._dial_tls()),
                        self.cfg.timeout,
                    )
                except (OSError, TimeoutError) as exc:
                    why = tls.dial_error(exc, self.cfg.tls) if isinstance(exc, OSError) else None
                    if why is not None and why != self.last_error:
                        log.warning("replication link to %s:%s: %s", host, port, why)
                    self.last_error = why or self.last_error or f"connect {host}:{port}: {exc}"
                else:
                    await self._session(ReplicationLink(reader, writer), dialer=True)
            await asyncio.sleep(self.cfg.retry)

    def _dial_tls(self) -> dict[str, Any]:
        if self.cfg.tls is None or self._tls_ctx is None:
            return {}
        return {"ssl": self._tls_ctx[1], "server_hostname": self.cfg.tls.peer_name or ""}

    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = accept.address(writer.get_extra_info("peername"))
        if not await accept.is_peer(addr, self.cfg.peer_hosts):
            log.warning(
                "replication link: closed a connection from %s: not the peer (%s)",
                addr,
                ", ".join(self.cfg.peer_hosts),
            )
            writer.close()
            return
        if self._pending_auth >= MAX_PENDING_AUTH or self._stopping:
            log.warning(
                "replication link from %s: %d unauthenticated already", addr, MAX_PENDING_AUTH
            )
            writer.close()
            return
        self._pending_auth += 1
        try:
            link = await accept.authenticate(self, reader, writer)
        finally:
            self._pending_auth -= 1
        if link is None:
            return
        # Only an authenticated peer gets here; from the checks below to _session setting
        # _busy there is no await, so two links can never both be up.
        if self._busy or self._stopping:
            await link.refuse("this node already has a replication connection")
            return
        if self.state == "SplitBrain":
            await link.refuse(splitbrain.STANDALONE)
            return
        if self.disk.detached:
            await link.refuse(diskless.NO_RECONNECT)
            return
        await self._session(link, dialer=False)

    async def _session(self, link: ReplicationLink, dialer: bool) -> None:
        self._busy = True
        conn: Connection | None = None
        try:
            if self.cfg.tls is not None:
                self.tls_status = tls.session_info(link.writer, self.cfg.tls.peer_name)
            conn = await self._handshake(link, dialer)
            self.conn = conn
            outdating.spawn(self, outdating.hold_writes(self, conn))
            self.state = "Connected"
            self.last_error = ""
            self.discard_mine = False
            self.totals["connections"] += 1
            log.info("connected to %s: %s", link.peername, conn.decision)
            if conn.decision.action is SyncAction.NONE and self.store.sb.has(
                MdFlag.CRASHED_PRIMARY
            ):
                sb = self.store.sb.with_flags(clear=MdFlag.CRASHED_PRIMARY)
                await self.disk.run_blocking(self.store.write_superblock, sb)
            await conn.run()
        except (wire.FrameError, AuthError, PeerError, Refused, tls.TLSPeerError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, (wire.FrameError, tls.TLSPeerError)):
                await link.refuse(str(exc))
            why = tls.explain(exc, self.cfg.tls, link.authenticated)
            self.last_error = f"{why} ({self.last_error})" if why else self.last_error
            log.warning("replication link to %s: %s", link.peername, self.last_error)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            lost = f"connection lost: {exc or type(exc).__name__}"
            why = tls.explain(exc, self.cfg.tls, link.authenticated)
            self.last_error = f"{why} ({lost})" if why else lost
            log.warning("replication link to %s: %s", link.peername, self.last_error)
        finally:
            self.tls_status = None
            await link.close()
            self.totals["bytes_in"] += link.bytes_in
            self.totals["bytes_out"] += link.bytes_out
            if conn is not None:
                self.conn = None
                await self._lost_peer(conn)
            if self.state not in ("SplitBrain", "Refused"):
                self.state = "Connecting" if not self._stopping else "StandAlone"
            self._busy = False

    async def _handshake(self, link: ReplicationLink, dialer: bool) -> Connection:
        if not link.authenticated:  # an accepted link authenticated before it got here
            await link.authenticate(self.cfg.secret, dialer, self.cfg.timeout)
        me = self.identity()
        link.send(MsgType.HANDSHAKE, me.encode())
        async with asyncio.timeout(self.cfg.timeout):
            await link.drain()
            peer = decode_identity(await link.expect(MsgType.HANDSHAKE))
        why = incompatibility(me, peer)
        if why is not None:
            await link.refuse(why)
            raise Refused(why)
        decision = decide(me, peer, resolve_conflicts=not dialer)
        if decision.action is SyncAction.DISCONNECT:
            self.state = "SplitBrain" if decision.split_brain else "Refused"
            await link.refuse(decision.reason)
            raise Refused(f"{decision.reason} (UUID rule {decision.rule})")
        if decision.demote_self:
            await splitbrain.lose_primary(self, link, decision.reason)
        conn = Connection(self, link, peer, decision)
        if decision.demote_self:
            conn.link.send(MsgType.STATE, json.dumps({"role": "secondary"}).encode())
        return conn

    async def _lost_peer(self, conn: Connection) -> None:
        if self.sync_state is not None:
            self.sync_state["interrupted"] = True
            self.last_sync = self.sync_state
            self.sync_state = None
        if not self.disk.detached:  # Diskless: the failing device is not touched
            await self.disk.run_blocking(self.store.flush_bitmap)
        # Writes are held (gen_ready; outdating.hold_writes closed it when the link failed)
        # until the new generation is durable and, with --outdate-peer, the peer is outdated.
        if self.is_primary:
            self.gen_ready.clear()
        try:
            if self.is_primary and self.store.generation.bitmap == 0 and self.consistent:
                sb = replace(
                    self.store.sb, generation=gen_ops.new_current(self.store.generation, True)
                )
                await self.disk.run_blocking(self.store.write_superblock, sb)
            await outdating.outdate_peer(self)
        finally:
            self.gen_ready.set()
        outdating.lost_peer(self)

    # ------------------------------------------------------------------ state
    @property
    def consistent(self) -> bool:
        return self.store.sb.has(MdFlag.CONSISTENT)

    def identity(self) -> Identity:
        sb = self.store.sb
        return Identity(
            volume=self.cfg.volume,
            size=self.disk.size,
            block_size=BM_BYTES_PER_BIT,
            protocol=self.cfg.protocol,
            generation=sb.generation.as_tuple(),
            primary=self.is_primary,
            consistent=self.consistent,
            crashed_primary=sb.has(MdFlag.CRASHED_PRIMARY),
            dirty_bits=self.store.bitmap.count(),
            device_uuid=str(sb.device_uuid),
            after_sb=self.cfg.after_sb,
            node_name=self.cfg.node_name,
            discard_mine=self.discard_mine,
            ack_ranges=True,
        )

    def disk_state(self) -> str:
        """DRBD disk states: Outdated = consistent but known to miss newer data (the
        metadata's WAS_UP_TO_DATE cleared, e.g. by `blockrepl outdate`); Diskless after a detach."""
        if self.disk.detached:
            return "Diskless"
        syncing = self.sync_state is not None and self.sync_state["kind"] == "SyncTarget"
        if not self.consistent or syncing:
            return "Inconsistent"
        if not self.store.sb.has(MdFlag.WAS_UP_TO_DATE):
            return "Outdated"
        return "UpToDate"

    def sync_started(self, total: int, kind: str) -> None:
        self.state = kind
        self.sync_state = {"kind": kind, "total_bytes": total, "done_bytes": 0}
        self.sync_state["started"] = time.monotonic()
        self.sync_rate = RateWindow(self.sync_state["started"])

    def sync_progress(self, done: int) -> None:
        if self.sync_state is not None:
            self.sync_state["done_bytes"] = done
            if self.sync_rate is not None:
                self.sync_rate.add(time.monotonic(), done)

    def sync_finished(self, moved: int) -> None:
        st = self.sync_state or {}
        conn = self.conn
        self.last_sync = {
            "kind": st.get("kind"),
            "total_bytes": st.get("total_bytes"),
            "payload_bytes": moved,
            "wire_bytes_out": conn.link.bytes_out if conn else 0,
            "wire_bytes_in": conn.link.bytes_in if conn else 0,
            "seconds": round(time.monotonic() - st.get("started", time.monotonic()), 3),
        }
        self.sync_state = None
        self.state = "Connected"
        if st.get("kind") == "SyncTarget":
            outdating.resynced(self)

    def status(self) -> dict[str, Any]:
        return node_status.describe(self)

    # ------------------------------------------------------------------ roles
    async def promote(
        self, force: bool = False, peer_lost: bool = False, peer_wait: float = 0.0
    ) -> None:
        """`peer_lost`: the caller knows the peer is gone (the cluster fenced it, or its
        lease ended), so its link is dropped now instead of after --timeout, and with
        --outdate-peer resource-only the peer is outdated in the store before this replica
        becomes Primary: a peer still alive then finds the record naming it. `peer_wait`:
        seconds to wait for a peer still Primary to announce its demotion."""
        if self.is_primary:
            return
        if self.disk.detached:
            raise RoleError(diskless.NO_RECONNECT)
        if peer_lost:
            await outdating.drop_lost_peer(self)
        conn = self.conn
        if conn is not None and conn.peer_primary and peer_wait > 0:
            conn = await self._peer_demotion(conn, peer_wait)
        if conn is not None and conn.peer_primary:
            raise RoleError("the connected peer is Primary; demote it first (one Primary only)")
        if conn is not None and conn.target is not None:
            raise RoleError("this node is SyncTarget (Inconsistent) until the resync finishes")
        if not self.consistent and not force:
            raise RoleError("disk is Inconsistent; refusing to promote (use --force if new)")
        await outdating.check_promote(self, force)
        await self.disk.run_blocking(self.store.promote, conn is not None, force)
        self.is_primary = True
        self._announce()
        if force and conn is not None and not conn.peer.consistent and conn.source is None:
            # DRBD's `primary --force` on a new pair: the connected peer holds nothing yet.
            # A resync is decided when a connection starts, so start one that sends it all.
            conn.fail(ConnectionError("forced promotion: reconnecting to resync the peer"))

    async def _peer_demotion(self, conn: Connection, wait: float) -> Connection | None:
        """A peer's `demote` returns once it is Secondary, and its STATE saying so may
        still be on the wire: `demote` there then `promote` here must not fail on that."""
        if conn.peer_primary and conn.failure is None:
            conn.peer_secondary.clear()  # an earlier STATE "secondary" says nothing now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.peer_secondary.wait(), wait)
        return self.conn

    async def demote(self, wait: float = 0.0) -> None:
        """Become Secondary, refused while an NBD client is attached (DRBD: "Device is
        held open by someone"): its next write would fail. ``wait`` gives clients that
        were just stopped that long to be seen gone."""
        if not self.is_primary:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        clients = self.in_use()
        while clients and loop.time() < deadline:
            await asyncio.sleep(0.05)
            clients = self.in_use()
        if not self.is_primary:
            return
        if clients:
            raise RoleError(
                f"the device is held open: {clients} NBD client(s) attached to the export; "
                "detach them first (umount, then nbd-client -d or end the NBD client), "
                "then demote"
            )
        # From here on no client attaches (serve's refuse), so none can write to a
        # Secondary; set in the same step as the check above, with no await between.
        self.demoting = True
        try:
            await self.disk.flush()
            self.is_primary = False
            if not self.disk.detached:  # Diskless: the failing device is not touched
                await self.disk.run_blocking(self.store.demote)
        finally:
            self.demoting = False
        self._announce()

    def _announce(self) -> None:
        conn = self.conn
        if conn is not None and conn.failure is None:
            role = "primary" if self.is_primary else "secondary"
            with contextlib.suppress(ConnectionError):
                conn.link.send(MsgType.STATE, json.dumps({"role": role}).encode())
