"""The liveness path in a process of its own: a control plane blocked for many deadtimes
costs no heartbeat, no peer verdict and no serving lease, and reads a true lease the
moment it runs again; changes still reach it; the liveness process ends with its agent;
a control loop stuck for good gets its agent aborted (the watchdog)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeagent import fastpath
from nodeagent.heartbeat.config import HeartbeatConfig, PeerAddress
from nodeagent.liveness import HeartbeatLiveness
from nodeagent.liveness_link import LivenessLink

from .test_service_loopback import NAMES, TIMING, free_ports

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


def configs(key_file: Path) -> list[dict[str, Any]]:
    key_file.write_bytes(b"secret")
    ports = dict(zip(NAMES, free_ports(3), strict=True))
    out = []
    for name in NAMES:
        config = HeartbeatConfig(
            node=name,
            cluster="loop",
            key=b"secret",
            timing=TIMING,
            address="127.0.0.1",
            port=ports[name],
            peers=tuple(PeerAddress(p, "127.0.0.1", ports[p]) for p in NAMES if p != name),
        )
        out.append(fastpath.to_dict(config, str(key_file)))
    return out


@pytest.fixture
def heartbeat_log(tmp_path: Path) -> Iterator[Path]:
    """What the liveness processes log (they inherit this handler when forked)."""
    path = tmp_path / "liveness.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(process)d %(name)s: %(message)s"))
    logger = logging.getLogger("nodeagent")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


@pytest.fixture
def three(tmp_path: Path, heartbeat_log: Path) -> Iterator[list[LivenessLink]]:
    links = [
        LivenessLink.spawn(data, tmp_path / f"lease-{i}.json", keepalive=TIMING.keepalive)
        for i, data in enumerate(configs(tmp_path / "key"))
    ]
    try:
        yield links
    finally:
        for link in links:
            link.close()


def bad_changes(log_file: Path) -> list[str]:
    """Every logged change that a healthy, well-connected node must never see."""
    bad = (" -> false", " -> warn", " -> dead", "lost c: false -> true", "blocked for")
    lines = log_file.read_text().splitlines()
    return [line for line in lines if any(b in line for b in bad) and "(start)" not in line]


async def serving_within(liveness: HeartbeatLiveness, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not liveness.serving():
        assert time.monotonic() < deadline, "the three processes never formed a majority"
        await asyncio.sleep(0.05)


async def test_a_blocked_control_plane_costs_no_heartbeat_and_no_lease(
    three: list[LivenessLink], tmp_path: Path, heartbeat_log: Path
) -> None:
    for link in three:
        link.connect()
    liveness = HeartbeatLiveness(three[0], tmp_path / "lease-0.json", "a")
    liveness.start()
    woken = liveness.subscribe()
    await serving_within(liveness, 3.0)
    await asyncio.sleep(0.5)
    before = {name: view.incarnation for name, view in liveness.liveness().items()}
    assert bad_changes(heartbeat_log) == []
    # The control plane (this test's loop) blocked for eight deadtimes, as a big reconcile
    # turn or a full garbage collection of a big heap held it.
    time.sleep(8 * TIMING.deadtime)  # noqa: ASYNC251 - the blocked loop under test
    # At once, before this loop ran a single callback: the lease read is the current one.
    assert liveness.serving(), "a control plane that was busy read a stale, ended lease"
    assert bad_changes(heartbeat_log) == [], "the blocked control plane cost the liveness path"
    after = liveness.liveness()
    assert all(v.state == "up" and not v.lost for v in after.values())
    assert {name: view.incarnation for name, view in after.items()} == before  # no rejoin
    # Changes still reach this loop: a peer whose heartbeats stop is seen going dead here.
    woken.clear()
    await three[2].stop()
    await asyncio.wait_for(woken.wait(), 2.0)
    deadline = time.monotonic() + 2.0
    while liveness.liveness()["c"].state != "dead":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    # Still serving: a and b are a majority.
    assert liveness.serving()
    liveness.stop()


def _agent_script(body: str) -> str:
    return textwrap.dedent(
        """
        import asyncio, faulthandler, json, logging, os, sys, time
        from pathlib import Path
        from nodeagent.liveness_link import LivenessLink
        from nodeagent.loopwatch import LoopWatch
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        data = json.loads(sys.argv[1])
        lease = Path(sys.argv[2])
        """
    ) + textwrap.dedent(body)


def test_the_liveness_process_ends_with_its_agent(tmp_path: Path) -> None:
    data = configs(tmp_path / "key")[0]
    script = _agent_script(
        """
        link = LivenessLink.spawn(data, lease, keepalive=0.05)
        print(link.pid, flush=True)
        time.sleep(60)
        """
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(data), str(tmp_path / "l")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        child = int(agent.stdout.readline())
        assert _alive(child)
        assert Path(f"/proc/{child}/comm").read_text().strip() == "vigil-liveness"
        agent.kill()
        agent.wait(5)
        deadline = time.monotonic() + 2.0
        while _alive(child):
            assert time.monotonic() < deadline, "the liveness process outlived its agent"
            time.sleep(0.02)
    finally:
        agent.kill()
        agent.wait(5)


def test_the_watchdog_aborts_an_agent_whose_control_loop_is_stuck(tmp_path: Path) -> None:
    data = configs(tmp_path / "key")[0]
    script = _agent_script(
        """
        link = LivenessLink.spawn(data, lease, keepalive=0.05, control_deadline=0.6)
        faulthandler.enable()

        async def main() -> None:
            link.connect()
            watch = LoopWatch(1.0, "control-plane event loop", on_tick=link.beat)
            watch.start()
            await asyncio.sleep(1.5)  # ticking: not stuck
            print("ticked", flush=True)
            time.sleep(30)  # stuck for good: never yields again
            print("survived", flush=True)

        asyncio.run(main())
        """
    )
    started = time.monotonic()
    agent = subprocess.run(
        [sys.executable, "-c", script, json.dumps(data), str(tmp_path / "l")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert agent.returncode == -signal.SIGABRT, (agent.returncode, agent.stderr[-2000:])
    assert agent.stdout.split() == ["ticked"]
    assert "has not run for" in agent.stderr
    # faulthandler's dump: where the control loop was stuck.
    assert "Fatal Python error: Aborted" in agent.stderr and " in main" in agent.stderr
    assert took < 20, f"aborted only after {took:.1f} s"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_liveness_process_ends_the_agent(tmp_path: Path) -> None:
    data = configs(tmp_path / "key")[0]
    script = _agent_script(
        """
        link = LivenessLink.spawn(data, lease, keepalive=0.05)
        print(link.pid, flush=True)

        async def main() -> None:
            link.connect()
            await asyncio.sleep(30)

        asyncio.run(main())
        """
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(data), str(tmp_path / "l")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        child = int(agent.stdout.readline())
        os.kill(child, signal.SIGKILL)
        assert agent.wait(5) == 71
        assert agent.stderr is not None
        assert "the liveness process ended" in agent.stderr.read()
    finally:
        agent.kill()
        agent.wait(5)
