"""The ipmi device (pyghmi, IPMI 2.0 lanplus) against a real OpenIPMI ipmi_sim."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from controller.api.fencing import FenceDevice
from nodeagent.fencing import run_fence_action
from tests.integration.fencing.conftest import needs_ipmi_sim, needs_root
from tests.integration.fencing.sims import IpmiSim, free_port
from tests.unit.nodeagent.fencing.devices import device

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]


def ipmi_device(
    sim: IpmiSim, creds: Path, port: int | None = None, timeout: str = "10s"
) -> FenceDevice:
    return device(
        "bmc-n1",
        agent="ipmi",
        address="127.0.0.1",
        port=port or sim.port,
        credentialsFile=str(creds),
        timeout=timeout,
    )


async def test_status_off_on_reboot_verified(ipmi_sim: IpmiSim, tmp_path: Path) -> None:
    dev = ipmi_device(ipmi_sim, ipmi_sim.credentials(tmp_path / "creds"))
    out = await run_fence_action(dev, "n1", "status")
    assert (out.ok, out.power, out.verified) == (True, "on", False), out

    out = await run_fence_action(dev, "n1", "off")
    assert (out.ok, out.verified, out.power) == (True, True, "off"), out
    assert ipmi_sim.power == "off"
    assert (out.device, out.target, out.action) == ("bmc-n1", "n1", "off")

    out = await run_fence_action(dev, "n1", "status")
    assert (out.ok, out.power) == (True, "off"), out

    out = await run_fence_action(dev, "n1", "on")
    assert (out.ok, out.verified, out.power) == (True, False, "on"), out
    assert ipmi_sim.power == "on"

    out = await run_fence_action(dev, "n1", "reboot")
    assert (out.ok, out.verified, out.power) == (True, True, "on"), out
    assert ipmi_sim.power == "on"
    assert "powered off (verified) and on again" in out.message


async def test_off_of_a_node_already_off_is_verified(ipmi_sim: IpmiSim, tmp_path: Path) -> None:
    ipmi_sim.set_power(False)
    dev = ipmi_device(ipmi_sim, ipmi_sim.credentials(tmp_path / "creds"))
    out = await run_fence_action(dev, "n1", "off")
    assert (out.ok, out.verified, out.power) == (True, True, "off"), out


async def test_a_wrong_password_is_a_clear_failure(ipmi_sim: IpmiSim, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("username=admin\npassword=wrong-one\n")
    creds.chmod(0o600)
    dev = ipmi_device(ipmi_sim, creds)
    for action in ("status", "off"):
        out = await run_fence_action(dev, "n1", action)
        assert not out.ok and not out.verified, out
        assert "Incorrect password" in out.message
        assert str(creds) in out.message and "wrong-one" not in out.message
        assert out.seconds < 5
    assert ipmi_sim.power == "on"
    # Fixed, the same process fences at once (pyghmi's cached failed session is gone).
    ipmi_sim.credentials(creds)
    out = await run_fence_action(dev, "n1", "off")
    assert (out.ok, out.verified) == (True, True), out


async def test_an_unreachable_bmc_fails_within_the_timeout(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("username=admin\npassword=pw\n")
    creds.chmod(0o600)
    port = free_port()  # nothing listens there
    dev = device("bmc-n1", agent="ipmi", address="127.0.0.1", port=port,
                 credentialsFile=str(creds), timeout="2s")  # fmt: skip
    started = time.monotonic()
    out = await run_fence_action(dev, "n1", "off")
    took = time.monotonic() - started
    assert not out.ok and not out.verified and out.power == "unknown", out
    assert took < 2.5 and out.seconds < 2.5
    assert f"127.0.0.1:{port}" in out.message
    assert "timed out after 2 s" in out.message or "failed" in out.message


async def test_a_bmc_that_hangs_then_recovers(ipmi_sim: IpmiSim, tmp_path: Path) -> None:
    """A BMC frozen mid-session: the action ends at its timeout, and once the BMC is back
    the next action in the same process works (no stuck session handed out again)."""
    dev = ipmi_device(ipmi_sim, ipmi_sim.credentials(tmp_path / "creds"), timeout="1500ms")
    out = await run_fence_action(dev, "n1", "status")  # a session exists
    assert out.ok, out
    assert ipmi_sim.proc is not None
    os.kill(ipmi_sim.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        out = await run_fence_action(dev, "n1", "off")
        assert not out.ok and not out.verified, out
        assert time.monotonic() - started < 3.0
    finally:
        os.kill(ipmi_sim.proc.pid, signal.SIGCONT)
    out = await run_fence_action(dev.model_copy(), "n1", "status")
    for _ in range(5):  # the BMC drains what queued up while it was frozen
        if out.ok:
            break
        out = await run_fence_action(dev, "n1", "status")
    assert out.ok, out
    out = await run_fence_action(dev, "n1", "off")
    assert (out.ok, out.verified) == (True, True), out
