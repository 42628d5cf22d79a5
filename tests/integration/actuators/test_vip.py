"""The VIP actuator moving a real address between two namespaced "nodes"."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from nodeagent.actuators import ActuatorContext, ActuatorError, State
from nodeagent.actuators.vip import VipActuator, list_node_addresses, stray_vips
from tests.integration.actuators.conftest import Topology
from tests.integration.actuators.specs import create

pytestmark = pytest.mark.slow


def vip(topo: Topology, ns: str, address: str, interface: str | None = "eth0") -> VipActuator:
    spec: dict[str, object] = {"address": address, "arp": {"count": 3, "interval": "100ms"}}
    if interface:
        spec["interface"] = interface
    actuator = create({"ip": spec}, ActuatorContext(resource="grp/vip", netns=ns))
    assert isinstance(actuator, VipActuator)
    return actuator


async def wait_neighbour(
    topo: Topology, address: str, mac: str, began: float, limit: float = 2.0
) -> float:
    while time.monotonic() - began < limit:
        if topo.neighbour_mac(address) == mac:
            return time.monotonic() - began
        await asyncio.sleep(0.005)
    raise AssertionError(f"client still maps {address} to {topo.neighbour_mac(address)}, not {mac}")


async def move_and_measure(topo: Topology, address: str, ping: list[str]) -> float:
    host = address.split("/")[0]
    on_n1 = vip(topo, topo.n1, address, interface=None)  # auto-chosen: eth0 holds the subnet
    on_n2 = vip(topo, topo.n2, address)
    assert (await on_n1.observe()).state is State.STOPPED
    await on_n1.start()
    await on_n1.start()  # idempotent
    obs = await on_n1.observe()
    assert obs.state is State.RUNNING and "eth0" in obs.detail
    assert topo.run(topo.client, *ping, host).returncode == 0
    assert topo.neighbour_mac(host) == topo.mac1

    await on_n1.stop()
    await on_n1.stop()  # idempotent
    assert (await on_n1.observe()).state is State.STOPPED
    moved = time.monotonic()
    await on_n2.start()
    started = time.monotonic() - moved
    took = await wait_neighbour(topo, host, topo.mac2, moved)
    assert topo.run(topo.client, *ping, host).returncode == 0
    # A peer that somehow kept the old MAC is corrected by the next refresh.
    topo.run(topo.client, "ip", "neigh", "replace", host, "lladdr", topo.mac1, "dev", "br0",
             "nud", "stale")  # fmt: skip
    assert topo.neighbour_mac(host) == topo.mac1
    fixed = time.monotonic()
    assert await on_n2.refresh() is True
    await wait_neighbour(topo, host, topo.mac2, fixed)
    assert await on_n1.refresh() is False  # not there: announces nothing
    await on_n2.stop()
    print(
        f"{address}: start on n2 {started * 1000:.1f} ms, "
        f"client neighbour switched {took * 1000:.1f} ms after the move"
    )
    return took


async def test_ipv4_vip_moves_with_gratuitous_arp(topology: Topology) -> None:
    took = await move_and_measure(topology, "10.77.0.100/24", ["ping", "-c1", "-W1"])
    assert took < 1.0


async def test_ipv6_vip_moves_with_unsolicited_na(topology: Topology) -> None:
    took = await move_and_measure(topology, "fd77::100/64", ["ping", "-6", "-c1", "-W1"])
    assert took < 1.0


async def test_lists_node_addresses_and_finds_strays(topology: Topology) -> None:
    stale = vip(topology, topology.n1, "10.77.0.120/24")
    await stale.start()
    found = await list_node_addresses(topology.n1)
    pairs = {(a.interface, str(a.address)) for a in found}
    assert ("eth0", "10.77.0.1/24") in pairs
    assert ("eth0", "10.77.0.120/24") in pairs
    assert ("eth0", "fd77::1/64") in pairs
    cluster = [ipaddress.ip_interface("10.77.0.120/24"), ipaddress.ip_interface("10.77.0.121/24")]
    strays = stray_vips(found, cluster, placed_here=[cluster[1]])
    assert [str(a.address) for a in strays] == ["10.77.0.120/24"]
    await stale.stop()


async def test_vip_on_wrong_interface_is_failed_and_stop_removes_it(topology: Topology) -> None:
    topology.run(
        topology.n1, "ip", "link", "add", "dummy9", "type", "veth", "peer", "name", "dummy9p"
    )
    topology.run(topology.n1, "ip", "addr", "add", "10.77.0.130/24", "dev", "dummy9")
    actuator = vip(topology, topology.n1, "10.77.0.130/24")
    obs = await actuator.observe()
    assert obs.state is State.FAILED and "dummy9" in obs.detail
    await actuator.stop()
    assert (await actuator.observe()).state is State.STOPPED


async def test_missing_interface_is_a_clear_error(topology: Topology) -> None:
    actuator = vip(topology, topology.n1, "10.77.0.140/24", interface="nosuch0")
    with pytest.raises(ActuatorError, match="interface nosuch0 does not exist"):
        await actuator.start()


async def test_auto_interface_without_matching_subnet_is_an_error(topology: Topology) -> None:
    actuator = vip(topology, topology.n1, "10.99.0.5/24", interface=None)
    with pytest.raises(ActuatorError, match=r"no interface on this node has an address in 10\.99"):
        await actuator.start()
