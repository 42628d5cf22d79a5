"""Probes against real local servers and processes (loopback only)."""

from __future__ import annotations

import asyncio
import time

import pytest

from controller.api.group import Probe
from nodeagent.probes import ProbeRunner, ProbeStatus, run_check

pytestmark = pytest.mark.slow


def probe(**spec: object) -> Probe:
    """A probe as the API decodes it (the runner reads nothing else)."""
    return Probe.model_validate(spec)


def tcp(port: int) -> Probe:
    return probe(tcp={"port": port})


def http(port: int, path: str, expect: str = "200-399") -> Probe:
    return probe(http={"port": port, "path": path, "expectStatus": expect})


def argv(*command: str) -> Probe:
    return probe(exec={"command": list(command)})


async def http_server(hang: bool = False) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        if hang:
            await asyncio.sleep(30)
        status = "200 OK" if b" /health " in request else "503 Service Unavailable"
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_tcp_probe() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    assert (await run_check(tcp(port), 1.0)).ok
    server.close()
    await server.wait_closed()
    result = await run_check(tcp(port), 1.0)
    assert not result.ok and "ConnectionRefusedError" in result.detail


async def test_http_probe_status_ranges() -> None:
    server, port = await http_server()
    async with server:
        ok = await run_check(http(port, "/health"), 1.0)
        assert ok.ok and "-> 200" in ok.detail
        bad = await run_check(http(port, "/other"), 1.0)
        assert not bad.ok and "-> 503 (expected 200-399)" in bad.detail
        assert (await run_check(http(port, "/x", "503"), 1.0)).ok


async def test_http_probe_times_out_on_a_silent_server() -> None:
    server, port = await http_server(hang=True)
    async with server:
        began = time.monotonic()
        result = await run_check(http(port, "/health"), 0.3)
        assert not result.ok and "no answer within 0.3s" in result.detail
        assert time.monotonic() - began < 1.0


async def test_exec_probe() -> None:
    assert (await run_check(argv("true"), 1.0)).ok
    result = await run_check(argv("sh", "-c", "echo not ready; exit 2"), 1.0)
    assert not result.ok and "exited 2: not ready" in result.detail
    began = time.monotonic()
    slow = await run_check(argv("sleep", "10"), 0.2)
    assert not slow.ok and time.monotonic() - began < 1.0


async def test_runner_calls_back_once_at_threshold_and_on_recovery() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    failures: list[ProbeStatus] = []
    recoveries: list[ProbeStatus] = []

    async def recovered(status: ProbeStatus) -> None:
        recoveries.append(status)

    config = probe(tcp={"port": port}, period="50ms", timeout="50ms", failureThreshold=3)
    runner = ProbeRunner(config, failures.append, recovered)
    runner.start()
    try:
        await asyncio.sleep(0.2)
        assert runner.status.probes_run >= 2 and runner.status.consecutive_failures == 0
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.5)  # ~10 failing probes: the callback fires once
        assert len(failures) == 1 and failures[0].consecutive_failures == 3
        assert runner.status.failed and runner.status.consecutive_failures > 3
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        await asyncio.sleep(0.2)
        assert len(recoveries) == 1 and not runner.status.failed
    finally:
        await runner.stop()
        server.close()


async def test_initial_delay_postpones_the_first_probe() -> None:
    config = probe(exec={"command": ["true"]}, period="50ms", timeout="50ms", initialDelay="400ms")
    runner = ProbeRunner(config, lambda status: None)
    runner.start()
    try:
        await asyncio.sleep(0.25)
        assert runner.status.probes_run == 0
        await asyncio.sleep(0.35)
        assert runner.status.probes_run >= 1
    finally:
        await runner.stop()
