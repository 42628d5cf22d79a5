"""Real network namespaces for VIP tests: two "nodes" and a client on one bridge.

    n1 (eth0 02:77:..:01, 10.77.0.1)  --veth--+
                                               br0 in client ns (10.77.0.254)
    n2 (eth0 02:77:..:02, 10.77.0.2)  --veth--+

Names carry the pid and a random suffix so parallel runs never collide, and every
namespace is deleted in `finally`, also when the test fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from nodeagent.actuators import netlink


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@dataclass(frozen=True)
class Topology:
    n1: str
    n2: str
    client: str
    mac1: str = "02:77:00:00:00:01"
    mac2: str = "02:77:00:00:00:02"
    subnet4: str = "10.77.0"
    subnet6: str = "fd77::"

    def run(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv], check=check, capture_output=True, text=True
        )

    def neighbour_mac(self, address: str) -> str | None:
        out = ip("-n", self.client, "neigh", "show", address)
        fields = out.split()
        return fields[fields.index("lladdr") + 1] if "lladdr" in fields else None


def _require_root_and_ip() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' is not installed")


@pytest.fixture
def topology() -> Iterator[Topology]:
    _require_root_and_ip()
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    topo = Topology(n1=f"vn1-{tag}", n2=f"vn2-{tag}", client=f"vcl-{tag}")
    created: list[str] = []
    try:
        for ns in (topo.n1, topo.n2, topo.client):
            ip("netns", "add", ns)
            created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", topo.client, "link", "add", "br0", "type", "bridge")
        ip("-n", topo.client, "link", "set", "br0", "up")
        ip("-n", topo.client, "addr", "add", f"{topo.subnet4}.254/24", "dev", "br0")
        ip("-n", topo.client, "addr", "add", f"{topo.subnet6}fe/64", "dev", "br0", "nodad")
        for i, (ns, mac) in enumerate(((topo.n1, topo.mac1), (topo.n2, topo.mac2)), start=1):
            port = f"p{i}"
            ip("-n", ns, "link", "add", "eth0", "address", mac, "type", "veth",
               "peer", "name", port, "netns", topo.client)  # fmt: skip
            ip("-n", topo.client, "link", "set", port, "master", "br0", "up")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "addr", "add", f"{topo.subnet4}.{i}/24", "dev", "eth0")
            ip("-n", ns, "addr", "add", f"{topo.subnet6}{i}/64", "dev", "eth0", "nodad")
        yield topo
    finally:
        netlink.close_all()
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
