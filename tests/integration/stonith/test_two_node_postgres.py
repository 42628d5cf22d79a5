"""The seed scenario as the articles build it: two servers, PostgreSQL on a replicated
volume, two-node mode with IPMI fencing. The active server loses power three times over;
each time the survivor fences it, carries the store on alone, promotes its replica and
starts PostgreSQL; no acknowledged commit is lost, the volume is never Primary on both."""

from __future__ import annotations

import sys

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.pg_power_loss import VOLUME, deploy, lose_power, lost_commits, power_on_and_resync
from lab.postgres import MOUNT_POINT, CommitClient
from lab.volume_observer import VolumeObserver
from tests.integration.cluster.conftest import needs_root
from tests.integration.cluster.helpers import wait_until

from .conftest import explained, needs_ipmi_sim
from .test_two_node import store_members

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]
KILLS = 3


def test_two_servers_lose_no_commit_over_power_losses(
    fenced2: tuple[VigilLab, VipObserver],
) -> None:
    lab, _ = fenced2
    nodes = (lab.nodes[0], lab.nodes[1])
    with explained(lab):
        deploy(lab, nodes)
        gaps = []
        with (
            VolumeObserver(lab, VOLUME, MOUNT_POINT) as volumes,
            CommitClient(lab, lab.vip()) as client,
        ):
            client.wait_commits(50, 60)
            for round_ in range(KILLS):
                out = lose_power(lab, client, pause=0.5, commits_after=20)
                assert out.gap is not None
                gaps.append(out.gap)
                sys.stderr.write(
                    f"\nkill {round_ + 1}: {out.victim} lost power; {out.survivor} fenced it "
                    f"and committed again {out.gap:.2f} s later"
                )
                assert store_members(lab) == [out.survivor]
                power_on_and_resync(lab, out.victim, nodes)
                wait_until("both store members", lambda: store_members(lab) == list(nodes), 90)
                lab.wait_ready(60)
        lost = lost_commits(lab, client)
        sys.stderr.write(f"\n{len(client.acked())} commits acknowledged, lost {len(lost)}\n")
        assert not lost, lost[:20]
        volumes.assert_never_twice()
