"""The redfish device (sushy) against sushy-emulator's fake driver, which applies a
power change 1-11 s after it accepted it: only polling sees it land."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.api.fencing import FenceDevice
from nodeagent.fencing import run_fence_action
from tests.integration.fencing.conftest import needs_root
from tests.integration.fencing.sims import SushyEmulator
from tests.unit.nodeagent.fencing.devices import device

pytestmark = [pytest.mark.slow, needs_root]


def redfish_device(emulator: SushyEmulator, creds: Path, system: str) -> FenceDevice:
    return device(
        "redfish-n1",
        agent="redfish",
        address="127.0.0.1",
        port=emulator.port,
        credentialsFile=str(creds),
        hostMap={"n1": system},
        options={"scheme": "http"},
        timeout="25s",
    )


async def test_status_off_on_with_late_changes(sushy: SushyEmulator, tmp_path: Path) -> None:
    dev = redfish_device(sushy, sushy.credentials(tmp_path / "creds"), sushy.uuid)
    out = await run_fence_action(dev, "n1", "status")
    assert (out.ok, out.power) == (True, "on"), out
    out = await run_fence_action(dev, "n1", "off")
    # Verified off: the device read the power back until the fake driver applied it. No
    # lower bound on the time: the driver applies at int(now) + 1..11 s, which may be a
    # few milliseconds away (a bound of 0.5 s failed about 1 run in 20).
    assert (out.ok, out.verified, out.power) == (True, True, "off"), out
    out = await run_fence_action(dev, "n1", "status")
    assert (out.ok, out.power) == (True, "off"), out
    # By the emulator's name: it redirects to the system's uuid.
    by_name = redfish_device(sushy, sushy.credentials(tmp_path / "creds"), sushy.name)
    out = await run_fence_action(by_name, "n1", "on")
    assert (out.ok, out.power) == (True, "on"), out


async def test_a_wrong_password_and_an_unknown_system(sushy: SushyEmulator, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("username=admin\npassword=nope-nope\n")
    creds.chmod(0o600)
    out = await run_fence_action(redfish_device(sushy, creds, sushy.uuid), "n1", "off")
    assert not out.ok and not out.verified, out
    assert f"password in {creds}" in out.message and "nope-nope" not in out.message
    good = sushy.credentials(tmp_path / "good")
    out = await run_fence_action(redfish_device(sushy, good, "no-such-system"), "n1", "status")
    assert not out.ok and "hostMap" in out.message, out


async def test_https_checks_the_certificate_unless_told_not_to(tmp_path: Path) -> None:
    emulator = SushyEmulator(tmp_path / "tls", tls=True).start()
    try:
        creds = str(emulator.credentials(tmp_path / "creds"))
        spec = {
            "agent": "redfish", "address": "127.0.0.1", "port": emulator.port,
            "credentialsFile": creds, "hostMap": {"n1": emulator.uuid}, "timeout": "25s",
        }  # fmt: skip
        out = await run_fence_action(device("r", **spec), "n1", "status")
        assert not out.ok and "verifyTls" in out.message, out
        out = await run_fence_action(device("r", verifyTls=False, **spec), "n1", "off")
        assert (out.ok, out.verified, out.power) == (True, True, "off"), out
    finally:
        emulator.stop()
