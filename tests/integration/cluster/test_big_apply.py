"""A big apply never takes the cluster down: 300 groups applied at once to a cluster that
runs a probed service. Before the liveness path had its own loop, this apply stopped every
node's heartbeats, every node lost its serving lease, and the running service went down
with the rest (issue "Scale without self-harm"). The client's record and the agents' logs
are the evidence; how fast it converges is the benchmark's business (tests/bench/scale.py).
"""

from __future__ import annotations

import time

import pytest

from lab.cluster import VigilLab
from tests.bench.scale import VIP_NET, Watcher, groups_manifest, log_counts
from tests.chaos.observers import ClientView

from .conftest import needs_root

pytestmark = [pytest.mark.slow, needs_root]

GROUPS = 300


def test_three_hundred_groups_applied_interrupt_nothing_and_cost_no_lease(
    vlab: VigilLab,
) -> None:
    vlab.lab.exec_in("client", ["ip", "route", "add", VIP_NET, "dev", "eth0"], check=True)
    assert vlab.apply(vlab.web_group()).code == 0
    owner = vlab.wait_running("web", within=60)
    client = ClientView(vlab.lab, {"web": (vlab.vip(), 80)}).start()
    watcher = Watcher(vlab)
    try:
        time.sleep(1.0)
        began_wall, began = time.time(), time.monotonic()
        applied = vlab.ha("apply", "-f", "-", stdin=groups_manifest(GROUPS, service=False),
                          timeout=300)  # fmt: skip
        assert applied.code == 0, applied.err
        done = watcher.wait_running(GROUPS, within=180)
        assert done is not None, f"only {watcher.running()} of {GROUPS} groups Running"
        time.sleep(1.0)  # the client keeps asking a little past the convergence
    finally:
        watcher.stop()
        client.stop()
    answers = [a for a in client.answers["web"] if a.time >= began]
    assert len(answers) > 50, "the client hardly asked"
    cut = [a for a in answers if a.node != owner]
    assert cut == [], f"{len(cut)} of {len(answers)} attempts to web went unanswered or moved"
    counts = log_counts(vlab, began_wall)
    assert all(c["leases_lost"] == 0 and c["rejoins"] == 0 for c in counts.values()), counts
    assert vlab.where("web") == owner
