"""Store over etcd v3, using aetcd's generated gRPC stubs on a channel Vigil manages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from aetcd import rpc

from controller.store.base import (
    Delete,
    KeyValue,
    Lease,
    Op,
    Put,
    Store,
    StoreStats,
    WatchEvent,
    check_revision,
    decode_value,
    encode_value,
    find_conflicts,
    preconditions,
    validate_ops,
)
from controller.store.denied import explain_denied
from controller.store.errors import (
    CompactedError,
    Conflict,
    ConflictError,
    LeaseNotFoundError,
    PermissionDeniedError,
    StoreError,
    StoreUnavailableError,
)
from controller.store.etcd_channel import (
    EtcdConnection,
    TLSFiles,
    closed_under_call,
    grpc,
    leaderless,
    not_sent,
    translate,
)
from controller.store.keys import check_relative_key, cluster_prefix, prefix_range_end

log = logging.getLogger(__name__)

T = TypeVar("T")

LEADERLESS_PAUSE = 0.025  # seconds between writes refused while etcd elects a leader

# Watches ask etcd to cancel them when the member loses its leader, so a partitioned
# member's watchers move to another endpoint instead of waiting silently.
_REQUIRE_LEADER = (("hasleader", "true"),)


class EtcdLease(Lease):
    def __init__(self, store: EtcdStore, lease_id: int, ttl: int) -> None:
        self.id = lease_id
        self.ttl = ttl
        self._store = store

    async def refresh(self, timeout: float | None = None) -> int:
        return await self._store._refresh_lease(self.id, timeout)

    async def revoke(self) -> None:
        await self._store._revoke_lease(self.id)


class EtcdStore(Store):
    def __init__(
        self,
        endpoints: Sequence[str],
        cluster: str,
        *,
        timeout: float = 5.0,
        ca_cert: str | None = None,
        cert_key: str | None = None,
        cert_cert: str | None = None,
        on_wait: Callable[[str], object] | None = None,
    ) -> None:
        """``on_wait``: wait (up to the timeout) for an etcd that refuses connections, and
        say so through on_wait once; without it, a refused connection fails at once."""
        if timeout <= 0:
            raise ValueError(f"etcd timeout must be > 0 seconds, got {timeout}")
        self.cluster = cluster
        self.prefix = cluster_prefix(cluster)
        self._bprefix = self.prefix.encode()
        self.timeout = timeout
        self.stats = StoreStats()
        tls = TLSFiles(ca_cert, cert_key, cert_cert) if (ca_cert or cert_key or cert_cert) else None
        self._conn = EtcdConnection(list(endpoints), timeout, tls)
        self._conn.on_wait = on_wait
        self._closed = False

    @property
    def endpoints(self) -> list[str]:
        return list(self._conn.urls)

    # -- plumbing ------------------------------------------------------------------------

    def _full(self, key: str) -> bytes:
        return self._bprefix + key.encode()

    def _rel(self, full: bytes) -> str:
        return full[len(self._bprefix) :].decode()

    def _kv(self, kv: Any) -> KeyValue:
        key = self._rel(kv.key)
        return KeyValue(
            key,
            decode_value(key, kv.value),
            kv.mod_revision,
            kv.create_revision,
            kv.version,
            kv.lease,
        )

    async def _call(
        self,
        fn: Callable[[Any], Awaitable[T]],
        *,
        idempotent: bool,
        write: bool = False,
        lease_id: int | None = None,
        timeout: float | None = None,
        touched: Sequence[str] = (),
    ) -> T:
        """Run fn(connection) within the timeout, reconnecting (next endpoint) when safe.

        touched: the keys the request reads or writes, to name one if etcd refuses it."""
        if self._closed:
            raise StoreError("store is closed")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            channel = await self._conn.ensure(deadline)
            try:
                try:
                    return await fn(self._conn)
                except asyncio.CancelledError:
                    if not closed_under_call():
                        raise
                    if idempotent and time.monotonic() < deadline - 0.05:
                        continue
                    maybe = " (the write may have been applied: re-read first)" if write else ""
                    cause = f"the request's connection was closed{maybe}"
                    raise StoreUnavailableError(self._conn.urls, cause) from None
            except rpc.AioRpcError as e:
                retry = e.code() == rpc.StatusCode.UNAVAILABLE and (idempotent or not_sent(e))
                if retry and time.monotonic() < deadline - LEADERLESS_PAUSE:
                    if write and leaderless(e):
                        # etcd is electing (its leader died): this member has a leader
                        # again within an election timeout, while the next endpoint may be
                        # the dead one, where connecting alone would spend the attempt.
                        await asyncio.sleep(LEADERLESS_PAUSE)
                    else:
                        self._conn.reset(channel)
                    continue
                unsure = write and not not_sent(e)
                err = translate(
                    e, self._conn, write=write, lease_id=lease_id, unsure=unsure, timeout=timeout
                )
                if isinstance(err, PermissionDeniedError):
                    err = await explain_denied(self._conn, err, touched, write=write)
                raise err from None

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        check_relative_key(key)
        self.stats.ranges += 1
        req = rpc.RangeRequest(key=self._full(key))
        resp = await self._call(
            lambda c: c.kv.Range(req, timeout=self.timeout), idempotent=True, touched=[key]
        )
        return self._kv(resp.kvs[0]) if resp.kvs else None

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        check_relative_key(prefix, prefix=True)
        self.stats.ranges += 1
        full = self._full(prefix)
        req = rpc.RangeRequest(key=full, range_end=prefix_range_end(full))
        resp = await self._call(
            lambda c: c.kv.Range(req, timeout=self.timeout), idempotent=True, touched=[prefix]
        )
        return [self._kv(kv) for kv in resp.kvs], int(resp.header.revision)

    async def revision(self) -> int:
        self.stats.ranges += 1
        req = rpc.RangeRequest(key=self._bprefix, count_only=True)
        resp = await self._call(lambda c: c.kv.Range(req, timeout=self.timeout), idempotent=True)
        return int(resp.header.revision)

    # -- writes --------------------------------------------------------------------------

    def _request_op(self, op: Put | Delete) -> Any:
        if isinstance(op, Put):
            return rpc.RequestOp(
                request_put=rpc.PutRequest(
                    key=self._full(op.key),
                    value=encode_value(op.key, op.value),
                    lease=op.lease or 0,
                )
            )
        return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self._full(op.key)))

    async def _txn(self, ops: Sequence[Op], timeout: float | None = None) -> Any:
        """One etcd Txn; on a failed compare raise ConflictError with actual revisions.

        The failure branch reads every compared key, so the revisions in the error come
        from the same atomic transaction that failed.
        """
        conds = preconditions(ops)
        cond_keys = list(dict.fromkeys(k for k, _ in conds))
        req = rpc.TxnRequest(
            compare=[
                rpc.Compare(
                    key=self._full(k),
                    target=rpc.Compare.MOD,
                    result=rpc.Compare.EQUAL,
                    mod_revision=rev,
                )
                for k, rev in conds
            ],
            success=[self._request_op(op) for op in ops if isinstance(op, Put | Delete)],
            failure=[
                rpc.RequestOp(request_range=rpc.RangeRequest(key=self._full(k), keys_only=True))
                for k in cond_keys
            ],
        )
        self.stats.txns += 1
        within = timeout or self.timeout
        resp = await self._call(
            lambda c: c.kv.Txn(req, timeout=within),
            idempotent=False,
            write=True,
            timeout=within,
            touched=[op.key for op in ops if isinstance(op, Put | Delete)],
        )
        if not resp.succeeded:
            actual: dict[str, int | None] = {}
            for k, r in zip(cond_keys, resp.responses, strict=True):
                kvs = r.response_range.kvs
                actual[k] = int(kvs[0].mod_revision) if kvs else None
            conflicts = find_conflicts(conds, actual)
            # Empty only if etcd and Vigil disagreed on compare semantics; still say which.
            raise ConflictError(conflicts or [Conflict(k, r, actual.get(k)) for k, r in conds])
        return resp

    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        expect_revision: int | None = None,
        lease: int | None = None,
    ) -> int:
        check_relative_key(key)
        check_revision(key, expect_revision)
        if expect_revision is not None:
            resp = await self._txn([Put(key, value, expect_revision, lease)])
            return int(resp.header.revision)
        req = rpc.PutRequest(key=self._full(key), value=encode_value(key, value), lease=lease or 0)
        self.stats.puts += 1
        presp = await self._call(
            lambda c: c.kv.Put(req, timeout=self.timeout),
            idempotent=False,
            write=True,
            lease_id=lease,
            touched=[key],
        )
        return int(presp.header.revision)

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        check_relative_key(key)
        check_revision(key, expect_revision)
        if expect_revision is not None:
            resp = await self._txn([Delete(key, expect_revision)])
            return bool(resp.responses[0].response_delete_range.deleted)
        req = rpc.DeleteRangeRequest(key=self._full(key))
        self.stats.deletes += 1
        dresp = await self._call(
            lambda c: c.kv.DeleteRange(req, timeout=self.timeout),
            idempotent=False,
            write=True,
            touched=[key],
        )
        return bool(dresp.deleted)

    async def commit(self, ops: Sequence[Op], timeout: float | None = None) -> int:
        ops = list(ops)
        validate_ops(ops)
        resp = await self._txn(ops, timeout)
        return int(resp.header.revision)

    async def compact(self, revision: int) -> None:
        req = rpc.CompactionRequest(revision=revision, physical=True)
        try:
            await self._call(lambda c: c.kv.Compact(req, timeout=self.timeout), idempotent=True)
        except CompactedError:
            return  # already compacted at or past revision
        except StoreError as e:
            if "future revision" in str(e):
                raise ValueError(
                    f"cannot compact to revision {revision}: the store has not reached it"
                ) from None
            raise

    # -- leases --------------------------------------------------------------------------

    async def grant_lease(self, ttl_seconds: int, timeout: float | None = None) -> Lease:
        if ttl_seconds <= 0:
            raise ValueError(f"lease TTL must be > 0 seconds, got {ttl_seconds}")
        self.stats.lease_ops += 1
        within = timeout or self.timeout
        req = rpc.LeaseGrantRequest(TTL=int(ttl_seconds), ID=0)
        resp = await self._call(
            lambda c: c.lease.LeaseGrant(req, timeout=within),
            idempotent=False,
            write=True,
            timeout=within,
        )
        if resp.error:
            raise StoreError(f"etcd refused to grant a lease: {resp.error}")
        return EtcdLease(self, int(resp.ID), int(resp.TTL))

    async def _refresh_lease(self, lease_id: int, timeout: float | None = None) -> int:
        self.stats.lease_ops += 1
        within = timeout or self.timeout

        async def once(c: EtcdConnection) -> Any:
            call = c.lease.LeaseKeepAlive(timeout=within)
            try:
                await call.write(rpc.LeaseKeepAliveRequest(ID=lease_id))
                return await call.read()
            finally:
                call.cancel()

        resp = await self._call(once, idempotent=True, lease_id=lease_id, timeout=within)
        if resp is None or not hasattr(resp, "TTL") or resp.TTL <= 0:
            raise LeaseNotFoundError(lease_id)
        return int(resp.TTL)

    async def revoke_lease(self, lease_id: int, timeout: float | None = None) -> None:
        await self._revoke_lease(lease_id, timeout)

    async def _revoke_lease(self, lease_id: int, timeout: float | None = None) -> None:
        self.stats.lease_ops += 1
        req = rpc.LeaseRevokeRequest(ID=lease_id)
        within = timeout or self.timeout
        with contextlib.suppress(LeaseNotFoundError):
            await self._call(
                lambda c: c.lease.LeaseRevoke(req, timeout=within),
                idempotent=True,
                write=True,  # refused for want of a leader: wait for it on the same member
                lease_id=lease_id,
                timeout=within,
            )

    # -- watch ---------------------------------------------------------------------------

    def _event(self, ev: Any) -> WatchEvent:
        key = self._rel(ev.kv.key)
        kind: Literal["PUT", "DELETE"] = "PUT" if ev.type == rpc.Event.PUT else "DELETE"
        value = decode_value(key, ev.kv.value) if kind == "PUT" else None
        prev = decode_value(key, ev.prev_kv.value) if ev.HasField("prev_kv") else None
        return WatchEvent(kind, key, value, int(ev.kv.mod_revision), prev)

    async def watch(
        self, prefix: str, start_revision: int, *, give_up_after: float | None = None
    ) -> AsyncIterator[WatchEvent]:
        """Events under prefix from start_revision (0 = from now).

        On a dropped stream it reconnects and resumes at the revision after the last one it
        delivered, so nothing is lost or repeated. give_up_after: seconds without a stream
        before raising StoreUnavailableError (None = keep trying).
        """
        check_relative_key(prefix, prefix=True)
        full = self._full(prefix)
        next_rev = max(start_revision, 0)
        backoff = 0.05
        down_since: float | None = None
        while not self._closed:
            call = None
            channel = None
            try:
                channel = await self._conn.ensure(time.monotonic() + self.timeout)
                create = rpc.WatchCreateRequest(
                    key=full,
                    range_end=prefix_range_end(full),
                    start_revision=next_rev,
                    prev_kv=True,
                )
                call = self._conn.watch.Watch(metadata=_REQUIRE_LEADER)
                self.stats.watch_streams += 1
                await _stream_io(call.write(rpc.WatchRequest(create_request=create)))
                while True:
                    resp = await _stream_io(call.read())
                    if resp is grpc.aio.EOF:
                        raise _StreamEnded("etcd closed the watch stream")
                    if resp.compact_revision:
                        raise CompactedError(int(resp.compact_revision), next_rev or None)
                    if resp.created:
                        if next_rev == 0:
                            next_rev = int(resp.header.revision) + 1
                        backoff, down_since = 0.05, None
                    if resp.canceled:
                        reason = str(resp.cancel_reason)
                        if "permission denied" in reason.lower():
                            # Retrying cannot help: the user may not read this prefix.
                            denied = PermissionDeniedError(reason, reason)
                            raise await explain_denied(self._conn, denied, [prefix], write=False)
                        raise _StreamEnded(f"etcd cancelled the watch: {reason}")
                    last = 0
                    for ev in resp.events:
                        rev = int(ev.kv.mod_revision)
                        if rev < next_rev:
                            continue  # already delivered before a reconnect
                        last = rev
                        yield self._event(ev)
                    if last:
                        # etcd sends whole revisions per response, so all of `last` is out.
                        next_rev = last + 1
            except (rpc.AioRpcError, _StreamEnded, StoreUnavailableError) as e:
                if isinstance(e, rpc.AioRpcError) and e.code() not in _RETRY_CODES:
                    raise translate(e, self._conn) from None
                if self._closed:
                    return
                now = time.monotonic()
                down_since = down_since or now
                if give_up_after is not None and now - down_since > give_up_after:
                    err = translate(e, self._conn) if isinstance(e, rpc.AioRpcError) else e
                    if isinstance(err, StoreUnavailableError):
                        raise err from None
                    raise StoreUnavailableError(self._conn.urls, str(e)) from None
                log.info(
                    "watch on %s%s interrupted (%s); resuming at revision %d",
                    self.prefix,
                    prefix,
                    e,
                    next_rev,
                )
                if not isinstance(e, StoreUnavailableError):
                    self._conn.reset(channel)
                await asyncio.sleep(backoff)
                # Short: after an etcd election the decisions wait on this copy of the store.
                backoff = min(backoff * 2, 0.2)
            finally:
                if call is not None:
                    call.cancel()

    async def close(self) -> None:
        self._closed = True
        await self._conn.close()


class _StreamEnded(Exception):
    pass


async def _stream_io(step: Awaitable[T]) -> T:
    try:
        return await step
    except asyncio.CancelledError:
        if not closed_under_call():
            raise
        raise _StreamEnded("its connection was closed (moved to another endpoint)") from None


_RETRY_CODES = (
    rpc.StatusCode.UNAVAILABLE,
    rpc.StatusCode.DEADLINE_EXCEEDED,
    rpc.StatusCode.CANCELLED,
    rpc.StatusCode.INTERNAL,
    rpc.StatusCode.UNKNOWN,
)
