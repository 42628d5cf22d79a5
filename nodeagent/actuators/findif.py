"""Which interface a floating IP goes on when its spec names none (IPaddr2's findif).

The one interface that already has an address in the VIP's subnet. Pure logic, so the
choice is tested without a network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


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
        raise LookupError(
            f"ip.interface: no interface on this node has an address in {vip.network}; "
            "set ip.interface explicitly or give the node an address in that subnet"
        )
    if len(candidates) > 1:
        raise LookupError(
            f"ip.interface: several interfaces have addresses in {vip.network} "
            f"({', '.join(candidates)}); set ip.interface to the one to use"
        )
    return candidates[0]
