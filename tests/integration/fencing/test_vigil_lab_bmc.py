"""VigilLab(bmcs=True): the devices it describes are accepted by `ha apply`, and fencing a
node of a running Vigil cluster through its BMC takes its agent down; power on brings it
back into the cluster."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from lab.cluster import VigilLab
from lab.testing import unique_lab_name
from tests.integration.fencing.conftest import needs_ipmi_sim, needs_root
from tests.integration.fencing.test_lab_bmc import FENCE

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]


def test_fence_a_node_of_a_vigil_cluster(tmp_path: Path) -> None:
    cluster = VigilLab(unique_lab_name("fvl"), 3, disk_root=tmp_path, bmcs=True)
    cluster.up()
    try:
        applied = cluster.apply(cluster.fence_manifest())
        assert applied.code == 0, applied.err
        device = {d.spec.targets[0]: d for d in cluster.fence_devices()}["n3"]
        argv = [sys.executable, str(FENCE), device.model_dump_json(by_alias=True), "n3", "off"]
        proc = cluster.lab.exec_in("n1", argv, timeout=60)
        assert '"verified": true' in proc.stdout, proc.stdout + proc.stderr
        assert cluster.lab.node_pid("n3") is None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            nodes = {n["name"]: n for n in cluster.status()["nodes"]}
            if not nodes["n3"]["agent"]:
                break
            time.sleep(0.3)
        assert not nodes["n3"]["agent"], nodes["n3"]

        argv[-1] = "on"
        proc = cluster.lab.exec_in("n2", argv, timeout=60)
        assert '"ok": true' in proc.stdout, proc.stdout + proc.stderr
        cluster.wait_ready(60)  # n3's agent is back in the cluster
    finally:
        cluster.down()
