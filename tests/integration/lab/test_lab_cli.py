"""`ha lab ...` as separate processes sharing only the state file (like a user at a shell)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.testing import unique_lab_name

from .conftest import HTTP_PAYLOAD, needs_root, netns_list, pid_alive

pytestmark = [pytest.mark.slow, needs_root]
REPO = Path(__file__).resolve().parents[3]


def ha_lab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", "lab", *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )  # fmt: skip


def status(name: str) -> dict[str, object]:
    res = ha_lab("status", "--name", name, "--json")
    assert res.returncode == 0, res.stderr
    doc: dict[str, object] = json.loads(res.stdout)
    return doc


def test_cli_lifecycle_across_invocations(tmp_path: Path) -> None:
    name = unique_lab_name("cli")
    payload = " ".join(HTTP_PAYLOAD)
    try:
        up = ha_lab("up", "--name", name, "--nodes", "2", "--payload", payload,
                    "--disk-root", str(tmp_path))  # fmt: skip
        assert up.returncode == 0, up.stderr
        assert "n2" in up.stdout and "up" in up.stdout
        nodes = {n["name"]: n for n in status(name)["nodes"]}  # type: ignore[attr-defined]
        pid1 = nodes["n1"]["pid"]
        assert nodes["n1"]["up"] and pid_alive(pid1)

        assert ha_lab("kill", "n1", "--name", name).returncode == 0
        n1 = status(name)["nodes"][0]  # type: ignore[index]
        assert (n1["up"], n1["link_up"]) == (False, False)
        assert not pid_alive(pid1)

        assert ha_lab("reboot", "n1", "--name", name).returncode == 0
        n1 = status(name)["nodes"][0]  # type: ignore[index]
        assert n1["up"] and n1["link_up"] and n1["boots"] == 2

        assert ha_lab("partition", "n1", "/", "n2", "--name", name).returncode == 0
        assert status(name)["cuts"] == [["n1", "n2"]]
        assert ha_lab("heal", "--name", name).returncode == 0
        assert status(name)["cuts"] == []

        bad = ha_lab("kill", "n9", "--name", name)
        assert bad.returncode == 2 and "no node 'n9'" in bad.stderr
    finally:
        down = ha_lab("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert f"vl-{name}-" not in netns_list()
    assert not (tmp_path / name).exists()
    missing = ha_lab("status", "--name", name)
    assert missing.returncode == 2 and "no lab named" in missing.stderr
