"""Fixtures: a real `blockrepl serve` process on a fresh volume (unix socket + TCP)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

MiB = 1024 * 1024


def blockrepl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blockrepl.cli", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def show_md(backing: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(blockrepl("show-md", "--backing", backing, "--json").stdout)
    return out


@dataclass
class Served:
    backing: str
    sock: str
    port: int
    proc: subprocess.Popen[str]
    export: str = "blockrepl"

    @property
    def unix_uri(self) -> str:
        return f"nbd+unix:///{self.export}?socket={self.sock}"

    @property
    def tcp_uri(self) -> str:
        return f"nbd://127.0.0.1:{self.port}/{self.export}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _popen_server(backing: str, sock: str, log: IO[str], *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "blockrepl.cli", "serve", "--backing", backing]
    cmd += ["--unix", sock, "--listen", "127.0.0.1:0", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)


def start_server(backing: str, sock: str, *extra: str) -> Served:
    # stderr to a file: an unread pipe would eventually block the server
    with open(sock + ".log", "w") as log:
        proc = _popen_server(backing, sock, log, *extra)
    port = 0
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    lines = []
    while time.monotonic() < deadline and not port:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"on 127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
    if not port:
        proc.kill()
        proc.wait()
        err = Path(sock + ".log").read_text()
        raise RuntimeError(f"blockrepl serve did not start: {lines} {err}")
    return Served(backing, sock, port, proc)


@pytest.fixture
def volume(tmp_path: Path) -> str:
    backing = str(tmp_path / "vol.img")
    blockrepl("create-md", "--backing", backing, "--size", "32M", "--al-extents", "7")
    return backing


@pytest.fixture
def served(volume: str, tmp_path: Path) -> Iterator[Served]:
    srv = start_server(volume, str(tmp_path / "nbd.sock"), "--force")
    try:
        yield srv
    finally:
        srv.stop()


def run(*cmd: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, input=input)
    assert res.returncode == 0, f"{cmd} failed ({res.returncode}): {res.stdout} {res.stderr}"
    return res.stdout


def system_python_env() -> dict[str, str]:
    """nbdsh runs `python3 -m nbd`; the libnbd bindings exist only for Debian's python."""
    env = dict(os.environ)
    env["PATH"] = "/usr/bin:/bin:" + env.get("PATH", "")
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return env
