"""Pure naming/addressing rules for a lab: namespaces, interfaces, MACs, addresses.

Everything here is derived from the lab name and node names alone, so a later
`ha lab down NAME` can find what an earlier `ha lab up` built even when the
state file is gone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lab.errors import LabError

# No '-' in lab names: namespace names are "vl-<lab>-<role>", and a sweep by
# prefix must never confuse lab "a" with lab "a-b".
LAB_NAME_RE = re.compile(r"^[a-z0-9]{1,20}$")
NODE_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
RESERVED_NODE_NAMES = frozenset({"sw", "cl", "client", "switch"})
CLIENT = "client"
MAX_NODES = 200
NETNS_PREFIX = "vl-"
NODE_IFNAME = "eth0"
BRIDGE_IFNAME = "br0"
CLIENT_HOST = 250
FIRST_NODE_HOST = 11


def validate_lab_name(name: str) -> str:
    if not LAB_NAME_RE.match(name):
        raise LabError(
            f"lab name {name!r} is invalid: use 1-20 characters from [a-z0-9] "
            "(no '-', it separates the parts of namespace names)"
        )
    return name


def validate_node_names(names: list[str]) -> list[str]:
    if not names:
        raise LabError("a lab needs at least one node (--nodes >= 1)")
    if len(names) > MAX_NODES:
        raise LabError(f"{len(names)} nodes requested: at most {MAX_NODES} fit in one /24")
    seen: set[str] = set()
    for n in names:
        if not NODE_NAME_RE.match(n) or n in RESERVED_NODE_NAMES:
            raise LabError(
                f"node name {n!r} is invalid: use [a-z][a-z0-9]{{0,7}}, not one of "
                f"{sorted(RESERVED_NODE_NAMES)}"
            )
        if n in seen:
            raise LabError(f"node name {n!r} is given twice: node names must be unique")
        seen.add(n)
    return names


def default_node_names(count: int) -> list[str]:
    if count < 1:
        raise LabError(f"--nodes must be >= 1, got {count}")
    return [f"n{i}" for i in range(1, count + 1)]


def subnet_octets(lab: str) -> tuple[int, int]:
    """The (x, y) of the lab's 10.x.y.0/24, stable per lab name.

    The subnet only exists inside the lab's namespaces, so collisions between
    labs are harmless; distinct subnets just make captures and logs readable.
    """
    digest = hashlib.sha256(lab.encode()).digest()
    return 200 + digest[0] % 50, digest[1]


@dataclass(frozen=True)
class Endpoint:
    """One host on the lab bridge: a node or the client."""

    name: str
    netns: str
    ip: str
    mac: str
    port: str  # bridge-side veth name, inside the switch namespace


@dataclass(frozen=True)
class Layout:
    lab: str
    nodes: tuple[Endpoint, ...]
    client: Endpoint
    switch_netns: str
    prefixlen: int = 24

    @property
    def subnet(self) -> str:
        a, b, c, _ = self.client.ip.split(".")
        return f"{a}.{b}.{c}.0/{self.prefixlen}"

    def node(self, name: str) -> Endpoint:
        for ep in self.nodes:
            if ep.name == name:
                return ep
        raise LabError(
            f"lab {self.lab!r} has no node {name!r}; nodes are "
            f"{', '.join(e.name for e in self.nodes)}"
        )

    def all_netns(self) -> list[str]:
        return [self.switch_netns, self.client.netns, *(n.netns for n in self.nodes)]


def netns_name(lab: str, role: str) -> str:
    return f"{NETNS_PREFIX}{lab}-{role}"


def owns_netns(lab: str, netns: str) -> bool:
    """True if `netns` is one of lab's namespaces (used by the name-based sweep)."""
    prefix = f"{NETNS_PREFIX}{lab}-"
    return netns.startswith(prefix) and "-" not in netns[len(prefix) :]


def make_layout(lab: str, node_names: list[str]) -> Layout:
    validate_lab_name(lab)
    validate_node_names(node_names)
    x, y = subnet_octets(lab)
    nodes = tuple(
        Endpoint(
            name=n,
            netns=netns_name(lab, n),
            ip=f"10.{x}.{y}.{FIRST_NODE_HOST + i}",
            mac=f"02:76:{x:02x}:{y:02x}:00:{i + 1:02x}",
            port=f"p-{n}",
        )
        for i, n in enumerate(node_names)
    )
    client = Endpoint(
        name=CLIENT,
        netns=netns_name(lab, "cl"),
        ip=f"10.{x}.{y}.{CLIENT_HOST}",
        mac=f"02:76:{x:02x}:{y:02x}:ff:fe",
        port="p-client",
    )
    return Layout(lab=lab, nodes=nodes, client=client, switch_netns=netns_name(lab, "sw"))


def render_argv(template: list[str], *, node: str, ip: str, disk: str, lab: str) -> list[str]:
    """Fill {node}, {ip}, {disk}, {lab} in each argv element; other braces are an error."""
    out = []
    for i, part in enumerate(template):
        try:
            out.append(part.format(node=node, ip=ip, disk=disk, lab=lab))
        except (KeyError, IndexError, ValueError) as exc:
            raise LabError(
                f"payload argv[{i}] {part!r} has a bad placeholder ({exc}): only "
                "{node}, {ip}, {disk}, {lab} are known; write literal braces as {{ }}"
            ) from exc
    return out
