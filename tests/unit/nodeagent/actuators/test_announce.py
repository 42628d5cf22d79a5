"""The packets a VIP is announced with: gratuitous ARP and unsolicited NA (pure logic)."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from nodeagent.actuators.announce import build_garp_frame, build_unsolicited_na, parse_mac


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
