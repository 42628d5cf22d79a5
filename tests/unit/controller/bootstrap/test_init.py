"""`ha cluster init` reads the Cluster it seeds, and refuses one no node could run."""

from __future__ import annotations

import pytest

from controller.api.errors import InputError
from controller.bootstrap.init import read_cluster
from tests.paths import EXAMPLES, PG_TODAY


def test_a_cluster_asking_for_what_is_not_built_is_refused_before_anything_is_written() -> None:
    path = str(EXAMPLES / "pg" / "01-cluster.yaml")
    with pytest.raises(InputError) as info:
        read_cluster(path)
    text = str(info.value)
    assert "asks for what Vigil cannot do yet" in text
    assert "01-cluster.yaml:20: document 1: spec.quorum.mode: two-node mode" in text
    assert "heartbeat[1].serial" not in text  # serial heartbeat links are built


def test_a_cluster_that_runs_today_is_read() -> None:
    cluster, written = read_cluster(str(PG_TODAY / "01-cluster.yaml"))
    assert cluster.spec.quorum.mode == "majority" and written["kind"] == "Cluster"
