"""Fixtures for lab tests: a 3-node lab whose nodes run a tiny HTTP server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import Lab
from lab.testing import running_lab

PAYLOAD_SCRIPT = Path(__file__).with_name("payload_http.py")
PORT = 8080
HTTP_PAYLOAD = [sys.executable, str(PAYLOAD_SCRIPT), "{node}", str(PORT)]

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "unshare", "nsenter")),
    reason="lab tests need root and ip/unshare/nsenter",
)

_GET = """
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
        sys.stdout.write(r.read().decode())
except OSError as e:
    sys.stdout.write("ERR " + str(e)); sys.exit(1)
"""


def http_get(lab: Lab, source: str, ip: str, timeout: float = 1.0) -> str | None:
    """Body of GET http://ip:PORT/ issued from inside `source`, or None if unreachable."""
    res = lab.exec_in(source, [sys.executable, "-c", _GET, f"http://{ip}:{PORT}/", str(timeout)])
    return res.stdout if res.returncode == 0 else None


def wait_http(lab: Lab, source: str, ip: str, expect: str, within: float = 10.0) -> float:
    """Poll until `source` gets `expect` from ip; returns seconds waited."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < within:
        last = http_get(lab, source, ip, timeout=0.5)
        if last == expect:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"{source} -> {ip}: wanted {expect!r}, last answer {last!r}")


def pid_alive(pid: int) -> bool:
    """Exists in the host /proc and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.fixture
def lab3(tmp_path: Path) -> Iterator[Lab]:
    with running_lab(3, HTTP_PAYLOAD, disk_root=tmp_path / "disks") as lab:
        for n in lab.nodes:
            wait_http(lab, "client", lab.node_ip(n), n)
        yield lab
