"""On a running cluster, `ha get` shows what is so: every member is a Node with the phase the
leader sees, and the Cluster its leader and age."""

from __future__ import annotations

import time

import pytest

from lab.cluster import VigilLab
from tests.integration.cluster.conftest import needs_root

pytestmark = [pytest.mark.slow, needs_root]


def test_every_member_is_a_node_and_the_cluster_shows_its_leader(vlab: VigilLab) -> None:
    leader = vlab.wait_ready()["leader"]
    deadline = time.monotonic() + 30
    while True:
        rows = [line.split() for line in vlab.ha("get", "nodes").out.splitlines()[1:]]
        if [(r[0], r[1]) for r in rows] == [("n1", "Ready"), ("n2", "Ready"), ("n3", "Ready")]:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)
    cluster = vlab.ha("get", "cluster").out.splitlines()
    header, row = cluster[0].split(), cluster[1].split()
    assert row[header.index("LEADER")] == leader
    assert row[header.index("AGE")] != "<none>"
    described = vlab.ha("describe", "node", "n2").out
    assert "Name:              n2" in described and "phase: Ready" in described
