"""Store conformance: the same tests against real etcd and MemoryStore, then etcd-only ones
(restart, outage, concurrency across connections, TLS-free multi-endpoint)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator

import aetcd
import pytest

from controller.store.base import Check, Delete, Op, Put, Store, WatchEvent
from controller.store.errors import (
    CompactedError,
    Conflict,
    ConflictError,
    LeaseNotFoundError,
    StoreError,
    StoreUnavailableError,
    TxnTooLargeError,
)
from controller.store.etcd import EtcdStore
from controller.store.lease_keeper import keep_alive
from controller.store.memory import MemoryStore
from tests.etcd_server import EtcdServer, etcd_trio, free_port


def _cluster() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["etcd", "memory"])
async def any_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    s: Store
    if request.param == "etcd":
        server: EtcdServer = request.getfixturevalue("etcd_server")
        s = EtcdStore([server.endpoint], _cluster())
    else:
        s = MemoryStore(_cluster())
    try:
        yield s
    finally:
        await s.close()


async def take(events: AsyncIterator[WatchEvent], n: int, within: float = 5.0) -> list[WatchEvent]:
    out: list[WatchEvent] = []

    async def run() -> None:
        async for ev in events:
            out.append(ev)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), within)
    return out


# -- conformance: both backends -------------------------------------------------------------


async def test_get_put_list_delete(any_store: Store) -> None:
    s = any_store
    assert await s.get("specs/Group/a") is None
    r1 = await s.put("specs/Group/a", {"n": 1})
    kv = await s.get("specs/Group/a")
    assert kv is not None
    assert (kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.version, kv.lease) == (
        "specs/Group/a", {"n": 1}, r1, r1, 1, 0,
    )  # fmt: skip
    r2 = await s.put("specs/Group/a", {"n": 2, "nested": {"x": [1, "é"]}})
    assert r2 == r1 + 1
    kv = await s.get("specs/Group/a")
    assert kv is not None
    assert (kv.value, kv.mod_revision, kv.create_revision, kv.version) == (
        {"n": 2, "nested": {"x": [1, "é"]}}, r2, r1, 2,
    )  # fmt: skip
    await s.put("specs/Group/c", {})
    await s.put("specs/Group/b", {})
    await s.put("specs/Other/z", {})
    await s.put("status/Group/a", {})
    items, rev = await s.list("specs/Group/")
    assert [i.key for i in items] == ["specs/Group/a", "specs/Group/b", "specs/Group/c"]
    assert rev == await s.revision() == r2 + 4
    everything, _ = await s.list("")
    assert len(everything) == 5
    assert await s.delete("specs/Group/b") is True
    rev_after = await s.revision()
    assert await s.delete("specs/Group/b") is False
    assert await s.revision() == rev_after  # deleting nothing is not a write
    items, _ = await s.list("specs/Group/")
    assert [i.key for i in items] == ["specs/Group/a", "specs/Group/c"]


async def test_cas_put_and_delete(any_store: Store) -> None:
    s = any_store
    r1 = await s.put("specs/G/a", {"v": 1}, expect_revision=0)  # create if absent
    r2 = await s.put("specs/G/a", {"v": 2}, expect_revision=r1)
    assert r2 == r1 + 1
    with pytest.raises(ConflictError) as ei:
        await s.put("specs/G/a", {"v": 3}, expect_revision=r1)  # stale
    assert ei.value.conflicts == [Conflict("specs/G/a", r1, r2)]
    assert f"expected revision {r1}, found revision {r2}" in str(ei.value)
    with pytest.raises(ConflictError) as ei:
        await s.put("specs/G/a", {"v": 3}, expect_revision=0)  # create on existing key
    assert ei.value.conflicts == [Conflict("specs/G/a", 0, r2)]
    assert "expected absent" in str(ei.value)
    with pytest.raises(ConflictError) as ei:
        await s.put("specs/G/missing", {"v": 3}, expect_revision=r2)
    assert ei.value.conflicts == [Conflict("specs/G/missing", r2, None)]
    assert "does not exist" in str(ei.value)
    with pytest.raises(ConflictError):
        await s.delete("specs/G/a", expect_revision=r1)
    kv = await s.get("specs/G/a")
    assert kv is not None and kv.value == {"v": 2} and await s.revision() == r2
    assert await s.delete("specs/G/a", expect_revision=r2) is True
    assert await s.get("specs/G/a") is None


async def test_commit_1000_puts_is_one_transaction(any_store: Store) -> None:
    s = any_store
    rev0 = await s.revision()
    txns0 = s.stats.txns
    ops = [Put(f"specs/G/obj-{i:04d}", {"i": i, "pad": "x" * 200}, expect_revision=0)
           for i in range(1000)]  # fmt: skip
    rev = await s.commit(ops)
    assert s.stats.txns == txns0 + 1
    assert rev == rev0 + 1 == await s.revision()
    items, list_rev = await s.list("specs/G/")
    assert len(items) == 1000 and list_rev == rev
    assert {i.mod_revision for i in items} == {rev}
    assert [i.value["i"] for i in items] == list(range(1000))


async def test_failed_commit_changes_nothing(any_store: Store) -> None:
    s = any_store
    ra = await s.put("specs/G/a", {"v": 1})
    rb = await s.put("specs/G/b", {"v": 1})
    rb2 = await s.put("specs/G/b", {"v": 2})
    rev0 = await s.revision()
    ops: list[Op] = [
        Put("specs/G/a", {"v": 2}, expect_revision=ra),  # holds
        Put("specs/G/b", {"v": 3}, expect_revision=rb),  # stale
        Put("specs/G/new", {"v": 1}),
        Delete("specs/G/a2"),
        Check("specs/G/c", expect_revision=5),  # missing
        Check("specs/G/a", expect_revision=ra),  # holds
    ]
    with pytest.raises(ConflictError) as ei:
        await s.commit(ops)
    assert ei.value.conflicts == [
        Conflict("specs/G/b", rb, rb2),
        Conflict("specs/G/c", 5, None),
    ]
    assert await s.revision() == rev0
    assert await s.get("specs/G/new") is None
    kv = await s.get("specs/G/a")
    assert kv is not None and kv.value == {"v": 1}


async def test_commit_mixed_ops_and_checks(any_store: Store) -> None:
    s = any_store
    ra = await s.put("specs/G/a", {"v": 1})
    await s.put("specs/G/gone", {"v": 1})
    rev = await s.commit([
        Check("specs/G/a", expect_revision=ra),
        Put("specs/G/b", {"v": 1}, expect_revision=0),
        Delete("specs/G/gone"),
    ])  # fmt: skip
    assert rev == ra + 2
    assert await s.get("specs/G/gone") is None
    kv = await s.get("specs/G/b")
    assert kv is not None and kv.mod_revision == rev
    # Only checks: nothing is written, the revision does not move.
    assert await s.commit([Check("specs/G/a", expect_revision=ra)]) == rev
    with pytest.raises(ValueError, match="written twice"):
        await s.commit([Put("specs/G/x", {}), Delete("specs/G/x")])


async def test_txn_limits(any_store: Store) -> None:
    s = any_store
    with pytest.raises(TxnTooLargeError, match="max-txn-ops"):
        await s.commit([Check(f"specs/G/{i}", expect_revision=0) for i in range(20001)])
    with pytest.raises(TxnTooLargeError, match="max-request-bytes"):
        await s.put("specs/G/huge", {"blob": "x" * (16 * 1024 * 1024 + 1000)})
    assert await s.get("specs/G/huge") is None


async def test_bad_values_are_refused(any_store: Store) -> None:
    with pytest.raises(TypeError, match="specs/G/a"):
        await any_store.put("specs/G/a", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JSON"):
        await any_store.put("specs/G/a", {"x": object()})
    with pytest.raises(ValueError, match="relative"):
        await any_store.get("/vigil/x/specs")


async def test_watch_put_delete_in_order(any_store: Store) -> None:
    s = any_store
    start = await s.revision() + 1
    events = s.watch("specs/", start)
    r1 = await s.put("specs/G/a", {"v": 1})
    await s.put("status/G/a", {"ignored": True})
    r2 = await s.put("specs/G/a", {"v": 2})
    r3 = await s.commit([Put("specs/G/b", {"v": 1}), Put("specs/G/c", {"v": 1})])
    r4 = await s.delete("specs/G/a") and await s.revision()
    got = await take(events, 5)
    assert [(e.type, e.key, e.value, e.mod_revision, e.prev_value) for e in got] == [
        ("PUT", "specs/G/a", {"v": 1}, r1, None),
        ("PUT", "specs/G/a", {"v": 2}, r2, {"v": 1}),
        ("PUT", "specs/G/b", {"v": 1}, r3, None),
        ("PUT", "specs/G/c", {"v": 1}, r3, None),
        ("DELETE", "specs/G/a", None, r4, {"v": 2}),
    ]
    # A new watch from an old revision replays the same history.
    again = await take(s.watch("specs/G/a", r2), 2)
    assert [(e.type, e.mod_revision) for e in again] == [("PUT", r2), ("DELETE", r4)]


async def test_watch_compacted(any_store: Store) -> None:
    s = any_store
    r1 = await s.put("specs/G/a", {"v": 1})
    await s.put("specs/G/a", {"v": 2})
    r3 = await s.put("specs/G/a", {"v": 3})
    await s.compact(r3)
    with pytest.raises(CompactedError) as ei:
        await take(s.watch("specs/", r1), 1)
    assert ei.value.revision == r3
    assert "relist" in str(ei.value)
    got = await take(s.watch("specs/", r3), 1)  # the compaction revision itself is kept
    assert got[0].value == {"v": 3}
    await s.compact(r1)  # compacting below an earlier compaction is a no-op


async def test_lease_grant_refresh_revoke(any_store: Store) -> None:
    s = any_store
    lease = await s.grant_lease(5)
    assert lease.id > 0 and lease.ttl == 5
    assert await lease.refresh() == 5
    await s.put("nodes/n1", {"alive": True}, lease=lease.id)
    await s.put("nodes/n2", {"alive": True}, lease=lease.id)
    kv = await s.get("nodes/n1")
    assert kv is not None and kv.lease == lease.id
    start = await s.revision() + 1
    events = s.watch("nodes/", start)
    await lease.revoke()
    assert await s.get("nodes/n1") is None and await s.get("nodes/n2") is None
    got = await take(events, 2)
    assert [(e.type, e.key) for e in got] == [("DELETE", "nodes/n1"), ("DELETE", "nodes/n2")]
    assert got[0].mod_revision == got[1].mod_revision == start  # one revision for both
    with pytest.raises(LeaseNotFoundError):
        await lease.refresh()
    await lease.revoke()  # idempotent
    with pytest.raises(LeaseNotFoundError):
        await s.put("nodes/n3", {}, lease=lease.id)


async def test_concurrent_cas_exactly_one_wins(
    any_store: Store, request: pytest.FixtureRequest
) -> None:
    s1 = any_store
    s2: Store
    if isinstance(s1, EtcdStore):
        server: EtcdServer = request.getfixturevalue("etcd_server")
        s2 = EtcdStore([server.endpoint], s1.cluster)
    else:
        s2 = s1  # one in-memory store shared by two writers
    try:
        rev = await s1.put("specs/G/counter", {"n": 0})
        results = await asyncio.gather(
            s1.put("specs/G/counter", {"n": 1, "by": "s1"}, expect_revision=rev),
            s2.put("specs/G/counter", {"n": 1, "by": "s2"}, expect_revision=rev),
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, int)]
        losses = [r for r in results if isinstance(r, ConflictError)]
        assert len(wins) == 1 and len(losses) == 1, results
        assert losses[0].conflicts == [Conflict("specs/G/counter", rev, wins[0])]

        # Read-modify-write loops on two connections: no increment may be lost.
        async def bump(st: Store, times: int) -> None:
            for _ in range(times):
                while True:
                    kv = await st.get("specs/G/counter")
                    assert kv is not None
                    try:
                        await st.put("specs/G/counter", {"n": kv.value["n"] + 1},
                                     expect_revision=kv.mod_revision)  # fmt: skip
                        break
                    except ConflictError:
                        await asyncio.sleep(0)

        await asyncio.gather(bump(s1, 25), bump(s2, 25))
        kv = await s1.get("specs/G/counter")
        assert kv is not None and kv.value["n"] == 51
    finally:
        if s2 is not s1:
            await s2.close()


# -- etcd only ------------------------------------------------------------------------------


async def test_clusters_are_isolated(store: EtcdStore, etcd_server: EtcdServer) -> None:
    async with EtcdStore([etcd_server.endpoint], _cluster()) as other:
        await other.put("specs/G/a", {"other": True})
        await store.put("specs/G/a", {"mine": True})
        kv = await other.get("specs/G/a")
        assert kv is not None and kv.value == {"other": True}
        items, _ = await store.list("")
        assert [(i.key, i.value) for i in items] == [("specs/G/a", {"mine": True})]


async def test_non_object_value_is_reported(store: EtcdStore, etcd_server: EtcdServer) -> None:
    port = int(etcd_server.endpoint.rsplit(":", 1)[1])
    async with aetcd.Client(host="127.0.0.1", port=port) as raw:
        await raw.put(f"{store.prefix}specs/G/bad".encode(), b"[1, 2]")
        await raw.put(f"{store.prefix}specs/G/worse".encode(), b"\xff")
    with pytest.raises(StoreError, match=r"specs/G/bad.*expected an object"):
        await store.get("specs/G/bad")
    with pytest.raises(StoreError, match="specs/G/worse"):
        await store.get("specs/G/worse")


async def test_unavailable_closed_port_is_fast_and_clear() -> None:
    port = free_port()
    async with EtcdStore([f"http://127.0.0.1:{port}"], _cluster(), timeout=3.0) as s:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailableError) as ei:
            await s.put("specs/G/a", {})
        assert time.monotonic() - t0 < 3.5
    msg = str(ei.value)
    assert f"127.0.0.1:{port}" in msg and "connection refused" in msg
    assert "VIGIL_ENDPOINTS" in msg and "is etcd running" in msg


async def test_second_endpoint_used_when_first_is_down(etcd_server: EtcdServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with EtcdStore([dead, etcd_server.endpoint], _cluster(), timeout=3.0) as s:
        await s.put("specs/G/a", {"ok": True})
        kv = await s.get("specs/G/a")
        assert kv is not None and kv.value == {"ok": True}


def _wait_stopped(pid: int) -> None:
    # kill() returns before every thread of etcd has stopped; wait for the stop to land.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.005)
    raise AssertionError(f"etcd pid {pid} did not stop")


@pytest.mark.slow
async def test_unavailable_when_server_stops_and_when_it_hangs() -> None:
    with EtcdServer() as server:
        async with EtcdStore([server.endpoint], _cluster(), timeout=0.5) as s:
            await s.put("specs/G/a", {})
            # A hung etcd (like one without quorum) must fail within the timeout.
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                _wait_stopped(server.proc.pid)
                t0 = time.monotonic()
                with pytest.raises(StoreUnavailableError, match=r"no answer within 0\.5s") as ei:
                    await s.put("specs/G/a", {"v": 2})
                assert "may have been applied" in str(ei.value)
                assert time.monotonic() - t0 < 1.0
                with pytest.raises(StoreUnavailableError):
                    await s.get("specs/G/a")
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            server.stop()
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="connection refused") as ei:
                await s.get("specs/G/a")
            assert time.monotonic() - t0 < 2.0
            assert server.endpoint in str(ei.value)
            server.start()
            kv = await s.get("specs/G/a")  # the same store recovers by itself
            # The timed-out put may or may not have landed, as its error said.
            assert kv is not None and kv.value in ({}, {"v": 2})


@pytest.mark.slow
async def test_watch_resumes_across_etcd_restart() -> None:
    with EtcdServer() as server:
        async with (
            EtcdStore([server.endpoint], _cluster()) as watcher_store,
            EtcdStore([server.endpoint], watcher_store.cluster) as writer,
        ):
            start = await writer.revision() + 1
            events = watcher_store.watch("specs/", start)
            await writer.put("specs/G/a", {"v": 1})
            first = await take(events, 1)
            # Written while the watcher is not reading: possibly still in etcd's send
            # buffer or in grpc's when etcd goes away.
            await writer.put("specs/G/b", {"v": 1})
            await writer.delete("specs/G/a")
            streams = watcher_store.stats.watch_streams
            server.restart()
            # Written after the restart, before the watcher reconnects: only history has it.
            await writer.put("specs/G/c", {"v": 1})
            await writer.commit([Put("specs/G/d", {"v": 1}), Put("specs/G/e", {"v": 1})])
            rest = await take(events, 5, within=10)
            got = [(e.type, e.key) for e in first + rest]
            assert got == [
                ("PUT", "specs/G/a"), ("PUT", "specs/G/b"), ("DELETE", "specs/G/a"),
                ("PUT", "specs/G/c"), ("PUT", "specs/G/d"), ("PUT", "specs/G/e"),
            ]  # fmt: skip
            revs = [e.mod_revision for e in first + rest]
            assert revs == sorted(revs) and len(set(revs)) == 5
            assert watcher_store.stats.watch_streams > streams  # it really reconnected
            # And it keeps going live after the resume, without repeats.
            await writer.put("specs/G/f", {"v": 1})
            (last,) = await take(events, 1)
            assert last.key == "specs/G/f" and last.mod_revision > revs[-1]
            await events.aclose()  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_watch_gives_up_when_asked() -> None:
    with EtcdServer() as server:
        async with EtcdStore([server.endpoint], _cluster(), timeout=0.5) as s:
            rev = await s.revision()
            events = s.watch("specs/", rev + 1, give_up_after=0.5)
            await s.put("specs/G/a", {})
            await take(events, 1)
            server.stop()
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailableError):
                await take(events, 1, within=5)
            assert time.monotonic() - t0 < 3


@pytest.mark.slow
async def test_lease_keeper_keeps_key_then_it_expires(store: EtcdStore) -> None:
    lost: list[str] = []
    lease = await store.grant_lease(1)
    await store.put("nodes/n1", {"alive": True}, lease=lease.id)
    start = await store.revision() + 1
    keeper = keep_alive(lease, 0.25, lost.append)
    await asyncio.sleep(1.3)  # longer than the TTL
    assert await store.get("nodes/n1") is not None
    assert keeper.refreshes >= 3 and not lost
    await keeper.stop()
    t0 = time.monotonic()
    (ev,) = await take(store.watch("nodes/", start), 1, within=5)
    assert ev.type == "DELETE" and ev.key == "nodes/n1"
    assert time.monotonic() - t0 < 3.0
    # A keeper on a lease that is gone reports the loss once.
    keeper = keep_alive(lease, 0.05, lost.append)
    await asyncio.wait_for(keeper.lost.wait(), 2)
    await keeper.stop()
    assert len(lost) == 1 and "expired or was revoked" in lost[0]


async def test_etcd_refusals_are_store_errors(store: EtcdStore) -> None:
    with pytest.raises(ValueError, match="has not reached it"):
        await store.compact(10**9)
    with pytest.raises(StoreError, match="lease TTL") as ei:
        await store.grant_lease(10**12)
    assert not isinstance(ei.value, StoreUnavailableError)


@pytest.mark.slow
async def test_tls_with_client_certificate() -> None:
    with EtcdServer(tls=True) as server:
        pki = server.pki
        assert pki is not None and server.endpoint.startswith("https://")
        async with EtcdStore(
            [server.endpoint],
            _cluster(),
            ca_cert=pki.ca_cert,
            cert_key=pki.client_key,
            cert_cert=pki.client_cert,
        ) as s:
            await s.put("specs/G/a", {"tls": True})
            kv = await s.get("specs/G/a")
            assert kv is not None and kv.value == {"tls": True}
        # Without a client certificate etcd refuses the handshake: a clear, fast error.
        async with EtcdStore([server.endpoint], _cluster(), ca_cert=pki.ca_cert, timeout=2) as s:
            t0 = time.monotonic()
            with pytest.raises(StoreError) as ei:
                await s.get("specs/G/a")
            assert time.monotonic() - t0 < 2.5
            assert server.endpoint in str(ei.value) and "TLS handshake failed" in str(ei.value)
        # Plain http against a TLS etcd: the error suggests https.
        plain = server.endpoint.replace("https://", "http://")
        async with EtcdStore([plain], _cluster(), timeout=2) as s:
            with pytest.raises(StoreUnavailableError, match="https://"):
                await s.get("specs/G/a")


async def test_watch_survives_its_channel_being_replaced(etcd_server: EtcdServer) -> None:
    """A request that meets "no leader" moves the connection to the next endpoint and
    closes the old channel after a grace period; grpc then cancels the watch stream still
    open on it. That must be a reconnect like any other, not the end of the watch: a
    watcher that stopped there left a controller deciding from a frozen copy of the store
    (found by the failover bench after an etcd leader was killed)."""
    async with (
        EtcdStore([etcd_server.endpoint], _cluster(), timeout=0.5) as watcher_store,
        EtcdStore([etcd_server.endpoint], watcher_store.cluster) as writer,
    ):
        events = watcher_store.watch("specs/", await writer.revision() + 1)
        await writer.put("specs/G/a", {"v": 1})
        await take(events, 1)
        conn = watcher_store._conn
        conn.reset(conn.channel)  # as _call does on "no leader"
        await watcher_store.get("specs/G/a")  # a new channel; the old one closes in 0.5 s
        await asyncio.sleep(1.0)
        await writer.put("specs/G/b", {"v": 2})
        (ev,) = await take(events, 1, within=5)
        assert ev.key == "specs/G/b"
        await events.aclose()  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_a_write_refused_for_want_of_a_leader_waits_for_the_election() -> None:
    """etcd refuses a write at once while its member has no leader ("no leader": nothing
    was proposed). Within the write's time the store retries on the same member, so a
    write sent while etcd elects lands when the election ends; past it, the error does
    not claim the write may have been applied."""
    trio = etcd_trio()
    try:
        for m in trio:
            m.launch()
        for m in trio:
            m.wait_healthy()
        async with EtcdStore([trio[0].endpoint], _cluster(), timeout=5.0) as s:
            await s.put("specs/G/a", {"v": 1})
            trio[1].stop()
            trio[2].stop()
            deadline = time.monotonic() + 10
            while True:  # until member 0 knows it has no leader
                try:
                    await s.commit([Put("specs/G/probe", {})], 0.3)
                except StoreUnavailableError as exc:
                    if "no leader" in str(exc):
                        break
                assert time.monotonic() < deadline, "member 0 never lost its leader"
                await asyncio.sleep(0.1)
            with pytest.raises(StoreUnavailableError) as refused:
                await s.commit([Put("specs/G/b", {"v": 1})], 0.6)
            assert "no leader" in str(refused.value)
            assert "may have been applied" not in str(refused.value)

            write = asyncio.create_task(s.commit([Put("specs/G/c", {"v": 1})], 8.0))
            await asyncio.sleep(0.3)
            trio[1].launch()  # quorum again: an election, then the waiting write lands
            rev = await write
            kv = await s.get("specs/G/c")
            assert kv is not None and kv.mod_revision == rev
    finally:
        for m in trio:
            m.cleanup()
