"""One long-lived pyroute2 handle per network namespace.

Opening an IPRoute costs ~13 ms and an add/del on an open one ~1 ms (libs.md §2), so
handles are kept and shared. pyroute2's sync API is used from worker threads under a
per-handle lock: netlink sockets are not safe for concurrent requests.

A node with many floating IPs observes each of them every turn, and a dump of every
address is parsed in Python at tens of microseconds per address: one dump per VIP made a
turn quadratic in the number of groups. So the address table is kept: dumped at most
every TABLE_AGE, updated in place by this handle's own adds and deletes (the kernel
acknowledged them), and indexed by address. A change made by someone else is seen
within TABLE_AGE. The dump itself is parsed by netlink_dump.py, not pyroute2, whose
generic decoding took ~80 ms for a thousand addresses: most of an idle agent's CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from nodeagent.actuators.findif import IPInterface, NodeAddress
from nodeagent.actuators.netlink_dump import AddressDump

EEXIST = 17
EADDRNOTAVAIL = 99
T = TypeVar("T")
TABLE_AGE = 1.0

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
        # The address table: (dumped at, addresses); None when it must be dumped again.
        self._table: tuple[float, list[NodeAddress]] | None = None
        self._by_ip: dict[Any, list[NodeAddress]] = {}
        self._links: tuple[float, list[InterfaceInfo]] | None = None
        self._pending: asyncio.Future[list[NodeAddress]] | None = None  # the dump under way
        self._journal: list[tuple[int, IPInterface, bool]] = []  # our changes during it
        self._unknown = 0  # changes of unknown outcome: a dump racing one is not kept
        self._dumper: AddressDump | None = None
        self._made: dict[tuple[str, int, Any, int, int], NodeAddress] = {}

    def _locked(self, fn: Callable[[Any], T]) -> T:
        with self._lock:
            if self._ipr is None:
                self._ipr = IPRoute(netns=self.netns) if self.netns else IPRoute()
            return fn(self._ipr)

    async def _call(self, fn: Callable[[Any], T]) -> T:
        return await asyncio.to_thread(self._locked, fn)

    async def links(self) -> list[InterfaceInfo]:
        cached = self._links
        if cached is not None and time.monotonic() - cached[0] < TABLE_AGE:
            return cached[1]

        def get(ipr: Any) -> list[InterfaceInfo]:
            return [
                InterfaceInfo(m["index"], m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_ADDRESS"))
                for m in ipr.get_links()
            ]

        at = time.monotonic()
        found = await self._call(get)
        self._links = (at, found)
        return found

    async def link(self, name: str) -> InterfaceInfo | None:
        found = next((lk for lk in await self.links() if lk.name == name), None)
        if found is None and self._links is not None:
            self._links = None  # not in the kept list: maybe created since; look again
            found = next((lk for lk in await self.links() if lk.name == name), None)
        return found

    async def addresses(self, max_age: float = TABLE_AGE) -> list[NodeAddress]:
        """Every address on every interface (the kept table, at most `max_age` old)."""
        table = self._table
        if table is not None and time.monotonic() - table[0] < max_age:
            return table[1]
        loop = asyncio.get_running_loop()
        pending = self._pending
        if max_age > 0 and pending is not None and pending.get_loop() is loop:
            # A dump is under way: share it (hundreds of VIPs found the table stale at
            # once and each dumped, ten dumps a second).
            with contextlib.suppress(Exception):
                return await asyncio.shield(pending)
        future: asyncio.Future[list[NodeAddress]] = loop.create_future()
        self._pending = future
        try:
            found = await self._dump()
            future.set_result(found)
            return found
        finally:
            if not future.done():
                future.cancel()
            if self._pending is future:
                self._pending = None

    async def _dump(self) -> list[NodeAddress]:
        unknown, seen, at = self._unknown, len(self._journal), time.monotonic()
        found = await self._dump_addresses()
        journal, self._journal = self._journal[seen:], []
        if unknown != self._unknown:
            return found  # a change of unknown outcome raced it: answer, but keep nothing
        # Our own changes acknowledged while the dump ran may be in it or not: apply them
        # again (each is idempotent) and the table is exact as of now.
        exact: list[NodeAddress] | None = found
        for index, address, added in journal:
            exact = self._apply(exact, index, address, added)
        if exact is None:
            return found
        self._keep(at, exact)
        return exact

    async def addresses_at(self, ip: Any) -> list[NodeAddress]:
        """The addresses equal to `ip` (an ipaddress address), on any interface."""
        found = await self.addresses()
        if self._table is None or self._table[1] is not found:
            return [a for a in found if a.address.ip == ip]
        return list(self._by_ip.get(ip, ()))

    def _keep(self, at: float, found: list[NodeAddress]) -> None:
        by_ip: dict[Any, list[NodeAddress]] = {}
        for address in found:
            by_ip.setdefault(address.address.ip, []).append(address)
        self._table = (at, found)
        self._by_ip = by_ip

    def _forget(self) -> None:
        """A change whose outcome is unknown: dump again, and keep no dump it raced."""
        self._unknown += 1
        self._table = None

    def _apply(
        self, table: list[NodeAddress] | None, index: int, address: IPInterface, added: bool
    ) -> list[NodeAddress] | None:
        if table is None:
            return None
        rest = [a for a in table if not (a.index == index and a.address.ip == address.ip)]
        if added:
            names = {lk.index: lk.name for lk in (self._links[1] if self._links else [])}
            if index not in names:
                return None  # unknown interface name: dump again
            rest.append(NodeAddress(interface=names[index], index=index, address=address,
                                    flags=0))  # fmt: skip
        return rest

    def _changed(self, index: int, address: IPInterface, added: bool) -> None:
        """Our own acknowledged change, applied to the kept table."""
        if self._pending is not None:
            self._journal.append((index, address, added))
        table = self._table
        if table is None:
            return
        rest = self._apply(table[1], index, address, added)
        if rest is None:
            self._table = None
        else:
            self._keep(table[0], rest)

    async def _dump_addresses(self) -> list[NodeAddress]:
        def get(ipr: Any) -> list[NodeAddress]:
            names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
            if self._dumper is None:
                self._dumper = AddressDump(self.netns)
            try:
                rows = self._dumper.dump()
            except BaseException:
                self._dumper.close()  # a dump cut short leaves replies in the socket
                self._dumper = None
                raise
            # The addresses of the last dump, reused: building them again was most of a
            # dump's cost, and from one dump to the next nearly all are the same.
            known, made = self._made, {}
            for index, ip, prefixlen, flags in rows:
                name = names.get(index, str(index))
                key = (name, index, ip, prefixlen, flags)
                address = known.get(key)
                if address is None:
                    address = NodeAddress(
                        interface=name,
                        index=index,
                        address=ipaddress.ip_interface((ip, prefixlen)),
                        flags=flags,
                    )
                made[key] = address
            self._made = made
            return list(made.values())

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

        try:
            added = await self._call(add)
        except BaseException:
            self._forget()  # the outcome is unknown: dump again
            raise
        self._changed(index, address, added=True)  # added, or there already (EEXIST)
        return added

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

        try:
            deleted = await self._call(delete)
        except BaseException:
            self._forget()
            raise
        self._changed(index, address, added=False)
        return deleted

    def close(self) -> None:
        with self._lock:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None
            if self._dumper is not None:
                self._dumper.close()
                self._dumper = None


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
