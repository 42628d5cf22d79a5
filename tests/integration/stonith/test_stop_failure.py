"""A filesystem that cannot be unmounted: the stop fails (StopFailed), the leader fences
the node, and only then does the group start on the other node. Without that fence the
group would be held, never started twice."""

from __future__ import annotations

import subprocess

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.volume_observer import VolumeObserver
from lab.volumes import BLOCKREPL, create_disks, initial_sync, volume_group, volume_manifest
from tests.integration.cluster.conftest import needs_root
from tests.integration.cluster.helpers import wait_until

from .conftest import explained, needs_ipmi_sim

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]
MOUNT = "/var/lib/vigil/mnt/data"


def mkfs(vlab: VigilLab, node: str) -> None:
    script = (
        "set -e; C=/run/vigil/volumes/data/control.sock; W=/run/vigil/mkfs; mkdir -p $W/f;"
        f" {BLOCKREPL} promote --control $C >/dev/null;"
        " nbdfuse -P $W/pid $W/f/disk --unix /run/vigil/volumes/data/nbd.sock &"
        " while [ ! -s $W/pid ]; do sleep 0.05; done;"
        " mkfs.ext4 -q -F $W/f/disk; fusermount3 -u $W/f; wait;"
        f" {BLOCKREPL} demote --control $C >/dev/null"
    )
    proc = vlab.lab.exec_in(node, ["sh", "-c", script], timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_stop_that_fails_fences_the_node_before_the_group_moves(
    fenced3: tuple[VigilLab, VipObserver],
) -> None:
    vlab, observer = fenced3
    nodes = (vlab.nodes[0], vlab.nodes[1])
    with explained(vlab):
        create_disks(vlab, "data", nodes)
        assert vlab.apply(volume_manifest(vlab, "data", nodes)).code == 0
        initial_sync(vlab, "data", nodes)
        mkfs(vlab, nodes[0])
        assert vlab.apply(volume_group(vlab, "fs", "data", nodes, MOUNT, "5s")).code == 0
        assert vlab.wait_running("fs", 60) == nodes[0]
        # A process in a mount namespace of its own, made while the filesystem is mounted,
        # keeps a copy of the mount that no umount on the node reaches.
        holder = vlab.lab.popen_in(
            nodes[0], ["unshare", "--mount", "sleep", "infinity"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(
            "the holder's namespace",
            lambda: vlab.lab.exec_in(nodes[0], ["pgrep", "-f", "sleep infinity"]).returncode == 0,
            10,
        )
        with VolumeObserver(vlab, "data", MOUNT) as volumes:
            assert vlab.ha("move", "fs", nodes[1]).code == 0
            wait_until(
                f"{nodes[0]} fenced after its stop failed",
                lambda: vlab.lab.node_pid(nodes[0]) is None,
                60,
            )
            assert vlab.wait_running("fs", 60) == nodes[1]
        volumes.assert_never_twice()
        events = vlab.ha("events", "node", nodes[0]).out
        assert "FenceDone" in events and "stop" in events, events
        assert holder.wait(timeout=10) is not None  # gone with the node's power
        assert observer.holders() == {nodes[1]}
