"""The exec device: the site's own command, its status convention, its timeout."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from nodeagent.fencing import run_fence_action
from tests.unit.nodeagent.fencing.devices import device

pytestmark = [pytest.mark.slow]

SCRIPT = """#!/bin/sh
# A power switch kept in a file; power changes land one status read late, like a BMC.
state={state}
echo "$VIGIL_FENCE_TARGET $VIGIL_FENCE_ACTION" >> {log}
case "$VIGIL_FENCE_ACTION" in
  status) [ "$(cat $state)" = on ] && exit 0 || exit 2 ;;
  off|on) echo "$VIGIL_FENCE_ACTION" > $state; exit 0 ;;
esac
exit 1
"""


def switch(tmp_path: Path) -> tuple[Path, Path, Path]:
    state, log, script = tmp_path / "state", tmp_path / "log", tmp_path / "switch.sh"
    state.write_text("on\n")
    script.write_text(SCRIPT.format(state=state, log=log))
    script.chmod(0o755)
    return state, log, script


async def test_status_off_on_reboot(tmp_path: Path) -> None:
    state, log, script = switch(tmp_path)
    dev = device("sw", command=[str(script)], targets=["n1", "n2"], timeout="10s")
    out = await run_fence_action(dev, "n2", "status")
    assert (out.ok, out.power) == (True, "on"), out
    out = await run_fence_action(dev, "n2", "off")
    assert (out.ok, out.verified, out.power) == (True, True, "off"), out
    assert state.read_text().strip() == "off"
    out = await run_fence_action(dev, "n2", "reboot")
    assert (out.ok, out.verified, out.power) == (True, True, "on"), out
    assert log.read_text().splitlines() == [
        "n2 status", "n2 off", "n2 status", "n2 off", "n2 status", "n2 on", "n2 status",
    ]  # fmt: skip


async def test_a_failing_command_is_a_failure_with_its_output(tmp_path: Path) -> None:
    script = tmp_path / "fail.sh"
    script.write_text("#!/bin/sh\necho 'switch 3 says: no such outlet' >&2\nexit 1\n")
    script.chmod(0o755)
    out = await run_fence_action(device("sw", command=[str(script)]), "n1", "off")
    assert not out.ok and not out.verified
    assert "exited 1: switch 3 says: no such outlet" in out.message
    out = await run_fence_action(device("sw", command=[str(script)]), "n1", "status")
    assert not out.ok and out.power == "unknown"


async def test_a_missing_command_is_named(tmp_path: Path) -> None:
    out = await run_fence_action(device("sw", command=[str(tmp_path / "nope")]), "n1", "off")
    assert not out.ok and f"cannot run {tmp_path / 'nope'}" in out.message


async def test_a_hung_command_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = tmp_path / "hang.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nsleep 600 &\necho $! >> {pidfile}\nwait\n")
    script.chmod(0o755)
    started = time.monotonic()
    out = await run_fence_action(device("sw", command=[str(script)], timeout="1s"), "n1", "off")
    assert time.monotonic() - started < 2.0
    assert not out.ok and "timed out after 1 s while powering off" in out.message
    for pid in (int(p) for p in pidfile.read_text().split()):
        for _ in range(100):  # SIGKILL takes effect at once; allow 2 s for reaping
            if not _alive(pid):
                break
            await asyncio.sleep(0.02)
        assert not _alive(pid), f"pid {pid} of the hung command survived"


async def test_a_device_that_never_reads_off_is_not_verified(tmp_path: Path) -> None:
    script = tmp_path / "liar.sh"
    script.write_text("#!/bin/sh\nexit 0\n")  # "done", but status says on forever
    script.chmod(0o755)
    out = await run_fence_action(device("sw", command=[str(script)], timeout="1500ms"), "n1", "off")
    assert not out.ok and not out.verified and out.power == "on"
    assert "waiting for the target to read as powered off" in out.message


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and os.path.exists(f"/proc/{pid}")
