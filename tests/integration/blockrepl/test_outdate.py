"""Outdating the peer (DRBD's resource-level fencing) with two real replicas in two
namespaces.

Store variant: a real etcd (the session's ``etcd_server``), reached from inside the
namespaces through veths to the root namespace and a relay to its loopback port
(storelink.py). Handler variant: a shell fence-peer handler that outdates the peer through
its control socket and exits 4, as a crm-fence-peer-style script would.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from controller.store.etcd import EtcdStore
from controller.store.keys import volume_outdate_key
from tests.etcd_server import EtcdServer

from .nbdclient import NbdClient
from .replicas import NetPair, Replica, net_pair, synced, wait_for
from .storelink import StoreLinks, store_links

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]
VOLUME = "pgdata"
BLOCK = 4096


class Writer(threading.Thread):
    """One NBD write to the Primary; records when (and whether) it was acknowledged."""

    def __init__(self, sock: str, offset: int, data: bytes) -> None:
        super().__init__(daemon=True)
        self.sock, self.offset, self.data = sock, offset, data
        self.acked_at: float | None = None  # wall clock, comparable with `date +%s.%N`
        self.error: BaseException | None = None

    def run(self) -> None:
        async def go() -> None:
            client = await NbdClient.connect(unix=self.sock)
            try:
                await client.write(self.offset, self.data)
            finally:
                await client.close()

        try:
            asyncio.run(go())
            self.acked_at = time.time()
        except BaseException as exc:
            self.error = exc


def read_block(sock: str, offset: int) -> bytes:
    async def go() -> bytes:
        client = await NbdClient.connect(unix=sock)
        try:
            return await client.read(offset, BLOCK)
        finally:
            await client.close()

    return asyncio.run(go())


def outdate_record(endpoint: str, cluster: str) -> dict[str, Any] | None:
    async def go() -> dict[str, Any] | None:
        async with EtcdStore([endpoint], cluster, timeout=5.0) as store:
            kv = await store.get(volume_outdate_key(VOLUME))
            return None if kv is None else kv.value

    return asyncio.run(go())


def outdating_of(r: Replica) -> dict[str, Any]:
    st: dict[str, Any] = r.status().get("outdatePeer") or {}
    return st


@contextmanager
def outdating_pair(
    tmp: Path, args_a: list[str], args_b: list[str], etcd_port: int | None = None
) -> Iterator[tuple[NetPair, StoreLinks | None, Replica, Replica]]:
    secret = str(tmp / "secret")
    Path(secret).write_text(secrets.token_hex(32))
    with net_pair() as net, _maybe_links(net, etcd_port) as links:
        common = ["--volume", VOLUME, "--timeout", "3"]
        a = Replica("a", net.ns[0], net.ip[0], net.ip[1], tmp, "16M", None, common)
        b = Replica("b", net.ns[1], net.ip[1], net.ip[0], tmp, "16M", None, common)
        try:
            a.create()
            b.create()
            store_a = ["--store-endpoints", links.endpoints[0]] if links else []
            store_b = ["--store-endpoints", links.endpoints[1]] if links else []
            ids_a = ["--replica-id", "a", "--peer-id", "b"]
            ids_b = ["--replica-id", "b", "--peer-id", "a"]
            a.start("primary", secret, "--force", *ids_a, *store_a, *args_a)
            b.start("secondary", secret, *ids_b, *store_b, *args_b)
            wait_for(lambda: synced(a) and synced(b), 60, "initial full sync")
            yield net, links, a, b
        finally:
            for r in (a, b):
                r.stop()


@contextmanager
def _maybe_links(net: NetPair, etcd_port: int | None) -> Iterator[StoreLinks | None]:
    if etcd_port is None:
        yield None
        return
    with store_links(net.ns, etcd_port) as links:
        yield links


def test_store_record_outdates_the_lost_peer(tmp_path: Path, etcd_server: EtcdServer) -> None:
    cluster = f"t-{uuid.uuid4().hex[:10]}"
    opts = ["--store-cluster", cluster, "--store-timeout", "10s"]
    port = etcd_server.client_port
    with outdating_pair(tmp_path, opts, opts, port) as (net, links, a, b):
        assert links is not None

        def record() -> dict[str, Any] | None:
            return outdate_record(etcd_server.endpoint, cluster)

        assert record() is None
        assert a.status()["outdatePeer"] is None

        # Hold A's store requests, cut the replication link, write while cut.
        links.relays[0].pause()
        net.link(0, False)
        first = Writer(a.sock, 0, b"\x11" * BLOCK)
        first.start()
        wait_for(lambda: outdating_of(a).get("result") == "outdating", 20, "A to start outdating B")
        time.sleep(1.0)
        assert first.acked_at is None and first.error is None, "acked before B was outdated"
        assert record() is None
        links.relays[0].resume()
        first.join(20)
        assert first.error is None and first.acked_at is not None

        rec = record()
        assert rec is not None, "write acknowledged without a outdate records"
        assert rec["outdated"] == "b" and rec["by"] == "a" and rec["volume"] == VOLUME
        st = a.status()
        assert rec["generation"] == st["generation"].split(":")[0]
        assert st["outdatePeer"]["result"] == "outdated" and st["outdatePeer"]["peer_outdated"]
        assert st["outdatePeer"]["exit_code"] == 4

        # A goes on writing without waiting for anything.
        t0 = time.monotonic()
        second = Writer(a.sock, BLOCK, b"\x22" * BLOCK)
        second.start()
        second.join(10)
        assert second.acked_at is not None and time.monotonic() - t0 < 5

        # B learns it is Outdated and refuses promotion, naming the record.
        wait_for(lambda: b.status()["disk"] == "Outdated", 20, "B to show Outdated")
        answer = b.control("promote")
        assert not answer["ok"]
        err = answer["error"]
        assert "'b'" in err and "'a'" in err and rec["generation"] in err and rec["since"] in err
        assert "--force" in err and "resync" in err
        assert b.status()["role"] == "Secondary"

        # Reconnect: B resyncs from A, clears the record, is UpToDate and promotable.
        net.link(0, True)
        wait_for(lambda: record() is None, 60, "outdate records cleared after B's resync")
        wait_for(lambda: synced(b), 60, "B in sync")
        assert b.status()["last_sync"]["kind"] == "SyncTarget"
        assert a.control("demote")["ok"]
        wait_for(lambda: b.status()["peer_role"] == "Secondary", 10, "B to see A demoted")
        promoted = b.control("promote")
        assert promoted["ok"], promoted
        assert promoted["status"]["role"] == "Primary"
        assert read_block(b.sock, 0) == b"\x11" * BLOCK
        assert read_block(b.sock, BLOCK) == b"\x22" * BLOCK


def test_store_unreachable_primary_continues_and_says_so(
    tmp_path: Path, etcd_server: EtcdServer
) -> None:
    cluster = f"t-{uuid.uuid4().hex[:10]}"
    opts = ["--store-cluster", cluster, "--store-timeout", "1s", "--outdate-timeout", "2"]
    with outdating_pair(tmp_path, opts, opts, etcd_server.client_port) as (net, links, a, _b):
        assert links is not None
        links.relays[0].pause()
        net.link(0, False)
        w = Writer(a.sock, 0, b"\x33" * BLOCK)
        w.start()
        w.join(30)
        assert w.error is None and w.acked_at is not None  # resource-only: I/O goes on
        st = a.status()["outdatePeer"]
        assert st["result"] == "failed" and not st["peer_outdated"]
        assert "NOT outdated" in st["detail"]
        assert outdate_record(etcd_server.endpoint, cluster) is None
        links.relays[0].resume()


def test_fence_peer_handler_outdates_peer_before_ack(tmp_path: Path) -> None:
    mark = tmp_path / "fence.log"
    b_ctl = str(tmp_path / "b.ctl")
    handler = tmp_path / "fence-peer.sh"
    handler.write_text(
        "#!/bin/sh\n"
        f'echo "start $BLOCKREPL_PEER $DRBD_RESOURCE $DRBD_PEER $BLOCKREPL_GENERATION" >> {mark}\n'
        "for i in $(seq 50); do\n"
        f"  {sys.executable} -m blockrepl.cli outdate --control {b_ctl} >/dev/null 2>&1 "
        "&& break\n"
        "  sleep 0.2\n"
        "done\n"
        f"[ $i -lt 50 ] || {{ echo unreachable >> {mark}; exit 5; }}\n"
        "sleep 1\n"
        f'echo "end $(date +%s.%N)" >> {mark}\n'
        "exit 4\n"
    )
    handler.chmod(0o755)
    args = ["--fence-peer-handler", str(handler)]
    with outdating_pair(tmp_path, args, args) as (net, _links, a, b):
        net.link(0, False)
        w = Writer(a.sock, 0, b"\x44" * BLOCK)
        w.start()
        w.join(40)
        assert w.error is None and w.acked_at is not None
        lines = mark.read_text().split("\n")
        start = lines[0].split()
        assert start[:4] == ["start", "b", VOLUME, "b"]
        assert start[4] == a.status()["generation"].split(":")[0]
        end = [ln for ln in lines if ln.startswith("end ")]
        assert end, mark.read_text()
        assert w.acked_at >= float(end[0].split()[1]), "write acked before the handler finished"
        st = a.status()["outdatePeer"]
        assert st["result"] == "outdated" and st["exit_code"] == 4

        assert b.status()["disk"] == "Outdated"
        answer = b.control("promote")
        assert not answer["ok"] and "Outdated" in answer["error"]

        net.link(0, True)
        wait_for(lambda: synced(b), 60, "B resynced")
        assert b.status()["disk"] == "UpToDate"
        assert a.control("demote")["ok"]
        wait_for(lambda: b.status()["peer_role"] == "Secondary", 10, "B to see A demoted")
        promoted = b.control("promote")
        assert promoted["ok"], promoted
        assert read_block(b.sock, 0) == b"\x44" * BLOCK


def test_promotion_of_a_lost_peer_drops_the_link_and_outdates_it_first(
    tmp_path: Path, etcd_server: EtcdServer
) -> None:
    """The cluster knows the Primary's node is gone (fenced, or its lease over) before the
    replication link times out: `promote` with peer_lost drops the link at once, records
    the peer Outdated in the store, then promotes. The old Primary, if it was only frozen,
    finds that record naming it when it wakes and cannot outdate the new Primary."""
    cluster = f"t-{uuid.uuid4().hex[:10]}"
    opts = ["--store-cluster", cluster, "--store-timeout", "5s"]
    with outdating_pair(tmp_path, opts, opts, etcd_server.client_port) as (_net, _l, a, b):
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)  # a frozen node: its link stays up on B's side
        try:
            assert b.status()["connection"] == "Connected"
            refused = b.control("promote")
            assert not refused["ok"] and "peer is Primary" in refused["error"]
            promoted = b.control("promote", peer_lost=True)
            assert promoted["ok"], promoted
            st = promoted["status"]
            assert st["role"] == "Primary" and st["disk"] == "UpToDate"
            assert st["connection"] != "Connected"
            assert st["outdatePeer"]["peer_outdated"] and st["outdatePeer"]["peer"] == "a"
            rec = outdate_record(etcd_server.endpoint, cluster)
            assert rec is not None and rec["outdated"] == "a" and rec["by"] == "b"
        finally:
            a.proc.send_signal(signal.SIGCONT)
        # A wakes as a Primary without its peer: the record names it, so it cannot outdate
        # B, and says so.
        wait_for(
            lambda: outdating_of(a).get("result") == "peer-primary", 30, "A to find the record"
        )
        assert not outdating_of(a)["peer_outdated"]
        rec = outdate_record(etcd_server.endpoint, cluster)
        assert rec is not None and rec["outdated"] == "a"
