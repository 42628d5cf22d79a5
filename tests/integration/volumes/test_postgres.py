"""The seed scenario: PostgreSQL on a replicated volume, a client committing numbered rows
through the VIP without pause, and the active node losing power at random moments. Every
commit PostgreSQL acknowledged is in the table afterwards; the volume is never Primary,
and its filesystem never mounted, on two nodes at once; the returning node catches up by
resync, and `ha move` back to it loses nothing either."""

from __future__ import annotations

import random
import sys
import time

import pytest

from lab import state
from lab.cluster import VigilLab
from lab.postgres import MOUNT_POINT, CommitClient, committed_rows, group_manifest, prepare
from lab.volume_observer import VolumeObserver
from lab.volumes import (
    create_disks,
    in_sync,
    initial_sync,
    replica,
    volume_manifest,
    wait_replicas,
)
from tests.integration.cluster.helpers import wait_until

from .conftest import needs_root

pytestmark = [pytest.mark.slow, needs_root]
# A known fault, not yet found: in about 1 power loss of 50 the survivor lacks the last
# seconds of commits the old Primary acknowledged (the window starts near the end of the
# previous resync; the Primary then shows 12 KiB out of sync while Connected). The test
# runs in CI and prints, on a loss, the replicas' states before each kill and the
# survivor's logs; it is not let to block landings until the cause is fixed.
KNOWN_LOSS = pytest.mark.xfail(
    strict=False,
    reason="known fault: about 1 power loss in 50 loses the last seconds of commits",
)
KILLS = 10


def brief(status: dict[str, object]) -> dict[str, object]:
    keys = ("role", "connection", "disk", "out_of_sync_bytes", "generation", "outdatePeer")
    return {k: status.get(k) for k in keys}


@KNOWN_LOSS
def test_no_acknowledged_commit_is_lost_over_power_losses(vlab: VigilLab) -> None:
    nodes = (vlab.nodes[0], vlab.nodes[1])
    create_disks(vlab, "pgdata", nodes, "128M")
    assert vlab.apply(volume_manifest(vlab, "pgdata", nodes)).code == 0
    initial_sync(vlab, "pgdata", nodes)
    prepare(vlab, "pgdata", nodes[0])
    applied = vlab.apply(group_manifest(vlab, "pgdata", nodes))
    assert applied.code == 0, applied.err
    vlab.wait_running("pg", 60)
    vip = vlab.vip()
    rnd = random.Random()
    gaps = []
    kills: list[float] = []
    snapshots: list[dict[str, dict[str, object]]] = []
    with (
        VolumeObserver(vlab, "pgdata", MOUNT_POINT) as observer,
        CommitClient(vlab, vip) as client,
    ):
        client.wait_commits(20, 60)
        for round_ in range(KILLS):
            active = vlab.where("pg")
            assert active in nodes
            snapshots.append({n: brief(replica(vlab, n, "pgdata")) for n in nodes})
            time.sleep(rnd.uniform(0.0, 1.5))
            killed = time.monotonic()
            kills.append(killed)
            vlab.lab.kill(active)
            survivor = vlab.wait_running("pg", 60, not_on=active)
            client.wait_commits(5, 60)
            first = client.first_ok_after(killed)
            assert first is not None
            gaps.append(first.time - killed)
            sys.stderr.write(
                f"\nkill {round_ + 1}: {active} lost power, first commit on {survivor} "
                f"{gaps[-1]:.2f} s later ({len(client.acked())} acknowledged so far)"
            )
            vlab.lab.reboot(active)
            wait_replicas(vlab, "pgdata", nodes, "the returned replica in sync", in_sync, 120)
        # Back to the first node by hand: a clean switch-over, no commit lost either.
        back = next(n for n in nodes if n != vlab.where("pg"))
        assert vlab.ha("move", "pg", back).code == 0
        wait_until(f"pg on {back}", lambda: vlab.where("pg") == back, 60)
        client.wait_commits(20, 60)
    acked = client.acked()
    rows = committed_rows(vlab, vip)
    lost = sorted(acked - rows)
    sys.stderr.write(
        f"\n{len(acked)} commits acknowledged, {len(rows)} rows, lost {len(lost)}; "
        f"first commit after power loss: median {sorted(gaps)[len(gaps) // 2]:.2f} s, "
        f"max {max(gaps):.2f} s\n"
    )
    if lost:
        when = {x.n: x.time for x in client.lines if x.what == "ok"}
        runs: list[list[int]] = []
        for n in lost:
            if runs and n == runs[-1][-1] + 1:
                runs[-1].append(n)
            else:
                runs.append([n])
        for run in runs:
            sys.stderr.write(
                f"lost {run[0]}..{run[-1]}: acknowledged from {when[run[0]] - kills[0]:.2f} "
                f"to {when[run[-1]] - kills[0]:.2f} s after the first kill; kills at "
                f"{[round(k - kills[0], 2) for k in kills]}\n"
            )
        for i, snapshot in enumerate(snapshots):
            sys.stderr.write(f"replicas before kill {i + 1}: {snapshot}\n")
        where = vlab.where("pg")
        if where is not None:
            agent_log = state.log_path(vlab.name, where).read_text().splitlines()
            volume_lines = [x for x in agent_log if "volume" in x or "replica" in x]
            sys.stderr.write("agent log:\n" + "\n".join(volume_lines[-40:]) + "\n")
            log = vlab.lab.exec_in(where, ["sh", "-c", "tail -n 40 /run/vigil/exec/*.log"])
            sys.stderr.write(f"PostgreSQL's log on {where}:\n{log.stdout}\n")
    assert not lost, f"acknowledged but missing: {lost[:20]}"
    observer.assert_never_twice()
