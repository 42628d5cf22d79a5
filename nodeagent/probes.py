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
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from controller.api.group import ExecProbe, HttpProbe, Probe, TcpProbe
from nodeagent.actuators.commands import run_command


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    duration: float


async def _tcp(check: TcpProbe) -> str:
    _, writer = await asyncio.open_connection(check.host, check.port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return f"tcp {check.host}:{check.port} accepted the connection"


async def _http(check: HttpProbe) -> tuple[bool, str]:
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
    low, high = check.status_range
    return low <= status <= high, f"GET {check.url} -> {status} (expected {low}-{high})"


async def _exec(check: ExecProbe) -> tuple[bool, str]:
    result = await run_command(check.command)
    tail = result.tail(200)
    said = f": {tail}" if tail else ""
    return result.returncode == 0, f"{check.command[0]} exited {result.returncode}{said}"


async def run_check(probe: Probe, limit: float) -> ProbeResult:
    """Run one probe; never raises for a failing service (that is a failed result)."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            if probe.tcp is not None:
                ok, detail = True, await _tcp(probe.tcp)
            elif probe.http is not None:
                ok, detail = await _http(probe.http)
            else:
                assert probe.exec is not None
                ok, detail = await _exec(probe.exec)
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
        probe: Probe,
        on_failure: Callback,
        on_recovery: Callback | None = None,
        on_result: Callable[[ProbeResult], None] | None = None,
    ) -> None:
        self.probe = probe
        self.period = probe.period.total_seconds()
        self.timeout = probe.timeout.total_seconds()
        self.on_failure = on_failure
        self.on_recovery = on_recovery
        self.on_result = on_result
        self.status = ProbeStatus()
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> ProbeStatus:
        """Run one probe, update the counters and fire callbacks on state changes."""
        result = await run_check(self.probe, self.timeout)
        if self.on_result is not None:
            self.on_result(result)
        before = self.status
        if result.ok:
            self.status = ProbeStatus(0, before.probes_run + 1, False, result)
            if before.failed and self.on_recovery is not None:
                await _call(self.on_recovery, self.status)
            return self.status
        failures = before.consecutive_failures + 1
        crossed = failures >= self.probe.failure_threshold and not before.failed
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
        await asyncio.sleep(self.probe.initial_delay.total_seconds())
        while True:
            began = loop.time()
            await self.step()
            await asyncio.sleep(max(0.0, self.period - (loop.time() - began)))

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
