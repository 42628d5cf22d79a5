"""A Heartbeat 1 configuration (the school article's shape: two nodes, `auto_failback off`,
an IPaddr2 floating address in front of an init script) imported with `ha import
heartbeat`, applied, run: the service answers on the VIP Heartbeat gave it, and fails over
when the active node loses power."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.cluster import HTTP_ECHO, VigilLab
from lab.observer import VipObserver
from lab.testing import unique_lab_name
from tests.integration.stonith.conftest import needs_ipmi_sim

from .conftest import needs_root
from .helpers import wait_until, watched_lab

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]

# An LSB init script as the article's `cyrus` or `apache2`: the lab's HTTP echo, which
# answers with the node's name. /run is private to each lab node, so is the pid file.
INIT_SCRIPT = """#!/bin/sh
PIDFILE=/run/{name}.pid
running() {{ [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }}
case "$1" in
  start) running && exit 0
         setsid {python} -S {echo} 80 </dev/null >/dev/null 2>&1 &
         echo $! > $PIDFILE; exit 0 ;;
  stop) running && kill "$(cat $PIDFILE)"; rm -f $PIDFILE; exit 0 ;;
  status) running && exit 0; exit 3 ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def lab2(tmp_path: Path) -> Iterator[tuple[VigilLab, VipObserver]]:
    yield from watched_lab(
        VigilLab(
            unique_lab_name("im"),
            2,
            disk_root=tmp_path / "disks",
            fencing=True,
            quorum="two-node",
            fence_action="off",
        )
    )


@pytest.fixture
def init_script(tmp_path: Path) -> Iterator[str]:
    """A script in /etc/init.d (shared by the lab's nodes, as by the host), removed after."""
    name = f"vigil-{unique_lab_name('imp')}"
    path = Path("/etc/init.d") / name
    path.write_text(INIT_SCRIPT.format(name=name, python=sys.executable, echo=HTTP_ECHO))
    path.chmod(0o755)
    try:
        yield name
    finally:
        path.unlink(missing_ok=True)


def _heartbeat_files(lab: VigilLab, directory: Path, script: str) -> Path:
    a, b = lab.nodes
    ip_a, ip_b = lab.lab.node_ip(a), lab.lab.node_ip(b)
    directory.mkdir()
    (directory / "ha.cf").write_text(
        f"logfile local0\nkeepalive 200ms\nwarntime 500ms\ndeadtime 900ms\ninitdead 10\n"
        f"udpport 694\nucast eth0 {ip_a}\nucast eth0 {ip_b}\nauto_failback off\n"
        f"node {a}\nnode {b}\n"
    )
    (directory / "haresources").write_text(f"{a} IPaddr2::{lab.vip()}/24/eth0 {script}\n")
    (directory / "authkeys").write_text("auth 1\n1 sha1 an-old-heartbeat-secret\n")
    return directory


def test_imported_heartbeat_cluster_serves_the_vip_and_fails_over(
    lab2: tuple[VigilLab, VipObserver], init_script: str, tmp_path: Path
) -> None:
    lab, observer = lab2
    a, b = lab.nodes
    source = _heartbeat_files(lab, tmp_path / "ha.d", init_script)
    out = tmp_path / "imported"
    imported = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller.cli.main",
            "import",
            "heartbeat",
            str(source),
            "-o",
            str(out),
            "--cluster-name",
            lab.name,
            "--address",
            f"{a}={lab.lab.node_ip(a)}",
            "--address",
            f"{b}={lab.lab.node_ip(b)}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert "logfile local0" in imported.stderr  # the summary names what was dropped
    key = out / "authkeys.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    yaml_text = "---\n".join(p.read_text() for p in sorted(out.glob("*.yaml")))
    assert "an-old-heartbeat-secret" not in yaml_text

    dry = lab.ha("apply", "--dry-run", "-f", "-", stdin=yaml_text)
    assert dry.code == 0, dry.err
    applied = lab.apply(yaml_text)
    assert applied.code == 0, applied.err

    group = init_script.replace(".", "-")
    active = lab.wait_running(group, 40)
    assert active == a  # haresources names it first: score 100 against 50
    vip = lab.vip()
    wait_until("the service answers on the VIP", lambda: lab.get(vip) == a, 15)

    lab.lab.kill(a)
    survivor = lab.wait_running(group, 60, not_on=a)
    assert survivor == b
    wait_until("the VIP answers from the survivor", lambda: lab.get(vip) == b, 15)
    assert observer.holders() == {b}
