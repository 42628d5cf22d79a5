"""The systemd actuator against real systemd; runs only where PID 1 is systemd."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.actuators import ActuatorContext, State
from tests.integration.actuators.specs import create

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        Path("/proc/1/comm").read_text().strip() != "systemd",
        reason="PID 1 is not systemd here (container); the systemd actuator is covered by "
        "unit tests with a fake systemctl",
    ),
]


@pytest.fixture
def unit_name() -> Iterator[str]:
    name = f"vigil-test-{secrets.token_hex(3)}.service"
    path = Path("/run/systemd/system") / name
    path.write_text("[Unit]\nDescription=vigil test\n[Service]\nExecStart=/bin/sleep 300\n")
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["systemctl", "stop", name], check=False)
        path.unlink(missing_ok=True)
        subprocess.run(["systemctl", "daemon-reload"], check=False)


async def test_real_unit_start_stop(unit_name: str) -> None:
    svc = create({"service": {"systemd": unit_name}}, ActuatorContext("t/u"))
    assert (await svc.observe()).state is State.STOPPED
    await svc.start()
    assert (await svc.observe()).state is State.RUNNING
    await svc.stop()
    assert (await svc.observe()).state is State.STOPPED
