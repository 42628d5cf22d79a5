"""Telling the segment that a VIP moved: gratuitous ARP (IPv4) and unsolicited NA (IPv6).

Measured here (reference libs.md §2): ARP *request* GARPs (op=1) update a peer's
neighbour entry within ~4 ms and, unlike ARP replies, are not ignored inside the
peer's 1 s locktime; an unsolicited NA needs hop limit 255 and the Override flag.
The kernel sends no NA for a `nodad` address, so we send it ourselves. Neither
packet creates a missing neighbour entry; they only correct existing ones.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

from nodeagent.actuators.netns import in_netns

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ALL_NODES = "ff02::1"
NA_OVERRIDE = 0x20000000


def parse_mac(text: str) -> bytes:
    raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not an Ethernet MAC address: {text!r}")
    return raw


def build_garp_frame(mac: bytes, ip: ipaddress.IPv4Address) -> bytes:
    """A broadcast ARP request asking for our own address (sender = target = VIP)."""
    ether = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack(
        "!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, mac, ip.packed, b"\x00" * 6, ip.packed
    )
    return (ether + arp).ljust(60, b"\x00")


def build_unsolicited_na(target: ipaddress.IPv6Address, mac: bytes) -> bytes:
    """ICMPv6 type 136 with Override and a target link-layer option; the kernel fills the
    checksum of a raw ICMPv6 socket."""
    return struct.pack("!BBHI16s", 136, 0, 0, NA_OVERRIDE, target.packed) + struct.pack(
        "!BB6s", 2, 1, mac
    )


class Announcer:
    """An open socket that announces one VIP on one interface; keep it while the VIP is here."""

    def __init__(
        self,
        netns: str | None,
        ifname: str,
        ifindex: int,
        mac: bytes,
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    ) -> None:
        self.ip = ip
        self.ifname = ifname
        if isinstance(ip, ipaddress.IPv4Address):
            self.packet = build_garp_frame(mac, ip)
            self.dest: tuple[object, ...] = (ifname, 0)

            def open_arp() -> socket.socket:
                # Protocol 0: send-only, so no received frames pile up in the buffer.
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                sock.bind((ifname, 0))
                return sock

            self.sock = in_netns(netns, open_arp)
        else:
            self.packet = build_unsolicited_na(ip, mac)
            self.dest = (ALL_NODES, 0, 0, ifindex)

            def open_icmp6() -> socket.socket:
                sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
                sock.bind((str(ip), 0, 0, 0))
                return sock

            self.sock = in_netns(netns, open_icmp6)

    def send_once(self) -> None:
        self.sock.sendto(self.packet, self.dest)

    async def burst(self, count: int, interval: float) -> None:
        for i in range(count):
            if i:
                await asyncio.sleep(interval)
            self.send_once()

    def close(self) -> None:
        self.sock.close()
