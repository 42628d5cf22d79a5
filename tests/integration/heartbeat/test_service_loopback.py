"""HeartbeatService in-process over loopback UDP: events, counters, scheduling."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from nodeagent.heartbeat.config import HeartbeatConfig, PeerAddress
from nodeagent.heartbeat.service import ChangeEvent, HeartbeatService
from nodeagent.heartbeat.timing import HeartbeatTiming

pytestmark = pytest.mark.slow

TIMING = HeartbeatTiming(keepalive=0.05, warntime=0.15, deadtime=0.25, initdead=1.0)
NAMES = ["a", "b", "c"]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def services(key: bytes = b"secret") -> list[HeartbeatService]:
    ports = dict(zip(NAMES, free_ports(3), strict=True))
    return [
        HeartbeatService(
            HeartbeatConfig(
                node=name,
                cluster="loop",
                key=key,
                timing=TIMING,
                address="127.0.0.1",
                port=ports[name],
                peers=tuple(PeerAddress(p, "127.0.0.1", ports[p]) for p in NAMES if p != name),
            )
        )
        for name in NAMES
    ]


async def collect(svc: HeartbeatService, into: list[ChangeEvent]) -> None:
    async for ev in svc.watch():
        into.append(ev)


async def test_services_converge_report_changes_and_detect_a_stop() -> None:
    svcs = services()
    events: list[ChangeEvent] = []
    watcher = asyncio.create_task(collect(svcs[0], events))
    await asyncio.sleep(0)
    for s in svcs:
        await s.start()
    try:
        started = time.monotonic()
        await asyncio.wait_for(svcs[0].changed.wait(), 1.0)
        await asyncio.sleep(0.5)
        kinds = {(e.kind, e.subject, e.new) for e in events}
        assert {("serving", "a", "true"), ("peer", "b", "up"), ("peer", "c", "up")} <= kinds
        for s in svcs:
            snap = s.snapshot()
            json.dumps(snap)
            assert snap["serving"] and snap["lease_remaining"] > TIMING.lease - 2 * TIMING.keepalive
            assert not snap["counters"]["rejected"]
        # Drift-free: the sequence tracks elapsed / keepalive (one heartbeat at start).
        expected = (time.monotonic() - started) / TIMING.keepalive
        assert expected - 2 <= svcs[0].membership.seq <= expected + 2
        assert svcs[0].counters.sent == 2 * svcs[0].membership.seq

        await svcs[2].stop()
        stopped = time.monotonic()
        events.clear()
        await asyncio.sleep(TIMING.deadtime + 3 * TIMING.keepalive)
        dead = next(e for e in events if (e.kind, e.subject, e.new) == ("peer", "c", "dead"))
        lost = next(e for e in events if (e.kind, e.subject, e.new) == ("lost", "c", "true"))
        assert TIMING.deadtime - TIMING.keepalive - 0.02 <= dead.at - stopped
        assert dead.at - stopped <= TIMING.deadtime + 2 * TIMING.keepalive
        assert lost.detail.startswith("c is lost")
        assert svcs[0].snapshot()["serving"]
    finally:
        watcher.cancel()
        for s in svcs[:2]:
            await s.stop()


async def test_garbage_and_wrong_key_are_counted_not_fatal() -> None:
    svcs = services()
    intruder = services(key=b"other")[2]
    # The intruder claims c's name and sends to a's port with the wrong key.
    intruder.links[0].config = intruder.links[0].config.__class__(  # type: ignore[attr-defined]
        name="cluster", bind="127.0.0.1", port=0,
        destinations=(("127.0.0.1", svcs[0].config.port),),
    )  # fmt: skip
    await svcs[0].start()
    await intruder.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for payload in (b"", b"hello", b"VGHB" + bytes(60)):
                s.sendto(payload, ("127.0.0.1", svcs[0].config.port))
        await asyncio.sleep(0.3)
        rejected = svcs[0].snapshot()["counters"]["rejected"]
        assert rejected["mac"] >= 3
        assert rejected["truncated"] + rejected.get("magic", 0) + rejected.get("version", 0) >= 2
        assert svcs[0].snapshot()["peers"]["c"]["state"] == "unknown"
    finally:
        await intruder.stop()
        await svcs[0].stop()
