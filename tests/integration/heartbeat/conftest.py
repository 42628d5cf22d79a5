"""Three heartbeat nodes, each a real process in its own network namespace.

    hbn0-<tag> (eth0 10.66.0.1) --veth-- p0 +
    hbn1-<tag> (eth0 10.66.0.2) --veth-- p1 +-- br0 in hbb-<tag>
    hbn2-<tag> (eth0 10.66.0.3) --veth-- p2 +

With `two_links`, each node also has eth1 (10.67.0.<i+1>) on br1 (ports q<i>), a
dedicated heartbeat network used as an extra `udp` link pinned to eth1.

Names carry the pid and a random suffix; namespaces and processes are removed in
`finally`, also when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nodeagent.heartbeat.timing import HeartbeatTiming

ROOT = Path(__file__).resolve().parents[3]
SUBNET = "10.66.0"
SUBNET2 = "10.67.0"
PORT = 694


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class NodeProc:
    name: str
    netns: str
    proc: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = {"type": "garbage", "line": line}
            with self.lock:
                self.lines.append(obj)

    def events(self, kind: str | None = None, subject: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                e for e in self.lines
                if e["type"] == "event" and kind in (None, e["kind"])
                and subject in (None, e["subject"])
            ]  # fmt: skip

    def first(self, kind: str, subject: str, new: str, after: float = 0.0) -> float | None:
        for e in self.events(kind, subject):
            if e["new"] == new and e["at"] >= after:
                return float(e["at"])
        return None

    def snapshot(self) -> dict[str, Any] | None:
        with self.lock:
            snaps = [e for e in self.lines if e["type"] == "snapshot"]
        return snaps[-1] if snaps else None

    def kill(self) -> float:
        self.proc.send_signal(signal.SIGKILL)
        at = time.monotonic()
        self.proc.wait(5)
        return at

    def stop(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)


@dataclass
class HeartbeatNet:
    tag: str
    bridge: str
    netns: list[str]
    procs: list[NodeProc] = field(default_factory=list)
    two_links: bool = False

    @property
    def names(self) -> list[str]:
        return [f"n{i}" for i in range(len(self.netns))]

    def address(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def start(self, i: int, timing: HeartbeatTiming, key: bytes = b"k" * 32) -> NodeProc:
        raw = {
            "node": self.names[i],
            "cluster": f"hb-{self.tag}",
            "key": key.hex(),
            "timing": timing.__dict__,
            "address": self.address(i),
            "port": PORT,
            "peers": [
                {"name": n, "address": self.address(j)} for j, n in enumerate(self.names) if j != i
            ],
        }
        if self.two_links:
            raw["extra_links"] = [
                {
                    "name": "eth1",
                    "bind": "0.0.0.0",
                    "interface": "eth1",
                    "destinations": [f"{SUBNET2}.{j + 1}" for j in range(3) if j != i],
                }
            ]
        argv = ["ip", "netns", "exec", self.netns[i], sys.executable, "-m",
                "tests.integration.heartbeat.hb_node", json.dumps(raw)]  # fmt: skip
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        node = NodeProc(self.names[i], self.netns[i], proc)
        self.procs.append(node)
        return node

    def set_port(self, i: int, up: bool, port: str = "p") -> float:
        ip("-n", self.bridge, "link", "set", f"{port}{i}", "up" if up else "down")
        return time.monotonic()


def wait_for(what: str, predicate: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def hbnet(request: pytest.FixtureRequest) -> Iterator[HeartbeatNet]:
    two_links = bool(getattr(request, "param", False))
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    net = HeartbeatNet(tag, f"hbb-{tag}", [f"hbn{i}-{tag}" for i in range(3)], two_links=two_links)
    created: list[str] = []
    try:
        for ns in [net.bridge, *net.netns]:
            ip("netns", "add", ns)
            created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", net.bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", net.bridge, "link", "set", "br0", "up")
        for i, ns in enumerate(net.netns):
            ip("-n", ns, "link", "add", "eth0", "type", "veth",
               "peer", "name", f"p{i}", "netns", net.bridge)  # fmt: skip
            ip("-n", net.bridge, "link", "set", f"p{i}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{net.address(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        if two_links:
            ip("-n", net.bridge, "link", "add", "br1", "type", "bridge")
            ip("-n", net.bridge, "link", "set", "br1", "up")
            for i, ns in enumerate(net.netns):
                ip("-n", ns, "link", "add", "eth1", "type", "veth",
                   "peer", "name", f"q{i}", "netns", net.bridge)  # fmt: skip
                ip("-n", net.bridge, "link", "set", f"q{i}", "master", "br1", "up")
                ip("-n", ns, "addr", "add", f"{SUBNET2}.{i + 1}/24", "dev", "eth1")
                ip("-n", ns, "link", "set", "eth1", "up")
        yield net
    finally:
        for node in net.procs:
            node.stop()
        for ns in reversed(created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
