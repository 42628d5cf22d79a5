"""The OCF actuator driving the real ocf:heartbeat agents from Debian's resource-agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.actuators import ActuatorContext, ActuatorError, State
from nodeagent.actuators.service_ocf import OCF_ROOT, OcfActuator
from nodeagent.actuators.vip import list_node_addresses
from tests.integration.actuators.conftest import Topology
from tests.integration.actuators.specs import create, limits

pytestmark = pytest.mark.slow

HEARTBEAT = OCF_ROOT / "resource.d" / "heartbeat"


def need_agent(name: str) -> None:
    if not (HEARTBEAT / name).exists():
        pytest.skip(f"ocf:heartbeat:{name} not installed (apt-get install resource-agents)")


def ocf(agent: str, params: dict[str, str], netns: str | None = None) -> OcfActuator:
    ctx = ActuatorContext(
        resource="grp/ocf-test", netns=netns, timeouts=limits(start=20, stop=20, monitor=10)
    )
    actuator = create({"service": {"ocf": {"agent": agent, "params": params}}}, ctx)
    assert isinstance(actuator, OcfActuator)
    return actuator


async def test_dummy_start_monitor_stop(tmp_path: Path) -> None:
    need_agent("Dummy")
    state = tmp_path / "dummy.state"
    svc = ocf("heartbeat:Dummy", {"state": str(state)})
    await svc.validate()
    obs = await svc.observe()
    assert obs.state is State.STOPPED and "OCF_NOT_RUNNING" in obs.detail
    await svc.start()
    assert state.exists()  # the agent really ran with OCF_RESKEY_state
    await svc.start()  # no-op
    assert (await svc.observe()).state is State.RUNNING
    await svc.stop()
    assert not state.exists()
    assert (await svc.observe()).state is State.STOPPED


async def test_dummy_rejects_unknown_param_from_meta_data(tmp_path: Path) -> None:
    need_agent("Dummy")
    svc = ocf("ocf:heartbeat:Dummy", {"state": str(tmp_path / "s"), "colour": "red"})
    with pytest.raises(ActuatorError, match="unknown parameter 'colour'"):
        await svc.validate()


async def test_dummy_validate_all_fails_on_unwritable_state_dir(tmp_path: Path) -> None:
    need_agent("Dummy")
    svc = ocf("heartbeat:Dummy", {"state": "/nonexistent-dir/x.state"})
    with pytest.raises(ActuatorError, match=r"validate-all exited \d+ \(OCF_ERR_"):
        await svc.validate()


async def test_missing_agent_is_reported(tmp_path: Path) -> None:
    svc = ocf("heartbeat:NoSuchAgent", {})
    obs = await svc.observe()
    assert obs.state is State.STOPPED and "is not installed here" in obs.detail
    with pytest.raises(ActuatorError, match="install the resource-agents package"):
        await svc.start()


async def test_ipaddr2_in_a_network_namespace(topology: Topology) -> None:
    need_agent("IPaddr2")
    params = {"ip": "10.77.0.150", "cidr_netmask": "24", "nic": "eth0"}
    svc = ocf("heartbeat:IPaddr2", params, netns=topology.n1)
    assert (await svc.observe()).state is State.STOPPED
    await svc.start()
    on_n1 = {str(a.address) for a in await list_node_addresses(topology.n1)}
    assert "10.77.0.150/24" in on_n1
    assert "10.77.0.150/24" not in {str(a.address) for a in await list_node_addresses(topology.n2)}
    assert (await svc.observe()).state is State.RUNNING
    assert topology.run(topology.client, "ping", "-c1", "-W1", "10.77.0.150").returncode == 0
    await svc.stop()
    on_n1 = {str(a.address) for a in await list_node_addresses(topology.n1)}
    assert "10.77.0.150/24" not in on_n1
    assert (await svc.observe()).state is State.STOPPED
