"""The seed scenario as the articles build it: two servers, PostgreSQL on a replicated
volume, two-node mode with IPMI fencing. The active server loses power three times over;
each time the survivor fences it, carries the store on alone, promotes its replica and
starts PostgreSQL; no acknowledged commit is lost, the volume is never Primary on both."""

from __future__ import annotations

import sys
import time

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.postgres import MOUNT_POINT, CommitClient, committed_rows, group_manifest, prepare
from lab.volume_observer import VolumeObserver
from lab.volumes import create_disks, in_sync, initial_sync, volume_manifest, wait_replicas
from tests.integration.cluster.conftest import needs_root
from tests.integration.cluster.helpers import wait_until
from tests.integration.volumes.test_postgres import KNOWN_LOSS

from .conftest import explained, needs_ipmi_sim
from .test_two_node import store_members

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]
KILLS = 3


@KNOWN_LOSS
def test_two_servers_lose_no_commit_over_power_losses(
    fenced2: tuple[VigilLab, VipObserver],
) -> None:
    lab, _ = fenced2
    nodes = (lab.nodes[0], lab.nodes[1])
    with explained(lab):
        create_disks(lab, "pgdata", nodes, "128M")
        assert lab.apply(volume_manifest(lab, "pgdata", nodes)).code == 0
        initial_sync(lab, "pgdata", nodes)
        prepare(lab, "pgdata", nodes[0])
        assert lab.apply(group_manifest(lab, "pgdata", nodes)).code == 0
        lab.wait_running("pg", 60)
        gaps = []
        with (
            VolumeObserver(lab, "pgdata", MOUNT_POINT) as volumes,
            CommitClient(lab, lab.vip()) as client,
        ):
            client.wait_commits(50, 60)
            for round_ in range(KILLS):
                active = lab.wait_running("pg", 60)
                time.sleep(0.5)
                killed = time.monotonic()
                lab.lab.kill(active)
                survivor = lab.wait_running("pg", 60, not_on=active)
                client.wait_commits(20, 60)
                first = client.first_ok_after(killed)
                assert first is not None
                gaps.append(first.time - killed)
                sys.stderr.write(
                    f"\nkill {round_ + 1}: {active} lost power; {survivor} fenced it and "
                    f"committed again {gaps[-1]:.2f} s later"
                )
                assert store_members(lab) == [survivor]
                lab.lab.power_on(active)
                wait_until("both store members", lambda: store_members(lab) == list(nodes), 90)
                lab.wait_ready(60)
                wait_replicas(lab, "pgdata", nodes, "the returned replica", in_sync, 120)
        acked = client.acked()
        lost = sorted(acked - committed_rows(lab, lab.vip()))
        sys.stderr.write(f"\n{len(acked)} commits acknowledged, lost {len(lost)}\n")
        assert not lost, lost[:20]
        volumes.assert_never_twice()
