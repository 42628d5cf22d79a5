"""Every address of a network namespace, read with one rtnetlink dump and parsed with
struct: the few fields the address table needs (interface index, address, prefix length,
flags), at a few microseconds per address where pyroute2's generic decoder took tens.
Blocking; netlink.py calls it from a worker thread under its lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import os
import socket
import struct
import threading
from typing import Any

RTM_NEWADDR = 20
RTM_GETADDR = 22
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
CLONE_NEWNET = 0x40000000
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_ATTR = struct.Struct("=HH")  # rtattr: length, type

# (interface index, address, prefix length, flags)
Row = tuple[int, Any, int, int]


def _socket_in(netns: str | None) -> socket.socket:
    """A route netlink socket of `netns` (the caller's namespace if None). A socket stays
    in the namespace it was made in, so a short-lived thread enters the namespace (setns
    acts on the calling thread only) to make it."""
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def enter_and_make() -> None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns {netns}: {os.strerror(errno)}")
            finally:
                os.close(fd)
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=enter_and_make, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


class AddressDump:
    def __init__(self, netns: str | None) -> None:
        self.sock = _socket_in(netns)
        self.sock.bind((0, 0))
        self._sequence = 0

    def close(self) -> None:
        self.sock.close()

    def dump(self) -> list[Row]:
        self._sequence = self._sequence % 0xFFFFFFFF + 1
        request = _HEADER.pack(
            _HEADER.size + _IFADDR.size, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP,
            self._sequence, 0,
        ) + _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)  # fmt: skip
        self.sock.sendto(request, (0, 0))
        rows: list[Row] = []
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, sequence, _port = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise OSError("malformed netlink message")
                body = offset + _HEADER.size
                end = offset + length
                offset += (length + 3) & ~3
                if sequence != self._sequence:
                    continue  # a late answer to an earlier request
                if kind == NLMSG_DONE:
                    return rows
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, body)
                    if code:
                        raise OSError(-code, f"address dump: {os.strerror(-code)}")
                    continue
                if kind == RTM_NEWADDR:
                    row = _address(data, body, end)
                    if row is not None:
                        rows.append(row)


def _address(data: bytes, body: int, end: int) -> Row | None:
    family, prefixlen, flags, _scope, index = _IFADDR.unpack_from(data, body)
    local = address = None
    offset = body + _IFADDR.size
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        value = data[offset + _ATTR.size : offset + length]
        if kind == IFA_LOCAL:
            local = value
        elif kind == IFA_ADDRESS:
            address = value
        elif kind == IFA_FLAGS and len(value) == 4:
            (flags,) = struct.unpack("=I", value)
        offset += (length + 3) & ~3
    raw = local or address
    if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    ip = ipaddress.IPv4Address(raw) if family == socket.AF_INET else ipaddress.IPv6Address(raw)
    return (index, ip, prefixlen, flags)
