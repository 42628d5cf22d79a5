"""No password in any outcome, log line or output, whatever the device and however it
fails (the node's journal and the leader's events are made of these)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from controller.api.fencing import FenceOutcome
from nodeagent.fencing import run_fence_action
from tests.integration.fencing.conftest import needs_ipmi_sim, needs_root
from tests.integration.fencing.sims import IpmiSim, SushyEmulator
from tests.unit.nodeagent.fencing.devices import device

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]


def private(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


async def test_no_secret_anywhere(
    ipmi_sim: IpmiSim,
    sushy: SushyEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    wrong = "Wr0ngButSecret"
    ipmi_good = str(ipmi_sim.credentials(tmp_path / "ipmi.cred"))
    ipmi_bad = private(tmp_path / "ipmi-bad", f"username=admin\npassword={wrong}\n")
    redfish_good = str(sushy.credentials(tmp_path / "redfish.cred"))
    redfish_bad = private(tmp_path / "redfish-bad", f"username=admin\npassword={wrong}\n")
    ipmi = {"agent": "ipmi", "address": "127.0.0.1", "port": ipmi_sim.port, "timeout": "10s"}
    agent = {
        "agent": "fence-agent", "fenceAgent": "fence_ipmilan", "address": "127.0.0.1",
        "port": ipmi_sim.port, "options": {"lanplus": "1", "cipher": "3"}, "timeout": "20s",
    }  # fmt: skip
    redfish = {
        "agent": "redfish", "address": "127.0.0.1", "port": sushy.port, "timeout": "20s",
        "options": {"scheme": "http"}, "hostMap": {"n1": sushy.uuid},
    }  # fmt: skip
    runs = [
        (device("i", credentialsFile=ipmi_good, **ipmi), "reboot"),
        (device("i", credentialsFile=ipmi_bad, **ipmi), "off"),
        (device("i", credentialsFile=ipmi_bad, **ipmi), "status"),
        (device("r", credentialsFile=redfish_good, **redfish), "status"),
        (device("r", credentialsFile=redfish_bad, **redfish), "off"),
        # Unreachable: the errors that quote the most of what they were given.
        (device("i", credentialsFile=ipmi_good, **{**ipmi, "port": 9, "timeout": "1s"}), "off"),
    ]
    if shutil.which("fence_ipmilan", path=os.environ.get("PATH", "") + ":/usr/sbin"):
        runs += [
            (device("a", credentialsFile=ipmi_good, **agent), "status"),
            (device("a", credentialsFile=ipmi_bad, **agent), "off"),
        ]
    outcomes: list[FenceOutcome] = []
    for dev, action in runs:
        outcomes.append(await run_fence_action(dev, "n1", action))  # type: ignore[arg-type]
    assert outcomes[0].ok and outcomes[0].verified, outcomes[0]
    assert not outcomes[1].ok and not outcomes[4].ok
    captured = capfd.readouterr()
    everything = "\n".join([repr(o) for o in outcomes] + [caplog.text, captured.out, captured.err])
    assert "fence reboot n1 via i: ok=True" in caplog.text  # the logs were captured
    for secret in (ipmi_sim.password, sushy.password, wrong):
        assert secret not in everything, f"a password leaked into:\n{everything}"
