"""Self-fencing's petting rule (nodeagent/selffence.py) with a fake watchdog: armed once
the node serves, petted while it serves and its control loop runs, never petted again once
either stops (and not disarmed: the reset must happen), disarmed only on an orderly stop.
The liveness process drives it (its loop wiring is tested here too); the real ioctls
against a FUSE watchdog are in tests/integration/fencing/test_selffence_process.py."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from nodeagent import fastpath
from nodeagent.fencing.watchdog import WatchdogError
from nodeagent.liveness_process import LivenessServer
from nodeagent.selffence import PETS_PER_TIMEOUT, SelfFence, WatchdogSettings, nowayout


class FakeDevice:
    """Records what is done to it; `refuse` makes arm() fail like a missing driver."""

    def __init__(self, grant: int | None = None, refuse: int = 0) -> None:
        self.grant = grant
        self.refuse = refuse
        self.calls: list[str] = []
        self._armed = False

    @property
    def armed(self) -> bool:
        return self._armed

    def arm(self) -> int:
        if self.refuse:
            self.refuse -= 1
            raise WatchdogError("watchdog /dev/watchdog cannot be opened (No such file)")
        self.calls.append("arm")
        self._armed = True
        return self.grant or 8

    def pet(self) -> None:
        assert self._armed
        self.calls.append("pet")

    def disarm(self) -> None:
        self.calls.append("disarm")
        self._armed = False


SETTINGS = WatchdogSettings(name="wd-n1", device="/dev/watchdog", timeout=8)


def make(device: FakeDevice) -> SelfFence:
    return SelfFence(SETTINGS, device)


def test_not_armed_before_the_node_serves() -> None:
    device = FakeDevice()
    fence = make(device)
    for _ in range(3):
        fence.tick(serving=False, control_alive=True)
    assert device.calls == [] and fence.state == "idle"


def test_armed_when_it_serves_and_petted_a_quarter_timeout_apart() -> None:
    device = FakeDevice()
    fence = make(device)
    fence.tick(serving=True, control_alive=True)
    fence.tick(serving=True, control_alive=True)
    assert device.calls == ["arm", "pet", "pet"] and fence.state == "armed"
    assert fence.interval == 8 / PETS_PER_TIMEOUT == 2.0


@pytest.mark.parametrize(
    ("serving", "alive", "why"),
    [(False, True, "serving lease was lost"), (True, False, "control loop is stuck")],
)
def test_petting_stops_for_good_and_the_watchdog_stays_armed(
    serving: bool, alive: bool, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    device = FakeDevice()
    fence = make(device)
    fence.tick(serving=True, control_alive=True)
    with caplog.at_level(logging.CRITICAL):
        fence.tick(serving=serving, control_alive=alive)
    assert fence.state == "stopped" and why in fence.why_stopped
    assert "resets within 8 s" in caplog.text
    # The lease back a moment later changes nothing: the node is committed to its reset.
    for _ in range(3):
        fence.tick(serving=True, control_alive=True)
    assert device.calls == ["arm", "pet"] and device.armed
    # Nor does an orderly stop: the leader counts on that reset.
    assert not fence.disarm()
    assert device.calls == ["arm", "pet"] and device.armed


def test_an_orderly_stop_disarms_and_it_is_never_petted_again() -> None:
    device = FakeDevice()
    fence = make(device)
    fence.tick(serving=True, control_alive=True)
    assert fence.disarm()
    fence.tick(serving=True, control_alive=True)
    assert device.calls == ["arm", "pet", "disarm"] and fence.state == "disarmed"


def test_a_device_that_cannot_be_armed_is_tried_again_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    device = FakeDevice(refuse=2)
    fence = make(device)
    with caplog.at_level(logging.ERROR):
        fence.tick(serving=True, control_alive=True)
        fence.tick(serving=True, control_alive=True)
    assert caplog.text.count("cannot be opened") == 1 and fence.state == "idle"
    assert "FenceDevice wd-n1: spec.device, spec.timeout" in caplog.text
    assert "does not serve until it is armed" in caplog.text
    fence.tick(serving=True, control_alive=True)
    assert device.calls == ["arm", "pet"] and fence.error is None


def test_a_driver_granting_a_longer_timeout_is_reported_and_kept_armed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    device = FakeDevice(grant=30)
    fence = make(device)
    with caplog.at_level(logging.CRITICAL):
        fence.tick(serving=True, control_alive=True)
    assert "granted a timeout of 30 s for spec.timeout 8 s" in caplog.text
    assert "spec.timeout of FenceDevice wd-n1 to 30 s" in caplog.text
    assert fence.state == "armed" and fence.interval == 8 / 4  # as the leader counts


def test_settings_travel_in_the_start_message() -> None:
    assert WatchdogSettings.from_dict(SETTINGS.to_dict()) == SETTINGS
    assert WatchdogSettings.from_dict(None) is None


# -- in the liveness process's loop ---------------------------------------------------


class Server(LivenessServer):
    """A liveness server whose lease is what the test says."""

    serving = False

    def may_serve(self) -> bool:
        return self.serving


async def running_server(tmp_path: Path, device: FakeDevice) -> tuple[Server, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = Server(theirs, tmp_path / "lease", keepalive=0.1)
    server.make_selffence = lambda settings: SelfFence(settings, device)
    return server, ours


async def test_the_liveness_loop_pets_while_serving_and_stop_disarms(tmp_path: Path) -> None:
    device = FakeDevice(grant=1)  # petted every 0.25 s
    server, ours = await running_server(tmp_path, device)
    task = asyncio.create_task(server.run(None))
    await asyncio.sleep(0.05)
    server._configure_watchdog(WatchdogSettings("wd-n1", "/dev/watchdog", 1))
    await asyncio.sleep(0.3)
    assert device.calls == []  # not serving: not armed
    server.serving = True
    await asyncio.sleep(0.6)
    pets = device.calls.count("pet")
    assert device.calls[0] == "arm" and 2 <= pets <= 4
    ours.send(b'{"op": "stop", "id": 1, "disarm": true}')
    await asyncio.sleep(0.1)
    assert device.calls[-1] == "disarm" and server.selffence is None
    ours.close()
    await asyncio.wait_for(task, 2)


async def test_a_stop_with_resources_left_running_keeps_it_armed(tmp_path: Path) -> None:
    device = FakeDevice(grant=1)
    server, ours = await running_server(tmp_path, device)
    server.serving = True
    task = asyncio.create_task(server.run(None))
    server._configure_watchdog(WatchdogSettings("wd-n1", "/dev/watchdog", 1))
    await asyncio.sleep(0.1)
    ours.send(b'{"op": "stop", "id": 1, "disarm": false}')  # a stop failed
    await asyncio.sleep(0.1)
    assert "disarm" not in device.calls and device.armed
    ours.close()
    await asyncio.wait_for(task, 2)


def test_a_pet_that_fails_stops_petting_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    device = FakeDevice()
    fence = make(device)
    fence.tick(serving=True, control_alive=True)

    def broken() -> None:
        raise OSError(5, "Input/output error")

    device.pet = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.CRITICAL):
        fence.tick(serving=True, control_alive=True)
    assert fence.state == "stopped" and "Input/output error" in fence.why_stopped
    assert "resets within 8 s" in caplog.text


async def test_the_liveness_loop_stops_petting_when_the_lease_goes(tmp_path: Path) -> None:
    device = FakeDevice(grant=1)
    server, ours = await running_server(tmp_path, device)
    server.serving = True
    task = asyncio.create_task(server.run(None))
    server._configure_watchdog(WatchdogSettings("wd-n1", "/dev/watchdog", 1))
    await asyncio.sleep(0.4)
    server.serving = False
    await asyncio.sleep(0.3)
    assert server.selffence is not None and server.selffence.state == "stopped"
    calls = list(device.calls)
    server.serving = True
    await asyncio.sleep(0.6)
    assert device.calls == calls and "disarm" not in calls
    # A new FenceDevice does not take the committed reset back.
    server._configure_watchdog(WatchdogSettings("wd-other", "/dev/watchdog1", 2))
    assert server.selffence.settings.name == "wd-n1"
    ours.close()
    await asyncio.wait_for(task, 2)


async def test_a_stuck_control_loop_stops_petting_before_the_abort(tmp_path: Path) -> None:
    device = FakeDevice(grant=60)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    aborted: list[str] = []

    def on_stuck() -> None:
        assert server.selffence is not None
        aborted.append(server.selffence.state)

    server = Server(theirs, tmp_path / "lease", 0.1, control_deadline=0.3, on_stuck=on_stuck)
    server.make_selffence = lambda settings: SelfFence(settings, device)
    server.serving = True
    task = asyncio.create_task(server.run(None))
    server._configure_watchdog(WatchdogSettings("wd-n1", "/dev/watchdog", 60))
    await asyncio.sleep(0.05)
    ours.send(b'{"op": "beat"}')  # arms the control watchdog; then silence
    await asyncio.sleep(1.5)
    assert aborted == ["stopped"] and "disarm" not in device.calls
    ours.close()
    await asyncio.wait_for(task, 2)


def test_the_watchdog_rides_in_the_cached_configuration(tmp_path: Path) -> None:
    from nodeagent.heartbeat.config import HeartbeatConfig
    from nodeagent.heartbeat.timing import HeartbeatTiming

    key = tmp_path / "key"
    key.write_bytes(b"k" * 32)
    config = HeartbeatConfig(
        "n1", "lab", b"k" * 32, HeartbeatTiming(0.1, 0.3, 0.5, 1.0), "127.0.0.1", ()
    )
    fastpath.save(config, str(key), tmp_path, SETTINGS)
    cached: dict[str, Any] | None = fastpath.load(tmp_path)
    assert cached is not None and WatchdogSettings.from_dict(cached["watchdog"]) == SETTINGS
    assert fastpath.from_dict(cached) == config  # heartbeats read past it


def test_nowayout_is_read_from_sysfs(tmp_path: Path) -> None:
    (tmp_path / "watchdog0").mkdir()
    (tmp_path / "watchdog0" / "nowayout").write_text("1\n")
    (tmp_path / "watchdog1").mkdir()
    (tmp_path / "watchdog1" / "nowayout").write_text("0\n")
    assert nowayout("/dev/watchdog", tmp_path) and nowayout("/dev/watchdog0", tmp_path)
    assert not nowayout("/dev/watchdog1", tmp_path)
    assert not nowayout("/tmp/fuse/watchdog7", tmp_path)  # unknown: no sysfs entry


def test_the_liveness_process_stays_light_with_self_fencing() -> None:
    # It imports nodeagent.fencing.watchdog: not the dispatcher, pydantic or BMC clients.
    import subprocess
    import sys

    code = (
        "import sys, nodeagent.liveness_process, nodeagent.selffence; "
        "heavy = [m for m in ('pydantic', 'nodeagent.fencing.dispatch', 'pyghmi', 'sushy') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
