"""Heartbeat links: the interface every medium implements, and its UDP implementation.

A link carries opaque packets. `broadcast` sends one to every peer reachable on the link
(each heartbeat goes out once per link per keepalive); `reply` answers the endpoint a
packet came from (ACKs go back the way the heartbeat came). A serial link implements the
same `HeartbeatTransport` protocol with framing on the byte stream; `reply` ignores the
address there. (`HeartbeatLink` is the Cluster spec's word for a configured link.)
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

Deliver = Callable[[bytes, object], None]
"""Called with (packet bytes, the sender's endpoint to pass back to `reply`)."""

DSCP_CS6 = 0xC0  # network control class, as routing protocols and corosync use


class HeartbeatTransport(Protocol):
    name: str
    send_errors: int

    async def open(self, deliver: Deliver) -> None: ...

    def broadcast(self, data: bytes) -> int:
        """Send to every destination; returns how many sends were attempted."""
        ...

    def reply(self, data: bytes, to: object) -> None: ...

    def stats(self) -> dict[str, int]:
        """The link's error counters (they change only on faults)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class UdpLinkConfig:
    name: str
    bind: str
    """Local address to bind ("0.0.0.0" or "::" for any)."""
    port: int
    destinations: tuple[tuple[str, int], ...]
    interface: str | None = None
    """Pin the socket to this interface (SO_BINDTODEVICE), for a dedicated heartbeat NIC."""


class UdpTransport(asyncio.DatagramProtocol):
    def __init__(self, config: UdpLinkConfig) -> None:
        self.config = config
        self.name = config.name
        self.send_errors = 0
        self.last_error: str | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._deliver: Deliver | None = None

    def _socket(self) -> socket.socket:
        cfg = self.config
        family = socket.AF_INET6 if ipaddress.ip_address(cfg.bind).version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, DSCP_CS6)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, DSCP_CS6)
            if cfg.interface:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, cfg.interface.encode())
            sock.bind((cfg.bind, cfg.port))
        except OSError as err:
            sock.close()
            hint = (
                "is another agent running, or is the port taken?"
                if err.errno == errno.EADDRINUSE
                else "is the address configured on this node?"
            )
            raise OSError(
                err.errno,
                f"heartbeat link {cfg.name}: cannot bind udp {cfg.bind}:{cfg.port}"
                + (f" on {cfg.interface}" if cfg.interface else "")
                + f": {err.strerror}; {hint}",
            ) from err
        sock.setblocking(False)
        return sock

    async def open(self, deliver: Deliver) -> None:
        self._deliver = deliver
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, sock=self._socket())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self._deliver is not None:
            self._deliver(data, addr)

    def error_received(self, exc: Exception) -> None:
        # A link that is down (ENETUNREACH, EHOSTUNREACH ...) must not stop the others.
        self.send_errors += 1
        self.last_error = str(exc)

    def broadcast(self, data: bytes) -> int:
        if self._transport is None:
            return 0
        for dest in self.config.destinations:
            self._transport.sendto(data, dest)
        return len(self.config.destinations)

    def reply(self, data: bytes, to: object) -> None:
        if self._transport is not None:
            self._transport.sendto(data, to)  # type: ignore[arg-type]

    def stats(self) -> dict[str, int]:
        return {"send_errors": self.send_errors}

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
