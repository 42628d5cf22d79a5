"""Network plumbing of a lab, via iproute2: namespaces, the bridge, veth links.

Each veth pair is created with both ends directly inside their namespaces, so
no lab interface ever exists in the host namespace and names only have to be
unique per namespace (concurrent labs cannot clash).
"""

from __future__ import annotations

import os

from lab.errors import LabError
from lab.names import BRIDGE_IFNAME, NODE_IFNAME, Endpoint
from lab.shell import run, try_run

NETNS_DIR = "/run/netns"


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def add_netns(name: str) -> None:
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def del_netns(name: str) -> str | None:
    if not netns_exists(name):
        return None
    return try_run(["ip", "netns", "del", name])


def netns_pids(name: str) -> list[int]:
    """PIDs of every process whose network namespace is `name`."""
    if not netns_exists(name):
        return []
    out = run(["ip", "netns", "pids", name])
    return [int(tok) for tok in out.split()]


def create_switch(switch_ns: str) -> None:
    add_netns(switch_ns)
    run(["ip", "-n", switch_ns, "link", "add", BRIDGE_IFNAME, "type", "bridge"])
    run(["ip", "-n", switch_ns, "link", "set", BRIDGE_IFNAME, "up"])


def attach(ep: Endpoint, switch_ns: str, prefixlen: int) -> None:
    """Create ep's veth pair (eth0 in ep.netns, ep.port on the bridge) and bring it up."""
    run(
        [
            "ip", "link", "add", NODE_IFNAME, "netns", ep.netns, "address", ep.mac,
            "type", "veth", "peer", "name", ep.port, "netns", switch_ns,
        ]
    )  # fmt: skip
    run(["ip", "-n", switch_ns, "link", "set", ep.port, "master", BRIDGE_IFNAME, "up"])
    run(["ip", "-n", ep.netns, "addr", "add", f"{ep.ip}/{prefixlen}", "dev", NODE_IFNAME])
    run(["ip", "-n", ep.netns, "link", "set", NODE_IFNAME, "up"])


def set_port(switch_ns: str, port: str, up: bool) -> None:
    run(["ip", "-n", switch_ns, "link", "set", port, "up" if up else "down"])


def port_is_up(switch_ns: str, port: str) -> bool:
    try:
        out = run(["ip", "-n", switch_ns, "-o", "link", "show", port])
    except LabError:
        return False
    flags = out.split("<", 1)[1].split(">", 1)[0].split(",") if "<" in out else []
    return "UP" in flags


def detach(ep: Endpoint, switch_ns: str) -> str | None:
    """Delete ep's veth pair synchronously (deleting either end removes both).

    Done explicitly before deleting a node namespace, because namespace teardown
    is asynchronous and a lingering peer would block re-creating the port name.
    """
    if not netns_exists(switch_ns):
        return None
    probe = try_run(["ip", "-n", switch_ns, "link", "show", ep.port])
    if probe is not None:
        return None  # already gone
    return try_run(["ip", "-n", switch_ns, "link", "del", ep.port])
