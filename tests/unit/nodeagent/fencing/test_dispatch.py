"""What run_fence_action decides before it touches a device."""

from __future__ import annotations

import os
from pathlib import Path

from nodeagent.fencing import run_fence_action
from tests.unit.nodeagent.fencing.devices import device


async def test_a_watchdog_does_not_fence_another_node() -> None:
    out = await run_fence_action(device(agent="watchdog"), "n1", "off")
    assert (out.ok, out.verified, out.power) == (False, False, "unknown")
    assert "watchdog fences its own node" in out.message
    assert "wait the watchdog timeout" in out.message


async def test_a_node_outside_targets_is_refused() -> None:
    out = await run_fence_action(device(command=["/bin/true"]), "n9", "off")
    assert not out.ok
    assert "does not fence node n9" in out.message and "spec.targets: n1" in out.message


async def test_a_missing_field_is_named() -> None:
    out = await run_fence_action(device(agent="ipmi", credentialsFile="/x"), "n1", "status")
    assert not out.ok and "spec.address is required" not in out.message  # file first
    assert "/x does not exist" in out.message
    out = await run_fence_action(device(agent="ipmi", address="10.0.0.1"), "n1", "off")
    assert not out.ok and "spec.credentialsFile is required" in out.message


async def test_an_unsafe_credentials_file_fails_the_action(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("pw\n")
    os.chmod(path, 0o644)
    out = await run_fence_action(
        device(agent="ipmi", address="127.0.0.1", credentialsFile=str(path)), "n1", "off"
    )
    assert not out.ok and not out.verified
    assert f"chmod 600 {path}" in out.message


async def test_a_missing_fence_agent_says_what_to_install() -> None:
    dev = device(agent="fence-agent", fenceAgent="fence_doesnotexist")
    out = await run_fence_action(dev, "n1", "status")
    assert not out.ok and "install fence-agents" in out.message


async def test_a_missing_username_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("just-a-password\n")
    os.chmod(path, 0o600)
    dev = device(agent="redfish", address="127.0.0.1", credentialsFile=str(path))
    out = await run_fence_action(dev, "n1", "status")
    assert not out.ok and "no username: set spec.username" in out.message
    assert "just-a-password" not in out.message
