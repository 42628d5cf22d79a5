"""`ip:` resources: a floating service address added to / removed from an interface.

After an add, the VIP is announced `arp.count` times `arp.interval` apart (the first
packet before start() returns, the rest in the background), because a single
announcement can be lost and peers only believe ARP requests. While the VIP runs here,
`tend()` (the reconciler runs it as a task) sends one more every `arp.refresh`, so
switches and peers that missed the move still learn it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Collection, Iterable

from controller.api.group import IpResource, Resource
from nodeagent.actuators.announce import Announcer, parse_mac
from nodeagent.actuators.base import Actuator, ActuatorContext, register
from nodeagent.actuators.findif import IPInterface, NodeAddress, choose_interface
from nodeagent.actuators.netlink import Netlink, NetlinkError, netlink_for
from nodeagent.observation import Observation

IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40


async def list_node_addresses(netns: str | None = None) -> list[NodeAddress]:
    """Every address on every interface of this node (or of `netns`), read now."""
    return await netlink_for(netns).addresses(max_age=0)


def stray_vips(
    node_addresses: Iterable[NodeAddress],
    cluster_vips: Collection[IPInterface],
    placed_here: Collection[IPInterface],
) -> list[NodeAddress]:
    """Addresses on this node that are some resource's VIP but not placed here, e.g. left
    over from before an agent restart; the reconciler removes them."""
    vip_ips = {v.ip for v in cluster_vips}
    keep = {v.ip for v in placed_here}
    return [a for a in node_addresses if a.address.ip in vip_ips and a.address.ip not in keep]


class VipActuator(Actuator):
    def __init__(self, spec: IpResource, ctx: ActuatorContext, netlink: Netlink | None = None):
        super().__init__(ctx)
        self.spec = spec
        self.address: IPInterface = ipaddress.ip_interface(spec.address)
        self.interval = spec.arp.interval.total_seconds()
        self.refresh_interval = spec.arp.refresh.total_seconds()
        self.netlink = netlink or netlink_for(ctx.netns)
        self._ifname = spec.interface
        self._announcer: Announcer | None = None
        self._burst: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        ns = f" in netns {self.ctx.netns}" if self.ctx.netns else ""
        return f"address {self.address} on interface {self._ifname or '(auto)'}{ns}"

    async def interface(self) -> str:
        if self._ifname is None:
            try:
                self._ifname = choose_interface(self.address, await self.netlink.addresses())
            except LookupError as exc:
                raise self.error(str(exc), "set ip.interface in the resource spec") from None
        return self._ifname

    async def _present(self) -> list[NodeAddress]:
        return await self.netlink.addresses_at(self.address.ip)

    async def _observe(self) -> Observation:
        present = await self._present()
        if not present:
            return Observation.stopped(f"{self.address.ip} is not on any interface")
        ifname = await self.interface()
        for found in present:
            if found.interface != ifname:
                continue
            if found.address != self.address:
                return Observation.failed(
                    f"{found.address} is on {ifname} with the wrong prefix length; stop removes it"
                )
            if found.flags & IFA_F_DADFAILED:
                return Observation.failed(
                    f"{found.address} on {ifname} failed duplicate address detection: "
                    "another host uses it"
                )
            dad = (
                " (tentative: duplicate address detection running)"
                if (found.flags & IFA_F_TENTATIVE)
                else ""
            )
            return Observation.running(f"{found.address} is on {ifname}{dad}")
        others = ", ".join(sorted({a.interface for a in present}))
        return Observation.failed(
            f"{self.address.ip} is on {others}, not on {ifname}; stop removes it"
        )

    async def _start(self) -> None:
        ifname = await self.interface()
        link = await self.netlink.link(ifname)
        if link is None:
            raise self.error(
                f"interface {ifname} does not exist",
                "fix ip.interface or create the interface on this node",
            )
        try:
            await self.netlink.add_address(link.index, self.address)
        except NetlinkError as exc:
            raise self.error(f"adding the address failed: {exc}", "check the interface") from None
        await self._announce(link.index, link.mac, self.spec.arp.count)

    async def _announce(self, index: int, mac: str | None, count: int) -> None:
        if not mac or mac == "00:00:00:00:00:00":
            return  # no link layer (loopback, tun): nothing to announce
        if self._announcer is None:
            ifname = await self.interface()
            ip = self.address.ip
            self._announcer = await asyncio.to_thread(
                Announcer, self.ctx.netns, ifname, index, parse_mac(mac), ip
            )
        self._cancel_burst()
        self._announcer.send_once()
        if count > 1:
            self._burst = asyncio.create_task(self._rest(self._announcer, count - 1))

    async def _rest(self, announcer: Announcer, count: int) -> None:
        await asyncio.sleep(self.interval)
        with contextlib.suppress(OSError):  # the VIP may be removed mid-burst
            await announcer.burst(count, self.interval)

    def _cancel_burst(self) -> None:
        if self._burst is not None:
            self._burst.cancel()
            self._burst = None

    async def _stop(self) -> None:
        await self.close()
        for found in await self._present():
            try:
                await self.netlink.delete_address(found.index, found.address)
            except NetlinkError as exc:
                raise self.error(
                    f"removing {found.address} from {found.interface} failed: {exc}",
                    "remove it by hand with 'ip addr del'",
                ) from None

    async def refresh(self) -> bool:
        """Announce once more if the VIP is here; False if it is not (nothing sent)."""
        ifname = await self.interface()
        if not any(a.interface == ifname for a in await self._present()):
            return False
        link = await self.netlink.link(ifname)
        if link is None:
            return False
        await self._announce(link.index, link.mac, 1)
        return True

    async def tend(self) -> None:
        """While the VIP runs here: one more announcement every arp.refresh (0s: none)."""
        if self.refresh_interval <= 0:
            return
        while True:
            await asyncio.sleep(self.refresh_interval)
            with contextlib.suppress(OSError, NetlinkError):
                await self.refresh()

    async def close(self) -> None:
        """Drop the announcement socket and burst (the address itself stays)."""
        self._cancel_burst()
        if self._announcer is not None:
            self._announcer.close()
            self._announcer = None


@register("ip")
def make_vip(resource: Resource, ctx: ActuatorContext) -> Actuator:
    assert resource.ip is not None
    return VipActuator(resource.ip, ctx)
