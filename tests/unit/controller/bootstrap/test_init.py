"""`ha cluster init` reads the Cluster it seeds, and refuses one no node could run."""

from __future__ import annotations

from controller.bootstrap.init import read_cluster
from tests.paths import EXAMPLES, PG_TODAY


def test_the_seed_scenario_cluster_two_node_with_serial_links_is_read() -> None:
    # Two-node mode and serial heartbeat links are built: `ha cluster init` takes them.
    cluster, written = read_cluster(str(EXAMPLES / "pg" / "01-cluster.yaml"))
    assert cluster.spec.quorum.mode == "two-node" and written["kind"] == "Cluster"
    assert cluster.spec.nodes[0].heartbeat[1].serial is not None


def test_a_cluster_that_runs_today_is_read() -> None:
    cluster, written = read_cluster(str(PG_TODAY / "01-cluster.yaml"))
    assert cluster.spec.quorum.mode == "majority" and written["kind"] == "Cluster"
