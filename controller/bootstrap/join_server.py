"""The join endpoint: lets a new node into the cluster, given a valid join token.

Served over TLS with this node's etcd server certificate, by the agent of a node that
holds the CA key. A joiner first asks for the CA certificate (and checks it against
the fingerprint in its token), then reconnects verifying the server with that CA and
sends its token, its node name, its ports and CSRs. The server checks the token and
that the node is in the Cluster spec, signs the CSRs (subject and SANs chosen here),
runs etcd ``member add`` and answers with the certificates and the initial cluster.
The admission is recorded (MemberJoined) in the background once the store has its
majority again: the new member, not started yet, counts in it (membership_events.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from controller.api.cluster import Cluster
from controller.bootstrap import pki
from controller.bootstrap.etcd_admin import SETTLE, EtcdAdmin, MemberInfo
from controller.bootstrap.membership_events import member_joined, record_patiently
from controller.bootstrap.node_config import NodeConfig, format_initial_cluster, url
from controller.bootstrap.protocol import (
    PROTOCOL_VERSION,
    JoinProtocolError,
    read_message,
    write_message,
)
from controller.bootstrap.rbac import ensure_agent
from controller.bootstrap.token import TokenError
from controller.bootstrap.token_store import verify_token
from controller.store.base import Store
from controller.store.errors import StoreError
from controller.store.objects import ObjectStore

log = logging.getLogger(__name__)


class JoinRefused(Exception):
    """The join request is not acceptable; the message goes back to the joiner."""


# Tells the joiner what the server waits for, and for how many seconds at most.
Progress = Callable[[str, float], Awaitable[None]]


async def _silent(message: str, within: float) -> None:
    return None


def server_context(paths: pki.PKIPaths) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths.server_cert, paths.server_key)
    return ctx


def _field(req: dict[str, Any], name: str, kind: type) -> Any:
    value = req.get(name)
    if not isinstance(value, kind):
        raise JoinRefused(f"join request field {name!r} is missing or not a {kind.__name__}")
    return value


def _port(req: dict[str, Any], name: str) -> int:
    value = req.get(name)
    if not isinstance(value, int) or not 0 < value < 65536:
        raise JoinRefused(f"join request field {name!r} must be a TCP port, got {value!r}")
    return value


def member_names(members: list[MemberInfo], new_id: int, new_name: str) -> dict[str, str]:
    """initial-cluster entries; members that never started have no name yet, so invent one."""
    out: dict[str, str] = {}
    for m in members:
        name = new_name if m.id == new_id else (m.name or f"pending-{m.id:x}")
        out[name] = m.peer_urls[0]
    return out


class JoinServer:
    def __init__(self, node: NodeConfig, store: Store, admin: EtcdAdmin) -> None:
        self.node = node
        self.store = store
        self.admin = admin
        self.ca = pki.load_ca(node.pki)
        self._server: asyncio.Server | None = None
        self._lock = asyncio.Lock()  # one member add at a time: each changes the quorum
        self.joins = 0
        self._records: set[asyncio.Task[bool]] = set()

    async def _agent_identity(self, node: str) -> bool:
        """With RBAC set up, make the joining node's agent an etcd root user."""
        if not isinstance(self.admin, EtcdAdmin):  # a test's stand-in for etcd
            return False
        admin = self.admin
        return await ensure_agent(admin.endpoints, admin.tls, node, admin.timeout)

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 = any free port); returns the port."""
        self._server = await asyncio.start_server(
            self._handle, host, port, ssl=server_context(self.node.pki)
        )
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("join endpoint listening on %s:%d", host, bound)
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._records):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(30):
                req = await read_message(reader)

                async def say(message: str, within: float) -> None:
                    await write_message(writer, {"progress": message, "within": within})

                try:
                    answer = await self.process(req, say)
                except (JoinRefused, TokenError, pki.PKIError) as e:
                    log.warning("join from %s refused: %s", peer, e)
                    answer = {"ok": False, "error": str(e)}
                except StoreError as e:
                    log.warning("join from %s failed: %s", peer, e)
                    answer = {"ok": False, "error": f"the cluster's store failed: {e}"}
                await write_message(writer, answer)
        except (JoinProtocolError, OSError, TimeoutError, ssl.SSLError) as e:
            log.info("join connection from %s dropped: %s", peer, e)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def process(self, req: dict[str, Any], say: Progress = _silent) -> dict[str, Any]:
        op = req.get("op")
        if op == "ca":
            return {"ok": True, "ca": pki.cert_pem(self.ca.cert).decode()}
        if op != "join":
            raise JoinRefused(f"unknown request op {op!r}")
        if req.get("version") != PROTOCOL_VERSION:
            raise JoinRefused(
                f"join protocol version {req.get('version')!r} is not {PROTOCOL_VERSION}: "
                "use the same Vigil version on every node"
            )
        # Before any store read: without quorum those wait out the store's timeout.
        self._refuse_without_quorum(await self.admin.members())
        token_id = _field(req, "token_id", str)
        await verify_token(self.store, token_id, _field(req, "secret", str))
        name = _field(req, "node", str)
        address = await self._spec_address(name)
        peer_url = url(address, _port(req, "peer_port"))
        client_url = url(address, _port(req, "client_port"))
        csrs = _field(req, "csrs", dict)
        keys = {
            what: pki.csr_public_key(str(csrs.get(what, "")).encode(), f"{what} CSR")
            for what in ("server", "client", "admin")
        }
        # Before the member exists: an agent etcd would refuse must not join.
        if await self._agent_identity(name):
            log.info("RBAC is set up: the agent of %s (node:%s) has etcd's root role", name, name)
        async with self._lock:
            member, members = await self._add_member(name, peer_url, say)
            self.joins += 1
        log.info("node %s joined as etcd member %x (%s)", name, member.id, peer_url)
        event = member_joined(name, member.id, peer_url, token_id, self.node.node)
        task = asyncio.create_task(record_patiently(self.store, event), name="member-joined")
        self._records.add(task)
        task.add_done_callback(self._records.discard)
        return {
            "ok": True,
            "cluster": self.node.cluster,
            "node": name,
            "address": address,
            "ca": pki.cert_pem(self.ca.cert).decode(),
            # The cluster key travels once, inside the TLS session pinned by the token.
            "heartbeat_key": pki.read_heartbeat_key(self.node.pki).decode(),
            "certs": {
                "server": pki.cert_pem(
                    pki.issue_node_server(self.ca, keys["server"], name, [address])
                ).decode(),
                "client": pki.cert_pem(
                    pki.issue_node_client(self.ca, keys["client"], name)
                ).decode(),
                "admin": pki.cert_pem(pki.issue_admin(self.ca, keys["admin"])).decode(),
            },
            "member_id": member.id,
            "peer_url": peer_url,
            "client_url": client_url,
            "initial_cluster": format_initial_cluster(member_names(members, member.id, name)),
            "initial_cluster_token": self.node.etcd.initial_cluster_token,
            "heartbeat_ms": self.node.etcd.heartbeat_ms,
            "election_ms": self.node.etcd.election_ms,
            "endpoints": sorted({u for m in members for u in m.client_urls} | {client_url}),
        }

    async def _spec_address(self, name: str) -> str:
        found, _ = await ObjectStore(self.store).list_objects([Cluster.KIND])
        if not found:
            raise JoinRefused(
                "the store holds no Cluster spec; apply one (`ha apply -f cluster.yaml`) "
                "listing the node first"
            )
        cluster = found[0].obj
        assert isinstance(cluster, Cluster)
        for n in cluster.spec.nodes:
            if n.name == name:
                return str(n.address)
        known = ", ".join(n.name for n in cluster.spec.nodes)
        raise JoinRefused(
            f"node {name!r} is not in Cluster {cluster.name!r} spec.nodes (known: {known}); "
            "add it to the Cluster spec with `ha apply` first"
        )

    @staticmethod
    def _refuse_without_quorum(members: list[MemberInfo]) -> None:
        started = [m for m in members if m.started]
        if len(started) > len(members) // 2:
            return
        waiting = ", ".join(u for m in members if not m.started for u in m.peer_urls)
        raise JoinRefused(
            f"the cluster's etcd has no quorum: {len(started)} of {len(members)} members "
            f"run, and the member at {waiting} was added by a join but never started. Start "
            "vigil-agent on that node, then join this one"
        )

    async def _add_member(
        self, name: str, peer_url: str, say: Progress
    ) -> tuple[MemberInfo, list[MemberInfo]]:
        members = await self.admin.members()
        for m in members:
            if m.name == name:
                raise JoinRefused(
                    f"node {name!r} is already an etcd member (id {m.id:x}); run "
                    f"`ha cluster leave` on it (or remove it) before joining it again"
                )
            if peer_url in m.peer_urls:
                if not m.started:
                    # An earlier join that never started its etcd: reuse that member.
                    return m, members
                raise JoinRefused(
                    f"peer URL {peer_url} already belongs to member {m.name!r} ({m.id:x})"
                )
        for m in members:
            if not m.started:
                # Each new member lowers the share of running ones: one join at a time.
                raise JoinRefused(
                    f"the member at {', '.join(m.peer_urls)} was added by an earlier join but "
                    "never started its etcd; start vigil-agent on that node first"
                )
        await say(
            f"adding {name} ({peer_url}) as an etcd member: etcd accepts one once every member "
            "has been connected for 5 s, so a join right after another waits up to that long",
            SETTLE + self.admin.timeout,
        )
        return await self.admin.add(peer_url)
