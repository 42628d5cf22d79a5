"""The listener's side of a new replication connection, before it may claim the link.

Only the peer's addresses are served; a connection from anywhere else is closed at once.
TLS (if configured) and the HMAC challenge-response then run under a short timeout, and
only an authenticated connection goes on to take the node's single link (node.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING

from blockrepl.replication import tls, wire
from blockrepl.replication.link import AuthError, PeerError, ReplicationLink

if TYPE_CHECKING:
    from blockrepl.replication.node import ReplicaNode

log = logging.getLogger(__name__)


async def authenticate(
    node: ReplicaNode, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> ReplicationLink | None:
    """The authenticated link, or None after reporting why not (in ``last_error`` only
    while no link is up: a stray attempt does not blame a working link)."""
    cfg = node.cfg
    if cfg.tls is not None and node.tls_contexts is not None:
        try:
            await tls.accept(writer, node.tls_contexts[0], cfg.tls, cfg.timeout)
        except tls.TLSPeerError as exc:
            if not node.busy:
                node.last_error = f"TLSPeerError: {exc}"
            log.warning("replication link from %s: %s", writer.get_extra_info("peername"), exc)
            writer.close()
            return None
    link = ReplicationLink(reader, writer)
    failure: BaseException
    try:
        await link.authenticate(cfg.secret, False, cfg.auth_timeout)
        return link
    except (wire.FrameError, AuthError, PeerError) as exc:
        failure, error = exc, f"{type(exc).__name__}: {exc}"
        if isinstance(exc, wire.FrameError):
            await link.refuse(str(exc))
    except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
        failure = exc
        error = f"authentication not completed: {exc or type(exc).__name__}"
    why = tls.explain(failure, cfg.tls, link.authenticated)
    error = f"{why} ({error})" if why else error
    if not node.busy:
        node.last_error = error
    log.warning("replication link from %s: %s", link.peername, error)
    await link.close()
    return None


async def is_peer(addr: str, hosts: tuple[str, ...]) -> bool:
    """Whether ``addr`` is an address of one of ``hosts`` (names are resolved at each
    connection, so a peer whose name moves to a new address is still accepted)."""
    want = canonical(addr)
    loop = asyncio.get_running_loop()
    for host in hosts:
        if canonical(host) == want:
            return True
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            continue
        if any(canonical(str(info[4][0])) == want for info in infos):
            return True
    return False


def address(peername: object) -> str:
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return str(peername)


def canonical(addr: str) -> str:
    """One spelling per address: IPv4-mapped IPv6 as IPv4, zero-compressed IPv6."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr.lower()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
