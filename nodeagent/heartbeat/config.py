"""What one node's heartbeat service needs, and how to derive it from the Cluster spec."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nodeagent.heartbeat.serial import SerialLinkConfig
from nodeagent.heartbeat.timing import HeartbeatTiming
from nodeagent.heartbeat.udp import UdpLinkConfig

if TYPE_CHECKING:
    from controller.api.cluster import ClusterSpec

DEFAULT_PORT = 694  # Heartbeat's udpport


@dataclass(frozen=True)
class PeerAddress:
    name: str
    address: str
    port: int = DEFAULT_PORT


@dataclass(frozen=True)
class HeartbeatConfig:
    node: str
    cluster: str
    key: bytes
    timing: HeartbeatTiming
    address: str
    """This node's cluster address: the main link binds it."""
    peers: tuple[PeerAddress, ...]
    port: int = DEFAULT_PORT
    extra_links: tuple[UdpLinkConfig, ...] = field(default=())
    serial_links: tuple[SerialLinkConfig, ...] = field(default=())
    # quorum.mode two-node: a node's serving lease needs no peer and a lost peer needs only
    # this node's word; fencing makes it safe (nodeagent/two_node.py, docs/safety.md).
    two_node: bool = False

    def __post_init__(self) -> None:
        names = [p.name for p in self.peers]
        if self.node in names or len(set(names)) != len(names):
            raise ValueError(
                f"heartbeat peers {names}: each peer once, and not this node ({self.node})"
            )
        if not self.key:
            raise ValueError("heartbeat key is empty: give the cluster key bytes")

    @property
    def members(self) -> list[str]:
        return [self.node, *(p.name for p in self.peers)]

    def main_link(self) -> UdpLinkConfig:
        return UdpLinkConfig(
            name="cluster",
            bind=self.address,
            port=self.port,
            destinations=tuple((p.address, p.port) for p in self.peers),
        )

    def link_configs(self) -> list[UdpLinkConfig]:
        return [self.main_link(), *self.extra_links]


def _any(address: str) -> str:
    return "::" if ipaddress.ip_address(address).version == 6 else "0.0.0.0"


def from_cluster_spec(
    spec: ClusterSpec, node: str, cluster: str, key: bytes, port: int = DEFAULT_PORT
) -> HeartbeatConfig:
    """The main link over every node's `address`, plus this node's extra `udp` links and
    its `serial` links (named serial0, serial1, ... in the order given)."""
    me = next((n for n in spec.nodes if n.name == node), None)
    if me is None:
        known = ", ".join(n.name for n in spec.nodes)
        raise ValueError(f"node {node!r} is not in the Cluster spec's nodes ({known})")
    extra = []
    serial: list[SerialLinkConfig] = []
    for i, link in enumerate(me.heartbeat):
        if link.serial is not None:
            serial.append(
                SerialLinkConfig(f"serial{len(serial)}", link.serial.device, link.serial.baud)
            )
        if link.udp is None:
            continue
        extra.append(
            UdpLinkConfig(
                name=f"udp{i}-{link.udp.interface or link.udp.peer}",
                bind=_any(link.udp.peer),
                port=link.udp.port,
                destinations=((link.udp.peer, link.udp.port),),
                interface=link.udp.interface,
            )
        )
    return HeartbeatConfig(
        node=node,
        cluster=cluster,
        key=key,
        timing=HeartbeatTiming.from_spec(spec.timing),
        address=me.address,
        port=port,
        peers=tuple(PeerAddress(n.name, n.address, port) for n in spec.nodes if n.name != node),
        extra_links=tuple(extra),
        serial_links=tuple(serial),
        two_node=spec.quorum.mode == "two-node",
    )
