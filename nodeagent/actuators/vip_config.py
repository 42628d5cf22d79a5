"""`ip: {address: 192.168.1.10/24, interface: eth0, arp: {...}}` and the interface choice.

Without an interface, the VIP goes where IPaddr2's findif would put it: on the one
interface that already has an address in the same subnet. Pure logic, so the
choice is tested without a network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeagent.actuators.parsing import (
    ConfigError,
    parse_duration,
    reject_unknown,
    require_mapping,
    require_positive_int,
    require_str,
)

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class ArpConfig:
    """Announcements after a move: `count` packets `interval` apart, then one every `refresh`
    (0 = no periodic refresh)."""

    count: int = 5
    interval: float = 0.2
    refresh: float = 10.0

    @classmethod
    def from_mapping(cls, spec: object, where: str = "ip.arp") -> ArpConfig:
        if spec is None:
            return cls()
        arp = require_mapping(spec, where)
        reject_unknown(arp, {"count", "interval", "refresh"}, where)
        default = cls()
        return cls(
            count=require_positive_int(arp.get("count", default.count), f"{where}.count"),
            interval=parse_duration(arp.get("interval", default.interval), f"{where}.interval"),
            refresh=parse_duration(arp.get("refresh", default.refresh), f"{where}.refresh"),
        )


@dataclass(frozen=True)
class IpConfig:
    address: IPInterface
    interface: str | None = None
    arp: ArpConfig = field(default_factory=ArpConfig)

    @property
    def family(self) -> int:
        return self.address.version

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> IpConfig:
        reject_unknown(spec, {"address", "interface", "arp"}, "ip")
        text = require_str(spec.get("address"), "ip.address")
        if "/" not in text:
            raise ConfigError(
                f"ip.address: {text!r} has no prefix length; write it as e.g. "
                "'192.168.1.10/24' or 'fd00::10/64'"
            )
        try:
            address = ipaddress.ip_interface(text)
        except ValueError as exc:
            raise ConfigError(f"ip.address: {exc}; write e.g. '192.168.1.10/24'") from None
        if address.ip.is_loopback or address.ip.is_multicast or address.ip.is_unspecified:
            raise ConfigError(f"ip.address: {text} cannot serve as a service address")
        if (
            address.version == 4
            and address.network.prefixlen < 32
            and (address.ip in (address.network.network_address, address.network.broadcast_address))
        ):
            raise ConfigError(
                f"ip.address: {address.ip} is the network or broadcast address of "
                f"{address.network}; pick a host address"
            )
        interface = spec.get("interface")
        if interface is not None:
            interface = require_str(interface, "ip.interface")
            if len(interface) > 15 or "/" in interface or " " in interface:
                raise ConfigError(f"ip.interface: {interface!r} is not a valid interface name")
        return cls(
            address=address, interface=interface, arp=ArpConfig.from_mapping(spec.get("arp"))
        )


@dataclass(frozen=True)
class NodeAddress:
    """One address configured on one interface of this node."""

    interface: str
    index: int
    address: IPInterface
    flags: int = 0


def choose_interface(vip: IPInterface, addresses: Iterable[NodeAddress]) -> str:
    """The single interface holding an address in the VIP's subnet (the VIP itself counts)."""
    candidates = sorted(
        {
            a.interface
            for a in addresses
            if a.address.version == vip.version
            and a.address.ip in vip.network
            and not a.address.ip.is_link_local
            and not a.address.ip.is_loopback
        }
    )
    if not candidates:
        raise ConfigError(
            f"ip.interface: no interface on this node has an address in {vip.network}; "
            "set ip.interface explicitly or give the node an address in that subnet"
        )
    if len(candidates) > 1:
        raise ConfigError(
            f"ip.interface: several interfaces have addresses in {vip.network} "
            f"({', '.join(candidates)}); set ip.interface to the one to use"
        )
    return candidates[0]
