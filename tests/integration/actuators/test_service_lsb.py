"""The LSB actuator driving a real init script (written to a temp dir)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from nodeagent.actuators import (
    Actuator,
    ActuatorContext,
    ActuatorError,
    State,
)
from nodeagent.actuators.procinfo import read_proc_stat
from tests.integration.actuators.specs import create, limits

pytestmark = pytest.mark.slow

# The daemon keeps the script's stdout open on purpose: the actuator must not wait for
# it to close. Liveness reads /proc because a reparented zombie still answers kill -0.
SCRIPT = """#!/bin/sh
DIR=$(dirname "$0")
PIDFILE="$DIR/svc.pid"
alive() { [ -d /proc/$1 ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status; }
case "$1" in
  start)
    [ -f "$DIR/broken" ] && { echo "config file missing"; exit 6; }
    [ -f "$DIR/slow" ] && sleep 30
    if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE")"; then exit 0; fi
    setsid sleep 300 &
    echo $! > "$PIDFILE"
    echo "started"; exit 0 ;;
  stop)
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null; rm -f "$PIDFILE"; fi
    exit 0 ;;
  status)
    if [ -f "$PIDFILE" ]; then
      if alive "$(cat "$PIDFILE")"; then echo "running"; exit 0; fi
      echo "dead, pid file left"; exit 1
    fi
    echo "not running"; exit 3 ;;
  *) echo "usage: $0 start|stop|status"; exit 2 ;;
esac
"""


def make_script(tmp_path: Path) -> Path:
    script = tmp_path / "vigil-test-svc"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    return script


def actuator(script: Path, start_timeout: float = 5.0) -> Actuator:
    ctx = ActuatorContext(
        resource="grp/lsb", run_dir=script.parent, timeouts=limits(start=start_timeout)
    )
    return create({"service": {"lsb": str(script)}}, ctx)


def daemon_pid(script: Path) -> int:
    return int((script.parent / "svc.pid").read_text())


async def test_lsb_start_status_stop(tmp_path: Path) -> None:
    script = make_script(tmp_path)
    svc = actuator(script)
    obs = await svc.observe()
    assert obs.state is State.STOPPED and "exit 3" in obs.detail
    began = time.monotonic()
    await svc.start()
    assert time.monotonic() - began < 2.0  # did not wait for the daemon's stdout
    pid = daemon_pid(script)
    await svc.start()  # no-op
    assert daemon_pid(script) == pid
    assert (await svc.observe()).state is State.RUNNING
    await svc.stop()
    assert (await svc.observe()).state is State.STOPPED
    for _ in range(100):
        stat = read_proc_stat(pid)
        if stat is None or not stat.alive:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("daemon survived stop")


async def test_lsb_dead_daemon_is_failed(tmp_path: Path) -> None:
    script = make_script(tmp_path)
    svc = actuator(script)
    await svc.start()
    os.kill(daemon_pid(script), signal.SIGKILL)
    await asyncio.sleep(0.1)
    obs = await svc.observe()
    assert obs.state is State.FAILED and "dead but pid file exists" in obs.detail
    await svc.stop()
    assert (await svc.observe()).state is State.STOPPED


async def test_lsb_start_failure_names_the_lsb_meaning(tmp_path: Path) -> None:
    script = make_script(tmp_path)
    (tmp_path / "broken").touch()
    with pytest.raises(ActuatorError, match=r"exited 6 \(program is not configured\).*config"):
        await actuator(script).start()


async def test_lsb_start_timeout_kills_the_script(tmp_path: Path) -> None:
    script = make_script(tmp_path)
    (tmp_path / "slow").touch()
    began = time.monotonic()
    with pytest.raises(ActuatorError, match=r"start did not finish within 0.5s"):
        await actuator(script, start_timeout=0.5).start()
    assert time.monotonic() - began < 2.0
    assert not (tmp_path / "svc.pid").exists()


async def test_lsb_missing_script(tmp_path: Path) -> None:
    svc = actuator(tmp_path / "absent")
    obs = await svc.observe()
    # Not installed here: nothing of it can run here (a witness, say); a start says why.
    assert obs.state is State.STOPPED and "is not installed here" in obs.detail
    with pytest.raises(ActuatorError, match="install the package"):
        await svc.start()
