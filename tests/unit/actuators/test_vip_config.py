"""VIP config validation, interface choice and announcement packets (pure logic)."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from nodeagent.actuators import ConfigError
from nodeagent.actuators.announce import build_garp_frame, build_unsolicited_na, parse_mac
from nodeagent.actuators.vip_config import ArpConfig, IpConfig, NodeAddress, choose_interface


def addr(interface: str, text: str) -> NodeAddress:
    return NodeAddress(interface=interface, index=1, address=ipaddress.ip_interface(text))


def test_ip_config_defaults_and_arp() -> None:
    cfg = IpConfig.from_spec({"address": "192.168.1.10/24"})
    assert cfg.interface is None and cfg.arp == ArpConfig(count=5, interval=0.2, refresh=10.0)
    cfg = IpConfig.from_spec(
        {"address": "fd00::10/64", "interface": "eth1", "arp": {"count": 2, "interval": "50ms"}}
    )
    assert cfg.family == 6 and cfg.arp.count == 2 and cfg.arp.interval == 0.05


@pytest.mark.parametrize(
    ("spec", "message"),
    [({"address": "192.168.1.10"}, "has no prefix length"),
     ({"address": "192.168.1.300/24"}, r"ip\.address: "),
     ({"address": "192.168.1.0/24"}, "network or broadcast"),
     ({"address": "127.0.0.5/8"}, "cannot serve"),
     ({"address": "10.0.0.1/24", "interface": "a-very-long-interface"}, "not a valid interface"),
     ({"address": "10.0.0.1/24", "arp": {"count": 0}}, r"ip\.arp\.count"),
     ({"address": "10.0.0.1/24", "netmask": 24}, r"unknown key\(s\) netmask")],
)  # fmt: skip
def test_ip_config_errors(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IpConfig.from_spec(spec)


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
    with pytest.raises(ConfigError, match=r"no interface .* in 172\.16\.0\.0/24"):
        choose_interface(ipaddress.ip_interface("172.16.0.1/24"), node)
    with pytest.raises(ConfigError, match=r"several interfaces .*\(eth0, eth3\)"):
        choose_interface(vip4, [*node, addr("eth3", "192.168.1.6/24")])


def test_garp_frame_is_a_broadcast_arp_request_for_the_vip() -> None:
    mac = parse_mac("02:77:00:00:00:01")
    frame = build_garp_frame(mac, ipaddress.IPv4Address("10.77.0.100"))
    assert len(frame) == 60
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac
    assert struct.unpack("!H", frame[12:14])[0] == 0x0806
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)  # op 1: request
    assert frame[22:28] == mac and frame[28:32] == bytes([10, 77, 0, 100])
    assert frame[32:38] == b"\x00" * 6 and frame[38:42] == bytes([10, 77, 0, 100])


def test_unsolicited_na_has_override_and_target_lladdr() -> None:
    mac = parse_mac("02-77-00-00-00-02")
    target = ipaddress.IPv6Address("fd77::100")
    packet = build_unsolicited_na(target, mac)
    kind, code, _, flags = struct.unpack("!BBHI", packet[:8])
    assert (kind, code, flags) == (136, 0, 0x20000000)
    assert packet[8:24] == target.packed and packet[24:] == b"\x02\x01" + mac
    with pytest.raises(ValueError, match="not an Ethernet MAC"):
        parse_mac("02:77")
