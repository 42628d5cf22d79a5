"""The VIP's interface choice (IPaddr2's findif), pure logic."""

from __future__ import annotations

import ipaddress

import pytest

from nodeagent.actuators.findif import NodeAddress, choose_interface


def addr(interface: str, text: str) -> NodeAddress:
    return NodeAddress(interface=interface, index=1, address=ipaddress.ip_interface(text))


def test_choose_interface_by_subnet() -> None:
    node = [
        addr("lo", "127.0.0.1/8"),
        addr("eth0", "192.168.1.5/24"),
        addr("eth1", "10.0.0.5/16"),
        addr("eth1", "fe80::1/64"),
        addr("eth2", "fd00::5/64"),
    ]
    vip4 = ipaddress.ip_interface("192.168.1.10/24")
    assert choose_interface(vip4, node) == "eth0"
    assert choose_interface(ipaddress.ip_interface("10.0.7.7/16"), node) == "eth1"
    assert choose_interface(ipaddress.ip_interface("fd00::10/64"), node) == "eth2"
    with pytest.raises(LookupError, match=r"no interface .* in 172\.16\.0\.0/24"):
        choose_interface(ipaddress.ip_interface("172.16.0.1/24"), node)
    with pytest.raises(LookupError, match=r"several interfaces .*\(eth0, eth3\)"):
        choose_interface(vip4, [*node, addr("eth3", "192.168.1.6/24")])
