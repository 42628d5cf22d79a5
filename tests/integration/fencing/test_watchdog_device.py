"""The Watchdog class against a watchdog device we provide (watchdogfs.py, a FUSE file
with the watchdog ioctls that kills a stand-in node process when it fires)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeagent.fencing.watchdog import Watchdog

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None,
        reason="needs /dev/fuse and fusermount3 (fuse3) for the test watchdog",
    ),
]
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Rig:
    device: str
    victim: subprocess.Popen[bytes]
    events: Path

    def log(self) -> str:
        return self.events.read_text() if self.events.exists() else ""

    def victim_alive(self) -> bool:
        return self.victim.poll() is None


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    mount = tmp_path / "mnt"
    mount.mkdir()
    events = tmp_path / "events"
    victim = subprocess.Popen(["sleep", "600"], start_new_session=True)
    fs = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.fencing.watchdogfs", str(mount),
         str(victim.pid), str(events)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=(tmp_path / "fs.log").open("wb"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not (mount / "watchdog").exists():
            assert fs.poll() is None and time.monotonic() < deadline, (
                tmp_path / "fs.log"
            ).read_text()
            time.sleep(0.05)
        yield Rig(str(mount / "watchdog"), victim, events)
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mount)], check=False)
        for proc in (fs, victim):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)


def test_petted_it_does_not_fire_and_disarms_on_an_orderly_stop(rig: Rig) -> None:
    dog = Watchdog(rig.device, timeout=1)
    assert dog.arm() == 1
    for _ in range(8):  # 2 s: twice the timeout
        dog.pet()
        time.sleep(0.25)
    dog.disarm()
    time.sleep(1.5)
    assert rig.victim_alive(), rig.log()
    assert "settimeout 1" in rig.log() and "keepalive" in rig.log()
    assert "release stopped" in rig.log() and "fired" not in rig.log()


def test_it_fires_when_the_node_stops_petting(rig: Rig) -> None:
    dog = Watchdog(rig.device, timeout=1)
    dog.arm()
    dog.pet()
    started = time.monotonic()
    while rig.victim_alive() and time.monotonic() - started < 5:
        time.sleep(0.05)
    assert not rig.victim_alive(), rig.log()
    assert 0.8 < time.monotonic() - started < 2.0
    assert "fired killed" in rig.log()
    dog.disarm()


def test_a_crash_without_magic_close_still_fires(rig: Rig) -> None:
    dog = Watchdog(rig.device, timeout=1)
    dog.arm()
    fd = dog._fd
    assert fd is not None
    os.close(fd)  # the process died: its file closed without the 'V'
    dog._fd = None
    rig.victim.wait(timeout=3)
    assert "release without magic close" in rig.log() and "fired killed" in rig.log()


async def test_run_pets_until_cancelled_then_disarms(rig: Rig) -> None:
    dog = Watchdog(rig.device, timeout=1)
    task = asyncio.create_task(dog.run())
    await asyncio.sleep(2.5)
    assert rig.victim_alive(), rig.log()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not dog.armed
    await asyncio.sleep(1.5)
    assert rig.victim_alive() and "release stopped" in rig.log(), rig.log()
