"""One long-lived pyroute2 handle per network namespace.

Opening an IPRoute costs ~13 ms and an add/del on an open one ~1 ms (libs.md §2), so
handles are kept and shared. pyroute2's sync API is used from worker threads under a
per-handle lock: netlink sockets are not safe for concurrent requests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from nodeagent.actuators.findif import IPInterface, NodeAddress

EEXIST = 17
EADDRNOTAVAIL = 99
T = TypeVar("T")

__all__ = ["InterfaceInfo", "Netlink", "NetlinkError", "close_all", "netlink_for"]


class InterfaceInfo:
    def __init__(self, index: int, name: str, mac: str | None) -> None:
        self.index = index
        self.name = name
        self.mac = mac


class Netlink:
    def __init__(self, netns: str | None) -> None:
        if netns is not None and not Path("/run/netns", netns).exists():
            # pyroute2 would silently create a missing namespace.
            raise FileNotFoundError(f"network namespace {netns!r} does not exist")
        self.netns = netns
        self._lock = threading.Lock()
        self._ipr: Any = None

    def _locked(self, fn: Callable[[Any], T]) -> T:
        with self._lock:
            if self._ipr is None:
                self._ipr = IPRoute(netns=self.netns) if self.netns else IPRoute()
            return fn(self._ipr)

    async def _call(self, fn: Callable[[Any], T]) -> T:
        return await asyncio.to_thread(self._locked, fn)

    async def links(self) -> list[InterfaceInfo]:
        def get(ipr: Any) -> list[InterfaceInfo]:
            return [
                InterfaceInfo(m["index"], m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_ADDRESS"))
                for m in ipr.get_links()
            ]

        return await self._call(get)

    async def link(self, name: str) -> InterfaceInfo | None:
        return next((lk for lk in await self.links() if lk.name == name), None)

    async def addresses(self) -> list[NodeAddress]:
        def get(ipr: Any) -> list[NodeAddress]:
            names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
            found = []
            for msg in ipr.get_addr():
                ip = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
                if ip is None:
                    continue
                flags = msg.get_attr("IFA_FLAGS")
                found.append(
                    NodeAddress(
                        interface=names.get(msg["index"], str(msg["index"])),
                        index=msg["index"],
                        address=ipaddress.ip_interface(f"{ip}/{msg['prefixlen']}"),
                        flags=msg["flags"] if flags is None else flags,
                    )
                )
            return found

        return await self._call(get)

    async def add_address(self, index: int, address: IPInterface) -> bool:
        """Add; False if it was already there."""

        def add(ipr: Any) -> bool:
            kwargs: dict[str, Any] = {
                "index": index,
                "address": str(address.ip),
                "prefixlen": address.network.prefixlen,
            }
            if isinstance(address, ipaddress.IPv4Interface):
                if address.network.prefixlen < 31:
                    kwargs["broadcast"] = str(address.network.broadcast_address)
            else:
                # A moved VIP must answer at once; DAD would hold it tentative for ~1.5 s.
                kwargs["flags"] = IFA_F_NODAD
            try:
                ipr.addr("add", **kwargs)
            except NetlinkError as exc:
                if exc.code == EEXIST:
                    return False
                raise
            return True

        return await self._call(add)

    async def delete_address(self, index: int, address: IPInterface) -> bool:
        """Delete; False if it was not there."""

        def delete(ipr: Any) -> bool:
            try:
                ipr.addr(
                    "del", index=index, address=str(address.ip), prefixlen=address.network.prefixlen
                )
            except NetlinkError as exc:
                if exc.code == EADDRNOTAVAIL:
                    return False
                raise
            return True

        return await self._call(delete)

    def close(self) -> None:
        with self._lock:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None


_handles: dict[str | None, Netlink] = {}
_handles_lock = threading.Lock()


def netlink_for(netns: str | None) -> Netlink:
    with _handles_lock:
        handle = _handles.get(netns)
        if handle is None:
            handle = _handles[netns] = Netlink(netns)
        return handle


def close_all() -> None:
    """Close every shared handle (agent shutdown; tests before deleting a namespace)."""
    with _handles_lock:
        handles = list(_handles.values())
        _handles.clear()
    for handle in handles:
        handle.close()
