"""The lease enforcer stops a node's floating IPs and processes when its lease ends,
whatever the agent does meanwhile, and not a moment before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.actuators.procinfo import read_proc_stat

pytestmark = pytest.mark.slow


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"venf-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (
            ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
            ["ip", "link", "set", "d0", "up"],
            ["ip", "link", "set", "d1", "up"],
            ["ip", "addr", "add", "10.123.0.1/24", "dev", "d0"],
            ["ip", "addr", "add", "10.123.0.50/24", "dev", "d0"],
        ):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def has_vip(netns: str) -> bool:
    out = subprocess.run(
        ["ip", "-n", netns, "-o", "addr", "show", "dev", "d0"], capture_output=True, text=True
    ).stdout
    return "10.123.0.50/24" in out


def record(run_dir: Path, name: str, proc: subprocess.Popen[bytes], starttime: int) -> None:
    (run_dir / "exec").mkdir(parents=True, exist_ok=True)
    data = {"pid": proc.pid, "pgid": proc.pid, "starttime": starttime, "argv": ["sleep"]}
    (run_dir / "exec" / f"{name}.pid").write_text(json.dumps(data))


def test_enforcer_acts_at_the_end_of_the_lease(netns: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    service = subprocess.Popen(["sleep", "300"], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    enforcer = None
    try:
        stat = read_proc_stat(service.pid)
        assert stat is not None
        record(run_dir, "web.service", service, stat.starttime)
        record(run_dir, "recycled", stranger, stat.starttime + 12345)  # not that process
        (run_dir / "vips.json").write_text(json.dumps({"addresses": ["10.123.0.50/24"]}))
        (run_dir / "lease.json").write_text(
            json.dumps({"expiry": time.monotonic() + 60, "stopMargin": 0.1})
        )
        enforcer = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "nodeagent.enforcer",
             "--run-dir", str(run_dir)],
        )  # fmt: skip
        deadline = time.monotonic() + 30  # the enforcer's start, on a busy machine
        while not (run_dir / "enforcer.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        expiry = time.monotonic() + 1.5
        (run_dir / "lease.json").write_text(json.dumps({"expiry": expiry, "stopMargin": 0.1}))
        time.sleep(0.8)
        assert has_vip(netns), "removed while the lease was valid"
        assert service.poll() is None
        deadline = time.monotonic() + 5
        while (has_vip(netns) or service.poll() is None) and time.monotonic() < deadline:
            time.sleep(0.01)
        stopped = time.monotonic()
        assert not has_vip(netns) and service.poll() is not None
        assert expiry - 0.1 <= stopped <= expiry + 0.3, stopped - expiry
        assert stranger.poll() is None, "a process whose start time does not match was killed"
        # A renewed lease stops the enforcing: a resource brought back stays.
        (run_dir / "lease.json").write_text(
            json.dumps({"expiry": time.monotonic() + 10, "stopMargin": 0.1})
        )
        subprocess.run(
            ["ip", "-n", netns, "addr", "add", "10.123.0.50/24", "dev", "d0"], check=True
        )
        time.sleep(1.5)
        assert has_vip(netns)
    finally:
        for proc in (service, stranger, enforcer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_one_enforcer_per_node(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "nodeagent.enforcer", "--run-dir", str(run_dir)]
    )
    try:
        deadline = time.monotonic() + 30
        while not (run_dir / "enforcer.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        second = subprocess.run(
            [sys.executable, "-m", "nodeagent.enforcer", "--run-dir", str(run_dir)], timeout=60
        )
        assert second.returncode == 0
        assert first.poll() is None
        assert (run_dir / "enforcer.lock").read_text().strip() == str(first.pid)
    finally:
        first.kill()
        first.wait()
        os.sync()
