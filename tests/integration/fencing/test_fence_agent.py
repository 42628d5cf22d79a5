"""The fence-agent device: Debian's fence_ipmilan driving ipmi_sim over its stdin
protocol, and what a fence agent receives (argv, stdin, environment)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from nodeagent.fencing import run_fence_action
from tests.integration.fencing.conftest import needs_ipmi_sim, needs_root
from tests.integration.fencing.sims import IpmiSim
from tests.unit.nodeagent.fencing.devices import device

pytestmark = [pytest.mark.slow, needs_root]
needs_fence_ipmilan = pytest.mark.skipif(
    shutil.which("fence_ipmilan", path=os.environ.get("PATH", "") + ":/usr/sbin") is None,
    reason="fence_ipmilan missing: apt-get install fence-agents",
)


@needs_ipmi_sim
@needs_fence_ipmilan
async def test_fence_ipmilan_drives_the_simulator(ipmi_sim: IpmiSim, tmp_path: Path) -> None:
    dev = device(
        "ipmilan-n1",
        agent="fence-agent",
        fenceAgent="fence_ipmilan",
        address="127.0.0.1",
        port=ipmi_sim.port,
        credentialsFile=str(ipmi_sim.credentials(tmp_path / "creds")),
        options={"lanplus": "1", "cipher": "3"},
        timeout="30s",
    )
    out = await run_fence_action(dev, "n1", "status")
    assert (out.ok, out.power) == (True, "on"), out
    out = await run_fence_action(dev, "n1", "off")
    assert (out.ok, out.verified, out.power) == (True, True, "off"), out
    assert ipmi_sim.power == "off"
    out = await run_fence_action(dev, "n1", "status")
    assert (out.ok, out.power) == (True, "off"), out
    out = await run_fence_action(dev, "n1", "on")
    assert (out.ok, out.power) == (True, "on"), out
    assert ipmi_sim.power == "on"


@needs_ipmi_sim
@needs_fence_ipmilan
async def test_fence_ipmilan_with_a_wrong_password(ipmi_sim: IpmiSim, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("username=admin\npassword=not-the-password\n")
    creds.chmod(0o600)
    dev = device(
        "ipmilan-n1", agent="fence-agent", fenceAgent="fence_ipmilan", address="127.0.0.1",
        port=ipmi_sim.port, credentialsFile=str(creds),
        options={"lanplus": "1", "cipher": "3"}, timeout="30s",
    )  # fmt: skip
    out = await run_fence_action(dev, "n1", "off")
    assert not out.ok and not out.verified, out
    assert "fence_ipmilan action=off" in out.message and "exited" in out.message
    assert "not-the-password" not in out.message
    assert ipmi_sim.power == "on"


RECORDER = """#!{python}
import json, os, sys
record = {{"argv": sys.argv, "stdin": sys.stdin.read(), "env": dict(os.environ)}}
with open({out!r}, "a") as f:
    f.write(json.dumps(record) + "\\n")
sys.exit(2 if "action=status" in record["stdin"] else 0)
"""


async def test_the_password_goes_on_stdin_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "record.jsonl"
    agent = bindir / "fence_vigilrecorder"
    agent.write_text(RECORDER.format(python=sys.executable, out=str(record)))
    agent.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    creds = tmp_path / "creds"
    creds.write_text("username=root\npassword=Tr0ub4dor&3\n")
    creds.chmod(0o600)
    dev = device(
        "rec", agent="fence-agent", fenceAgent="fence_vigilrecorder", targets=["n1"],
        address="192.0.2.1", credentialsFile=str(creds), hostMap={"n1": "port-7"},
    )  # fmt: skip
    out = await run_fence_action(dev, "n1", "off")
    assert (out.ok, out.verified, out.power) == (True, True, "off"), out
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [c["stdin"].splitlines()[0] for c in calls] == ["action=off", "action=status"]
    assert "password=Tr0ub4dor&3" in calls[0]["stdin"].splitlines()
    assert "plug=port-7" in calls[0]["stdin"].splitlines()
    for call in calls:
        assert call["argv"] == [str(agent)]
        assert "Tr0ub4dor&3" not in json.dumps(call["env"])
