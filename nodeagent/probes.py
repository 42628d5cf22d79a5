"""Health probes of a running service: tcp connect, http status, exec exit code.

A `ProbeRunner` runs one probe every `period` (after `initialDelay`), bounds each run
by `timeout`, counts consecutive failures, and calls back once when the count reaches
`failureThreshold` (and once on recovery), so the reconciler treats the resource as
failed exactly like a crash, without being called on every failing probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nodeagent.actuators.commands import run_command
from nodeagent.actuators.parsing import (
    ConfigError,
    parse_duration,
    reject_unknown,
    require_argv,
    require_mapping,
    require_positive_int,
    require_str,
)

_STATUS_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3}))?\s*$")


@dataclass(frozen=True)
class TcpCheck:
    port: int
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class HttpCheck:
    url: str
    expect_status: tuple[int, int] = (200, 399)


@dataclass(frozen=True)
class ExecCheck:
    command: tuple[str, ...]


Check = TcpCheck | HttpCheck | ExecCheck


def _port(value: object, where: str) -> int:
    port = require_positive_int(value, where)
    if port > 65535:
        raise ConfigError(f"{where}: {port} is not a TCP port (1-65535)")
    return port


def parse_status_range(value: object, where: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str) and (m := _STATUS_RANGE.match(value)):
        low, high = int(m.group(1)), int(m.group(2) or m.group(1))
    else:
        raise ConfigError(f"{where}: expected a status or a range like '200-399', got {value!r}")
    if not 100 <= low <= high <= 599:
        raise ConfigError(f"{where}: {value!r} is not a range of HTTP statuses within 100-599")
    return low, high


def _parse_http(spec: object) -> HttpCheck:
    where = "probe.http"
    http = require_mapping(spec, where)
    reject_unknown(http, {"url", "port", "path", "host", "scheme", "expectStatus"}, where)
    expect = parse_status_range(http.get("expectStatus", "200-399"), f"{where}.expectStatus")
    if "url" in http:
        if "port" in http or "path" in http:
            raise ConfigError(f"{where}: give either url, or port (+path, host), not both")
        url = require_str(http["url"], f"{where}.url")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}.url: {url!r} must look like http://127.0.0.1:8080/health")
    else:
        if "port" not in http:
            raise ConfigError(f"{where}: give url, or port (and optionally path and host)")
        port = _port(http["port"], f"{where}.port")
        path = require_str(http.get("path", "/"), f"{where}.path")
        if not path.startswith("/"):
            raise ConfigError(f"{where}.path: {path!r} must start with '/'")
        host = require_str(http.get("host", "127.0.0.1"), f"{where}.host")
        scheme = require_str(http.get("scheme", "http"), f"{where}.scheme")
        if scheme not in ("http", "https"):
            raise ConfigError(f"{where}.scheme: expected http or https, got {scheme!r}")
        netloc = f"[{host}]" if ":" in host else host
        url = f"{scheme}://{netloc}:{port}{path}"
    return HttpCheck(url=url, expect_status=expect)


def parse_check(spec: Mapping[str, Any]) -> Check:
    kinds = [k for k in ("tcp", "http", "exec") if k in spec]
    if len(kinds) != 1:
        raise ConfigError(
            f"probe: give exactly one of tcp, http, exec; got {', '.join(kinds) or 'none'}"
        )
    kind = kinds[0]
    if kind == "tcp":
        tcp = require_mapping(spec["tcp"], "probe.tcp")
        reject_unknown(tcp, {"port", "host"}, "probe.tcp")
        host = require_str(tcp.get("host", "127.0.0.1"), "probe.tcp.host")
        return TcpCheck(port=_port(tcp.get("port"), "probe.tcp.port"), host=host)
    if kind == "http":
        return _parse_http(spec["http"])
    value = spec["exec"]
    if isinstance(value, Mapping):  # {exec: {command: [...]}} as well as {exec: [...]}
        reject_unknown(value, {"command"}, "probe.exec")
        return ExecCheck(require_argv(value.get("command"), "probe.exec.command"))
    return ExecCheck(require_argv(value, "probe.exec"))


@dataclass(frozen=True)
class ProbeConfig:
    check: Check
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    initial_delay: float = 0.0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ProbeConfig:
        spec = require_mapping(spec, "probe")
        reject_unknown(
            spec,
            {"tcp", "http", "exec", "period", "timeout", "failureThreshold", "initialDelay"},
            "probe",
        )
        default = cls(check=TcpCheck(port=1))
        config = cls(
            check=parse_check(spec),
            period=parse_duration(spec.get("period", default.period), "probe.period"),
            timeout=parse_duration(spec.get("timeout", default.timeout), "probe.timeout"),
            failure_threshold=require_positive_int(
                spec.get("failureThreshold", default.failure_threshold), "probe.failureThreshold"
            ),
            initial_delay=parse_duration(
                spec.get("initialDelay", default.initial_delay), "probe.initialDelay"
            ),
        )
        if config.period <= 0 or config.timeout <= 0:
            raise ConfigError("probe.period and probe.timeout must be greater than zero")
        if config.timeout > config.period:
            raise ConfigError(
                f"probe.timeout ({config.timeout:g}s) is longer than probe.period "
                f"({config.period:g}s); shorten the timeout or lengthen the period"
            )
        return config


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    duration: float


async def _tcp(check: TcpCheck) -> str:
    _, writer = await asyncio.open_connection(check.host, check.port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return f"tcp {check.host}:{check.port} accepted the connection"


async def _http(check: HttpCheck) -> tuple[bool, str]:
    parts = urllib.parse.urlsplit(check.url)
    tls = None
    if parts.scheme == "https":
        # Like kubelet: a liveness probe checks the service answers, not its certificate.
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    port = parts.port or (443 if tls else 80)
    reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=tls)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: vigil-probe\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = (await reader.readline()).decode("latin-1").strip()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    fields = line.split()
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        return False, f"GET {check.url}: not an HTTP response: {line[:80]!r}"
    status = int(fields[1])
    low, high = check.expect_status
    return low <= status <= high, f"GET {check.url} -> {status} (expected {low}-{high})"


async def _exec(check: ExecCheck) -> tuple[bool, str]:
    result = await run_command(check.command)
    tail = result.tail(200)
    said = f": {tail}" if tail else ""
    return result.returncode == 0, f"{check.command[0]} exited {result.returncode}{said}"


async def run_check(check: Check, limit: float) -> ProbeResult:
    """Run one probe; never raises for a failing service (that is a failed result)."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            if isinstance(check, TcpCheck):
                ok, detail = True, await _tcp(check)
            elif isinstance(check, HttpCheck):
                ok, detail = await _http(check)
            else:
                ok, detail = await _exec(check)
    except TimeoutError:
        ok, detail = False, f"no answer within {limit:g}s"
    except (OSError, ssl.SSLError) as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return ProbeResult(ok, detail, time.monotonic() - began)


@dataclass(frozen=True)
class ProbeStatus:
    consecutive_failures: int = 0
    probes_run: int = 0
    failed: bool = False  # the threshold was reached and no success followed yet
    last: ProbeResult | None = field(default=None)


Callback = Callable[[ProbeStatus], Awaitable[None] | None]


class ProbeRunner:
    def __init__(
        self,
        config: ProbeConfig,
        on_failure: Callback,
        on_recovery: Callback | None = None,
    ) -> None:
        self.config = config
        self.on_failure = on_failure
        self.on_recovery = on_recovery
        self.status = ProbeStatus()
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> ProbeStatus:
        """Run one probe, update the counters and fire callbacks on state changes."""
        result = await run_check(self.config.check, self.config.timeout)
        before = self.status
        if result.ok:
            self.status = ProbeStatus(0, before.probes_run + 1, False, result)
            if before.failed and self.on_recovery is not None:
                await _call(self.on_recovery, self.status)
            return self.status
        failures = before.consecutive_failures + 1
        crossed = failures >= self.config.failure_threshold and not before.failed
        self.status = replace(
            before,
            consecutive_failures=failures,
            probes_run=before.probes_run + 1,
            failed=before.failed or crossed,
            last=result,
        )
        if crossed:
            await _call(self.on_failure, self.status)
        return self.status

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.config.initial_delay)
        while True:
            began = loop.time()
            await self.step()
            await asyncio.sleep(max(0.0, self.config.period - (loop.time() - began)))

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="probe")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _call(callback: Callback, status: ProbeStatus) -> None:
    outcome = callback(status)
    if inspect.isawaitable(outcome):
        await outcome
