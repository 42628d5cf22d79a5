"""The address table the VIP actuators share: fifty VIPs observed and started cost about
one dump of the node's addresses, not one each (a turn over thousands of groups was
quadratic), and an address someone else removes is seen within the table's age."""

from __future__ import annotations

import asyncio
import time

import pytest

from nodeagent.actuators import ActuatorContext, State
from nodeagent.actuators.netlink import TABLE_AGE, netlink_for
from nodeagent.actuators.vip import VipActuator
from tests.integration.actuators.conftest import Topology
from tests.integration.actuators.specs import create

pytestmark = pytest.mark.slow


def vip(ns: str, address: str) -> VipActuator:
    spec = {"address": address, "interface": "eth0", "arp": {"count": 1}}
    actuator = create({"ip": spec}, ActuatorContext(resource=f"g/{address}", netns=ns))
    assert isinstance(actuator, VipActuator)
    return actuator


def count_dumps(ns: str) -> list[int]:
    handle = netlink_for(ns)
    dumps = [0]
    real = handle._dump_addresses

    async def counted() -> list:  # type: ignore[type-arg]
        dumps[0] += 1
        return await real()

    handle._dump_addresses = counted  # type: ignore[method-assign]
    return dumps


async def test_fifty_vips_share_one_address_dump(topology: Topology) -> None:
    dumps = count_dumps(topology.n1)
    vips = [vip(topology.n1, f"10.78.0.{i}/32") for i in range(1, 51)]
    began = time.monotonic()
    assert {(await v.observe()).state for v in vips} == {State.STOPPED}
    for v in vips:
        await v.start()
    assert {(await v.observe()).state for v in vips} == {State.RUNNING}
    elapsed = time.monotonic() - began
    # One dump per TABLE_AGE at most (the first, then one per second elapsed).
    assert dumps[0] <= 1 + int(elapsed / TABLE_AGE), (dumps[0], elapsed)
    # The kernel agrees with the table: every address is really there.
    shown = topology.run(topology.n1, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert all(f"10.78.0.{i}/32" in shown for i in range(1, 51))
    for v in vips:
        await v.stop()
    assert {(await v.observe()).state for v in vips} == {State.STOPPED}
    shown = topology.run(topology.n1, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert "10.78.0." not in shown


async def test_an_address_removed_by_someone_else_is_seen_within_the_table_age(
    topology: Topology,
) -> None:
    actuator = vip(topology.n1, "10.78.1.1/32")
    await actuator.start()
    assert (await actuator.observe()).state is State.RUNNING
    topology.run(topology.n1, "ip", "addr", "del", "10.78.1.1/32", "dev", "eth0")
    removed = time.monotonic()
    while (await actuator.observe()).state is not State.STOPPED:
        assert time.monotonic() - removed < TABLE_AGE + 0.5, "the removal was never seen"
        await asyncio.sleep(0.05)
    # Started again, it is there again (the table follows this actuator's own add).
    await actuator.start()
    assert (await actuator.observe()).state is State.RUNNING
    await actuator.stop()
