"""Two `blockrepl serve` replicas in two network namespaces joined by a veth pair.

Names are unique per run (pid + random suffix) and everything is removed in ``finally``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blockrepl.replication.control import ControlError, request

REPL_PORT = 7788


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


@dataclass
class NetPair:
    ns: tuple[str, str]
    veth: tuple[str, str]
    ip: tuple[str, str]

    def link(self, side: int, up: bool) -> None:
        sh("ip", "-n", self.ns[side], "link", "set", self.veth[side], "up" if up else "down")


@contextmanager
def shm_dir() -> Iterator[Path]:
    """A RAM-backed scratch directory (big volumes without disk writeback stalls)."""
    path = Path(f"/dev/shm/blockrepl-{os.getpid()}-{secrets.token_hex(3)}")
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def net_pair() -> Iterator[NetPair]:
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    pair = NetPair(
        (f"brA{tag}", f"brB{tag}"), (f"bva{tag}", f"bvb{tag}"), ("10.77.0.1", "10.77.0.2")
    )
    try:
        for ns in pair.ns:
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh(
            "ip",
            "link",
            "add",
            pair.veth[0],
            "netns",
            pair.ns[0],
            "type",
            "veth",
            "peer",
            "name",
            pair.veth[1],
            "netns",
            pair.ns[1],
        )
        for side in (0, 1):
            sh(
                "ip",
                "-n",
                pair.ns[side],
                "addr",
                "add",
                f"{pair.ip[side]}/24",
                "dev",
                pair.veth[side],
            )
            pair.link(side, True)
        yield pair
    finally:
        for ns in pair.ns:
            sh("ip", "netns", "del", ns, check=False)


@dataclass
class Replica:
    name: str
    ns: str
    ip: str
    peer_ip: str
    workdir: Path
    size: str = "64M"
    proc: subprocess.Popen[str] | None = None
    extra: list[str] = field(default_factory=list)
    al_extents: int = 7
    # --listen-repl / --peer on the command line (a pair needs one side with each)
    listens: bool = True
    dials: bool = True

    @property
    def backing(self) -> str:
        return str(self.workdir / f"{self.name}.img")

    @property
    def sock(self) -> str:
        return str(self.workdir / f"{self.name}.nbd")

    @property
    def ctl(self) -> str:
        return str(self.workdir / f"{self.name}.ctl")

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def create(self) -> None:
        sh(
            sys.executable,
            "-m",
            "blockrepl.cli",
            "create-md",
            "--backing",
            self.backing,
            "--size",
            self.size,
            "--al-extents",
            str(self.al_extents),
        )

    def start(self, role: str, secret: str, *extra: str, wait: bool = True) -> None:
        cmd = [
            "ip",
            "netns",
            "exec",
            self.ns,
            sys.executable,
            "-m",
            "blockrepl.cli",
            "serve",
            "--backing",
            self.backing,
            "--unix",
            self.sock,
            "--control",
            self.ctl,
            *(["--listen-repl", f"{self.ip}:{REPL_PORT}"] if self.listens else []),
            *(["--peer", f"{self.peer_ip}:{REPL_PORT}"] if self.dials else []),
            "--secret-file",
            secret,
            "--role",
            role,
            "--timeout",
            "4",
            "--ping-interval",
            "0.5",
            "-v",
            *self.extra,
            *extra,
        ]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=log, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1")
            )
        if wait:
            wait_for(lambda: self._alive_status() is not None, 20, f"{self.name} control socket")

    def _alive_status(self) -> dict[str, Any] | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            return self.status()
        except (ControlError, OSError, json.JSONDecodeError):
            return None

    def status(self) -> dict[str, Any]:
        answer = request(self.ctl, "status", timeout=10)
        st: dict[str, Any] = answer["status"]
        return st

    def control(self, cmd: str, **extra: Any) -> dict[str, Any]:
        return request(self.ctl, cmd, timeout=10, **extra)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def synced(r: Replica) -> bool:
    st = r.status()
    return bool(
        st["connection"] == "Connected"
        and st["sync"] is None
        and st["last_sync"]
        and st["out_of_sync_bytes"] == 0
        and st["disk"] == "UpToDate"
    )


@contextmanager
def replica_pair(
    tmp: Path, size: str = "64M", extra: tuple[str, ...] = (), al_extents: int = 7
) -> Iterator[tuple[NetPair, Replica, Replica, str]]:
    """Primary A (fresh, forced) and Secondary B, connected and initially synced."""
    secret = str(tmp / "secret")
    Path(secret).write_text(secrets.token_hex(32))
    with net_pair() as net:
        a = Replica("a", net.ns[0], net.ip[0], net.ip[1], tmp, size, None, list(extra), al_extents)
        b = Replica("b", net.ns[1], net.ip[1], net.ip[0], tmp, size, None, list(extra), al_extents)
        try:
            a.create()
            b.create()
            a.start("primary", secret, "--force")
            b.start("secondary", secret)
            wait_for(lambda: synced(a) and synced(b), 60, "initial full sync")
            yield net, a, b, secret
        finally:
            for r in (a, b):
                r.stop()
