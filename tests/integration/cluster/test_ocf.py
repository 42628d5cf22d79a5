"""Real OCF agents from resource-agents as the services of a group."""

from __future__ import annotations

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver

from .conftest import needs_root
from .helpers import group, wait_until

pytestmark = [pytest.mark.slow, needs_root]

DUMMY = """apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {name: dummy}
spec:
  resources:
    - service:
        ocf: {agent: "heartbeat:Dummy", params: {state: /run/vigil/dummy.state}}
"""


def ipaddr2(vip: str) -> str:
    return f"""apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {{name: addr}}
spec:
  resources:
    - service:
        ocf:
          agent: "heartbeat:IPaddr2"
          params: {{ip: "{vip}", cidr_netmask: "24", nic: eth0}}
"""


def test_ocf_dummy_and_ipaddr2_run_as_services(vlab: VigilLab, observer: VipObserver) -> None:
    vip = vlab.vip()
    assert vlab.apply(DUMMY).code == 0
    node = vlab.wait_running("dummy", 30)
    assert vlab.lab.exec_in(node, ["test", "-e", "/run/vigil/dummy.state"]).returncode == 0
    for other in vlab.nodes:
        if other != node:
            assert vlab.lab.exec_in(other, ["test", "-e", "/run/vigil/dummy.state"]).returncode
    assert group(vlab, "dummy")["phase"] == "Running"

    result = vlab.apply(ipaddr2(vip))
    assert result.code == 0, result.err
    holder = vlab.wait_running("addr", 30)
    observer.wait_for(lambda h: h == {holder}, within=10)
    ping = ["ping", "-c", "1", "-W", "1", vip]
    wait_until(
        "the client reaches the IPaddr2 address",
        lambda: vlab.lab.exec_in("client", ping).returncode == 0,
        10,
    )
    neigh = vlab.lab.exec_in("client", ["ip", "neigh", "show", vip]).stdout
    assert vlab.lab.node_mac(holder) in neigh

    # Stopping the group through the OCF agent removes the address.
    disabled = ipaddr2(vip).replace("spec:\n", "spec:\n  enabled: false\n")
    assert vlab.apply(disabled).code == 0
    observer.wait_for(lambda h: h == frozenset(), within=15)
