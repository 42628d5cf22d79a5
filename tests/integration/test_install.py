"""scripts/install puts on a server exactly what the systemd unit names: the agent's binary,
the docs of Documentation=, the unit itself; and the unit's claims are the shipped ones."""

from __future__ import annotations

import configparser
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from controller.api.cluster import Timing
from tests.paths import REPO

pytestmark = pytest.mark.slow

UNIT = REPO / "deploy" / "systemd" / "vigil-agent.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_states_the_shipped_deadtime() -> None:
    assert Timing().deadtime == timedelta(milliseconds=900)
    assert "within deadtime (900 ms by default)" in UNIT.read_text()


def test_install_provides_what_the_unit_names(tmp_path: Path) -> None:
    root = tmp_path / "root"
    env = {
        **os.environ,
        "PREFIX": str(root),
        "VIGIL_SKIP_APT": "1",
        # Vigil itself from the checkout, its dependencies not fetched: the test checks the
        # layout and the entry points, which run `--help` without them.
        "VIGIL_PIP_ARGS": "--no-deps",
    }
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "install")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    service = unit()["Service"]
    binary = service["ExecStart"].split()[0]
    assert binary == "/usr/local/bin/vigil-agent"
    link = root / binary.lstrip("/")
    assert os.readlink(link) == "/opt/vigil/bin/vigil-agent"
    agent = root / "opt" / "vigil" / "bin" / "vigil-agent"
    helped = subprocess.run([str(agent), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--config" in helped.stdout, helped.stderr
    documentation = unit()["Unit"]["Documentation"].removeprefix("file://")
    assert (root / documentation.lstrip("/")).is_file(), documentation
    installed = root / "etc" / "systemd" / "system" / "vigil-agent.service"
    assert installed.read_text() == UNIT.read_text()
    for tool in ("ha", "blockrepl"):
        assert os.readlink(root / "usr" / "local" / "bin" / tool) == f"/opt/vigil/bin/{tool}"
