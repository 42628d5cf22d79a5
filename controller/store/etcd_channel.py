"""gRPC channel to one of several etcd endpoints, and grpc-error translation.

Vigil builds the channel itself (aetcd's Client only makes insecure channels) and uses
aetcd's generated etcd v3 stubs on it. The channel is opened lazily; on failure the next
endpoint is tried. Every grpc error is turned into a StoreError here.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aetcd import rpc

from controller.store.errors import (
    CompactedError,
    LeaseNotFoundError,
    PermissionDeniedError,
    StoreError,
    StoreUnavailableError,
    TxnTooLargeError,
)

grpc: Any = importlib.import_module("grpc")  # grpcio ships no type information

_MAX_MESSAGE = 256 * 1024 * 1024
STARTING_PAUSE = 0.1  # seconds between connection rounds while etcd is starting


class _RequireLeader(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Ask etcd to refuse a request at once when the member has no leader.

    A member cut off from its peers still accepts connections, but a request to it
    hangs until the client's timeout, leaving no time to try the next endpoint. With
    `hasleader` metadata (etcd's WithRequireLeader) it answers "no leader" (UNAVAILABLE)
    as soon as it has lost its leader, and idempotent calls move on.
    """

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), ("hasleader", "true")]
        return await continuation(details._replace(metadata=metadata), request)


@dataclass(frozen=True)
class EtcdEndpoint:
    url: str
    target: str
    secure: bool


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: str | None = None
    cert_key: str | None = None
    cert_cert: str | None = None

    def credentials(self) -> Any:
        def read(path: str | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as e:
                raise StoreError(f"cannot read etcd TLS {what} {path!r}: {e.strerror}") from e

        if (self.cert_key is None) != (self.cert_cert is None):
            raise StoreError("etcd TLS client auth needs both cert_key and cert_cert (or neither)")
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_cert, "CA certificate"),
            private_key=read(self.cert_key, "client key"),
            certificate_chain=read(self.cert_cert, "client certificate"),
        )


def parse_endpoint(raw: str, tls: bool) -> EtcdEndpoint:
    text = raw.strip()
    secure = tls
    if text.startswith("https://"):
        secure, text = True, text[len("https://") :]
    elif text.startswith("http://"):
        text = text[len("http://") :]
    elif "://" in text:
        raise ValueError(f"etcd endpoint {raw!r}: only http:// and https:// are supported")
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"etcd endpoint {raw!r} must look like http://HOST:PORT (e.g. http://127.0.0.1:2379)"
        )
    scheme = "https" if secure else "http"
    return EtcdEndpoint(f"{scheme}://{text}", text, secure)


def closed_under_call() -> bool:
    """True when a CancelledError came from grpc, not from cancelling this task.

    grpc cancels the calls still open on a channel once its close grace ends (a channel
    is closed when the connection moves to another endpoint), and a cancelled call raises
    asyncio.CancelledError in its caller. That is a lost connection, to retry like any
    other; taken for a cancellation it silently ended the watch that kept a node's copy
    of the store current.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


def not_sent(e: Exception) -> bool:
    """True when the request was certainly not applied, so even a write is safe to retry:
    grpc failed before it left, or etcd refused it for want of a leader."""
    if not isinstance(e, rpc.AioRpcError) or e.code() != rpc.StatusCode.UNAVAILABLE:
        return False
    d = (e.details() or "").lower()
    return "failed to connect" in d or "connection refused" in d or leaderless(e)


def leaderless(e: Exception) -> bool:
    """etcd's answer to a request carrying `hasleader` while the member has no leader:
    given before anything is proposed."""
    if not isinstance(e, rpc.AioRpcError) or e.code() != rpc.StatusCode.UNAVAILABLE:
        return False
    return "no leader" in (e.details() or "").lower()


class EtcdConnection:
    def __init__(self, endpoints: list[str], timeout: float, tls: TLSFiles | None) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints given: pass --endpoints or set VIGIL_ENDPOINTS")
        want_tls = tls is not None and tls.ca_cert is not None
        self.endpoints = [parse_endpoint(e, want_tls) for e in endpoints]
        self.urls = [e.url for e in self.endpoints]
        self.timeout = timeout
        self.tls = tls or TLSFiles()
        self.channel: Any = None
        self.kv: Any = None
        self.watch: Any = None
        self.lease: Any = None
        self._index = 0
        self._lock = asyncio.Lock()
        self._closing: dict[asyncio.Task[None], Any] = {}
        # Called once, the first time every endpoint refuses: a command started right after
        # its node's agent then waits for etcd to listen, and says so, instead of failing.
        self.on_wait: Callable[[str], object] | None = None
        self._waited = False

    def _options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            # Reconnect quickly after an etcd restart instead of grpc's 1 s..120 s backoff.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            # etcd's server enforces >= 5 s between pings; find dead peers on watch streams.
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", max(int(self.timeout * 1000), 1000)),
        ]

    def _open(self, ep: EtcdEndpoint) -> Any:
        if ep.secure:
            return rpc.secure_channel(
                ep.target,
                self.tls.credentials(),
                options=self._options(),
                interceptors=[_RequireLeader()],
            )
        return rpc.insecure_channel(
            ep.target, options=self._options(), interceptors=[_RequireLeader()]
        )

    def usable(self) -> bool:
        if self.channel is None:
            return False
        state = self.channel.get_state(try_to_connect=False)
        return bool(
            state
            not in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)
        )

    async def ensure(self, deadline: float) -> Any:
        """Return a channel that is connected or connecting, trying each endpoint once; with
        ``on_wait`` set, keep trying until the deadline while every endpoint refuses."""
        if self.usable():
            return self.channel
        async with self._lock:
            while True:
                if self.usable():
                    return self.channel
                failures = await self._connect_round(deadline)
                if failures is None:
                    return self.channel
                left = deadline - time.monotonic()
                # Once refused, any failure may be the same etcd still starting (listening
                # before it serves): keep waiting for it until the deadline.
                refused = all(f.endswith(": connection refused") for f in failures)
                starting = refused or self._waited
                if self.on_wait is None or not starting or left <= STARTING_PAUSE:
                    break
                if not self._waited:
                    self._waited = True
                    self.on_wait(
                        f"etcd at {', '.join(self.urls)} refuses connections (starting, or "
                        f"not running); waiting up to {self.timeout:g}s"
                    )
                await asyncio.sleep(STARTING_PAUSE)
            if len(self.endpoints) == 1:
                failures = [f.split(": ", 1)[1] for f in failures]
            raise StoreUnavailableError(self.urls, "; ".join(failures))

    async def _connect_round(self, deadline: float) -> list[str] | None:
        """Try each endpoint once; None once one is connected, else why each failed."""
        self._drop()
        failures: list[str] = []
        n = len(self.endpoints)
        for i in range(n):
            ep = self.endpoints[(self._index + i) % n]
            left = deadline - time.monotonic()
            if left <= 0:
                failures.append(f"{ep.url}: not tried (out of time)")
                continue
            channel = self._open(ep)
            budget = max(left / (n - i), min(0.5, left))
            reason = await self._wait_ready(channel, time.monotonic() + budget)
            if reason is None:
                self._index = (self._index + i) % n
                self._use(channel)
                return None
            failures.append(f"{ep.url}: {reason}")
            await channel.close()
        return failures

    async def _wait_ready(self, channel: Any, deadline: float) -> str | None:
        ready = grpc.ChannelConnectivity.READY
        state = channel.get_state(try_to_connect=True)
        while state != ready:
            if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                # None: the probe got through, so the failure was one attempt (a TLS
                # handshake cut short on a saturated host) and the channel reconnected.
                return await self._why_failed(channel)
            left = deadline - time.monotonic()
            if left <= 0:
                return f"no connection within {self.timeout:g}s"
            try:
                await asyncio.wait_for(channel.wait_for_state_change(state), left)
            except TimeoutError:
                return f"no connection within {self.timeout:g}s"
            state = channel.get_state(try_to_connect=True)
        return None

    async def _why_failed(self, channel: Any) -> str | None:
        """The reason a channel in TRANSIENT_FAILURE fails; None when a call gets through."""
        # grpc only says TRANSIENT_FAILURE; a fail-fast call carries the real reason.
        try:
            await rpc.KVStub(channel).Range(rpc.RangeRequest(key=b"\0"), timeout=0.5)
        except rpc.AioRpcError as e:
            return describe_unavailable(e.details() or str(e.code()))
        return None

    def _use(self, channel: Any) -> None:
        self.channel = channel
        self.kv = rpc.KVStub(channel)
        self.watch = rpc.WatchStub(channel)
        self.lease = rpc.LeaseStub(channel)

    def _drop(self) -> None:
        old, self.channel = self.channel, None
        if old is not None:
            # Let calls still running on it finish instead of cancelling them.
            task = asyncio.create_task(old.close(grace=self.timeout))
            self._closing[task] = old
            task.add_done_callback(lambda t: self._closing.pop(t, None))

    def reset(self, channel: Any) -> None:
        """Abandon channel (if still current) so the next call reconnects, next endpoint first."""
        if channel is not None and channel is self.channel:
            self._index = (self._index + 1) % len(self.endpoints)
            self._drop()

    async def close(self) -> None:
        old, self.channel = self.channel, None
        if old is not None:
            await old.close()
        for task, channel in list(self._closing.items()):
            task.cancel()
            await channel.close()


def describe_unavailable(details: str) -> str:
    d = details.lower()
    if "connection refused" in d:
        return "connection refused"
    if "no leader" in d:
        return "etcd has no leader (quorum lost?)"
    if "request timed out" in d:
        return "etcd request timed out (quorum lost, or disk too slow)"
    if "handshake read failed" in d or "handshake timed out" in d:
        # The kernel accepted the connection, but no TLS answer came: a stopped (SIGSTOP),
        # hung or overloaded etcd; a certificate refusal has words of its own (below).
        return (
            f"etcd accepted the connection but never answered the TLS handshake ({details}): "
            "it is frozen, hung or overloaded; the certificates are not in question"
        )
    if any(w in d for w in ("ssl", "handshake", "certificate", "tsi_", "unwrap failed")):
        return (
            f"TLS handshake failed ({details}); check the CA certificate and the client "
            "certificate and key"
        )
    if "socket closed" in d and "failed to connect" in d:
        return (
            f"{details} (if etcd serves TLS, use an https:// endpoint with the CA and a "
            "client certificate)"
        )
    return details


def translate(
    e: Exception,
    conn: EtcdConnection,
    *,
    write: bool = False,
    lease_id: int | None = None,
    unsure: bool = False,
    timeout: float | None = None,
) -> StoreError:
    """Map a grpc failure of one request to the StoreError a caller can act on."""
    waited = timeout or conn.timeout
    if isinstance(e, StoreError):
        return e
    if isinstance(e, TimeoutError):
        return StoreUnavailableError(
            conn.urls, f"no answer within {waited:g}s (etcd without quorum, or overloaded)"
        )
    if not isinstance(e, rpc.AioRpcError):
        return StoreError(f"etcd request failed: {e!r}")
    code, details = e.code(), e.details() or ""
    c = rpc.StatusCode
    low = details.lower()
    maybe = " (the write may have been applied: re-read before retrying)" if unsure else ""
    if code == c.UNAVAILABLE:
        return StoreUnavailableError(conn.urls, describe_unavailable(details) + maybe)
    if code == c.DEADLINE_EXCEEDED:
        return StoreUnavailableError(
            conn.urls,
            f"no answer within {waited:g}s (etcd without quorum, or overloaded){maybe}",
        )
    if code == c.CANCELLED:
        return StoreUnavailableError(conn.urls, f"request cancelled: {details}{maybe}")
    if code == c.INVALID_ARGUMENT and (
        "too many operations" in low or "request is too large" in low
    ):
        return TxnTooLargeError(details)
    if code == c.RESOURCE_EXHAUSTED and "larger than max" in low:
        if write:
            return TxnTooLargeError(details)
        return StoreError(f"etcd's answer exceeds the client's message limit: {details}")
    if code == c.NOT_FOUND and "lease not found" in low:
        return LeaseNotFoundError(lease_id or 0)
    if code == c.OUT_OF_RANGE and "compacted" in low:
        return CompactedError(0)
    if code == c.PERMISSION_DENIED or (
        code == c.FAILED_PRECONDITION and "user name not found" in low
    ):
        # etcd's auth: the certificate's CN is no user, or its roles do not cover the
        # keys (or the call needs root). The store names the user and key (etcd.py).
        return PermissionDeniedError(f"permission denied: {details}", details)
    if code == c.UNAUTHENTICATED:
        return StoreError(
            f"etcd refused access: {details}; check the TLS CA / client certificate and key"
        )
    return StoreError(f"etcd error {code.name}: {details}")
