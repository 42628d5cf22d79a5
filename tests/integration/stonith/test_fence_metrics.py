"""Fencing seen in the agents' /metrics: a lost node's BMC power-off counted by device,
action and result where the fencer ran, as many `off` attempts as the fence record in
`ha status` says; and the failover timed on the node that recovered the group."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.cluster import VigilLab
from lab.observer import VipObserver
from tests.integration.cluster.conftest import needs_root
from tests.integration.cluster.helpers import wait_until

from .conftest import needs_ipmi_sim

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]


def fence_counts(lab: VigilLab, nodes: list[str], device: str) -> dict[tuple[str, str], float]:
    """(action, result) -> attempts through `device`, summed over the agents of `nodes`."""
    out: dict[tuple[str, str], float] = {}
    for node in nodes:
        for family in text_string_to_metric_families(lab.scrape(node)):
            for s in family.samples:
                if s.name == "vigil_fence_attempts_total" and s.labels["device"] == device:
                    key = (s.labels["action"], s.labels["result"])
                    out[key] = out.get(key, 0.0) + s.value
    return out


def sample(lab: VigilLab, node: str, name: str) -> float:
    """The value of the unlabelled sample `name` in the node's agent's metrics."""
    for family in text_string_to_metric_families(lab.scrape(node)):
        for s in family.samples:
            if s.name == name and not s.labels:
                return float(s.value)
    raise AssertionError(f"no {name} in {node}'s metrics")


def failovers(lab: VigilLab, node: str) -> float:
    return sample(lab, node, "vigil_failover_duration_seconds_count")


def test_a_fenced_node_is_counted_as_the_fence_record_says(
    fenced3: tuple[VigilLab, VipObserver],
) -> None:
    lab, observer = fenced3
    assert lab.apply(lab.web_group()).code == 0
    active = lab.wait_running("web", 30)
    device = f"bmc-{active}"
    assert fence_counts(lab, lab.nodes, device) == {}
    lab.lab.kill(active)
    survivor = lab.wait_running("web", 30, not_on=active)
    survivors = [n for n in lab.nodes if n != active]
    record = next(r for r in lab.status()["fencing"] if r["node"] == active)
    assert record["fencedBy"] == [device], record
    counts = fence_counts(lab, survivors, device)
    assert counts.get(("off", "success"), 0) >= 1, counts
    offs = counts.get(("off", "success"), 0) + counts.get(("off", "failure"), 0)
    assert offs == record["attempts"], (counts, record)
    # Recovered only once fenced: the failover, timed where it ended, includes the fence.
    wait_until("the failover counted", lambda: failovers(lab, survivor) == 1, 10)
    other = next(n for n in survivors if n != survivor)
    assert failovers(lab, other) == 0
    assert observer.holders() == {survivor}
