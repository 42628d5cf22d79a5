"""scripts/install puts on a server exactly what the systemd unit names: the agent's binary,
the docs of Documentation=, the unit itself; the unit's claims are the shipped ones, and
systemd itself finds nothing wrong with it (`systemd-analyze verify`)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from controller.api.cluster import Timing
from tests.paths import REPO

pytestmark = pytest.mark.slow

UNITS = REPO / "deploy" / "systemd"
UNIT = UNITS / "vigil-agent.service"
ANALYZE = shutil.which("systemd-analyze")


def unit(path: Path = UNIT) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """scripts/install run once into a temporary root."""
    root = tmp_path_factory.mktemp("install") / "root"
    env = {
        **os.environ,
        "PREFIX": str(root),
        "VIGIL_SKIP_APT": "1",
        # Vigil itself from the checkout, its dependencies not fetched: the tests check the
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
    yield root


def test_the_unit_states_the_shipped_deadtime() -> None:
    assert Timing().deadtime == timedelta(milliseconds=900)
    assert "within deadtime (900 ms by default)" in UNIT.read_text()


def test_install_provides_what_the_unit_names(root: Path) -> None:
    service = unit()["Service"]
    binary = service["ExecStart"].split()[0]
    assert binary == "/usr/local/bin/vigil-agent"
    link = root / binary.lstrip("/")
    assert os.readlink(link) == "/opt/vigil/bin/vigil-agent"
    agent = root / "opt" / "vigil" / "bin" / "vigil-agent"
    helped = subprocess.run([str(agent), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--config" in helped.stdout, helped.stderr
    documentation = unit()["Unit"]["Documentation"].split()
    assert "file:///usr/share/doc/vigil/install.md" in documentation
    for url in documentation:
        path = url.removeprefix("file://")
        assert (root / path.lstrip("/")).is_file(), path
    installed = root / "etc" / "systemd" / "system" / "vigil-agent.service"
    assert installed.read_text() == UNIT.read_text()
    for tool in ("ha", "blockrepl"):
        assert os.readlink(root / "usr" / "local" / "bin" / tool) == f"/opt/vigil/bin/{tool}"


def verify(path: Path, root: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify of a copy of the unit whose /usr/local/bin programs point into
    the temporary root (verify checks that ExecStart's program exists and is executable;
    the root's /usr/local/bin links are absolute, to the real /opt/vigil)."""
    assert ANALYZE is not None
    copy = tmp_path / path.name
    copy.write_text(path.read_text().replace("/usr/local/bin/", f"{root}/opt/vigil/bin/"))
    return subprocess.run(
        [ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(ANALYZE is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("path", sorted(UNITS.glob("*.service")), ids=lambda p: p.name)
def test_systemd_finds_nothing_wrong_with_the_unit(path: Path, root: Path, tmp_path: Path) -> None:
    done = verify(path, root, tmp_path)
    # verify exits 0 on warnings (an unknown key is "ignored"): any output is a finding.
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), (
        done.stdout + done.stderr
    )


@pytest.mark.skipif(ANALYZE is None, reason="needs systemd-analyze")
def test_the_verification_catches_a_misspelt_key(root: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    bad = broken / UNIT.name
    bad.write_text(UNIT.read_text().replace("RestartSec=", "RestartSecs="))
    done = verify(bad, root, tmp_path)
    assert "Unknown key" in done.stderr and "RestartSecs" in done.stderr, done.stderr


@pytest.mark.skipif(
    shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root (nft -c)"
)
def test_the_guides_nftables_rules_are_valid(tmp_path: Path) -> None:
    """The guide's nftables lines, in a chain of a table of their own, pass `nft -c`
    (checked, nothing loaded)."""
    text = (REPO / "docs" / "install.md").read_text()
    block = next(b for b in text.split("```")[1::2] if "define vigil_nodes" in b)
    lines = [line for line in block.strip().splitlines() if not line.startswith("#")]
    define, rules = lines[0], lines[1:]
    assert define.startswith("define ") and len(rules) >= 3, lines
    ruleset = tmp_path / "vigil.nft"
    ruleset.write_text(
        f"{define}\ntable inet vigil_guide_check {{\n  chain input {{\n"
        "    type filter hook input priority filter;\n"
        + "".join(f"    {rule}\n" for rule in rules)
        + "  }\n}\n"
    )
    done = subprocess.run(
        ["nft", "-c", "-f", str(ruleset)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
