"""The serial transport over a pty null-modem the test controls (lab/serial_line.py's
RelayLine, in this process): frames cross, garbage is dropped and counted, a line that
dies is reopened, and two heartbeat services hear each other on the serial link alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.serial_line import RelayLine
from nodeagent.heartbeat.config import HeartbeatConfig, PeerAddress
from nodeagent.heartbeat.framing import SYNC
from nodeagent.heartbeat.serial import SerialLinkConfig, SerialTransport
from nodeagent.heartbeat.service import HeartbeatService
from nodeagent.heartbeat.timing import HeartbeatTiming

TIMING = HeartbeatTiming(keepalive=0.05, warntime=0.15, deadtime=0.25, initdead=1.0)
PACKET = b"VGHB\x01\x01\x00\x40" + bytes(range(56))  # magic, version, type, length 64


@pytest.fixture
def line(tmp_path: Path) -> Iterator[RelayLine]:
    relay = RelayLine(tmp_path / "ttyA", tmp_path / "ttyB").start()
    try:
        yield relay
    finally:
        relay.stop()


async def until(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.01)


def transport(path: Path, name: str = "serial0") -> SerialTransport:
    return SerialTransport(SerialLinkConfig(name, str(path)), reopen_min=0.02, reopen_max=0.1)


async def test_frames_cross_garbage_is_counted_and_a_dead_line_is_reopened(
    line: RelayLine,
) -> None:
    got: list[tuple[bytes, object]] = []
    a, b = transport(line.links[0]), transport(line.links[1])
    await a.open(lambda d, s: None)
    await b.open(lambda d, s: got.append((d, s)))
    try:
        assert a.is_open and b.is_open
        assert a.broadcast(PACKET) == 1
        await until(lambda: len(got) == 1)
        assert got[0] == (PACKET, "serial0")

        # Garbage, a torn frame and a false sync between two good frames.
        frame = bytes(line.sent[0][-(len(PACKET) + 8) :])
        line.inject(1, b"\x00noise\xff" + frame[:20] + SYNC + b"\x01\x00junk")
        a.reply(PACKET, None)
        await until(lambda: len(got) == 2)
        stats = b.stats()
        assert stats["dropped_bytes"] >= 20 + 7 and stats["bad_frames"] >= 1

        # The line dies (socat gone): reads fail, the port is reopened on the new pty.
        line.restart()
        await until(lambda: b.reopens >= 1 and a.reopens >= 1)
        assert b.is_open and b.last_error is None
        a.broadcast(PACKET)
        await until(lambda: len(got) == 3)
    finally:
        a.close()
        b.close()


async def test_a_missing_device_does_not_fail_the_start_and_is_retried(tmp_path: Path) -> None:
    link = transport(tmp_path / "nothing")
    await link.open(lambda d, s: None)
    try:
        assert not link.is_open and link.stats()["open"] == 0
        assert link.last_error is not None and "nothing" in link.last_error
        assert link.broadcast(PACKET) == 0
        relay = RelayLine(tmp_path / "nothing", tmp_path / "other").start()
        try:
            await until(lambda: link.is_open)
            assert link.reopens == 1
        finally:
            link.close()
            relay.stop()
    finally:
        link.close()


def config(node: str, peer: str) -> HeartbeatConfig:
    return HeartbeatConfig(
        node=node,
        cluster="c1",
        key=b"k" * 32,
        timing=TIMING,
        address="127.0.0.1",
        peers=(PeerAddress(peer, "127.0.0.1"),),
    )


async def test_two_services_hear_each_other_on_the_serial_link_alone(line: RelayLine) -> None:
    a = HeartbeatService(config("a", "b"), links=[transport(line.links[0])])
    b = HeartbeatService(config("b", "a"), links=[transport(line.links[1])])
    async with a, b:
        await until(lambda: a.snapshot()["serving"] and b.snapshot()["serving"])
        assert a.snapshot()["peers"]["b"]["state"] == "up"
        assert a.read(lambda m, now: m.link_silent(now)) == {"b": {"serial0": False}}
        # A replayed stretch of the line: every frame refused as a replay, and counted.
        line.inject(1, bytes(line.sent[0]))
        await until(lambda: b.link_stats()["serial0"]["replays"] > 0)
        assert b.snapshot()["serving"]
        # The cable cut: the link goes silent after deadtime, and comes back.
        line.pause()
        await until(lambda: a.read(lambda m, now: m.link_silent(now))["b"]["serial0"])
        line.pause(False)
        await until(lambda: not a.read(lambda m, now: m.link_silent(now))["b"]["serial0"])
        await until(lambda: a.snapshot()["serving"] and b.snapshot()["serving"], 5.0)


def test_the_liveness_process_loads_pyserial_only_for_a_serial_link() -> None:
    """The liveness process is forked first and kept small: pyserial is imported when a
    serial link opens, not with the heartbeat modules."""
    import subprocess
    import sys

    code = (
        "import sys, nodeagent.liveness_process, nodeagent.heartbeat.service;"
        "assert 'serial' not in sys.modules, 'pyserial imported at start'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
