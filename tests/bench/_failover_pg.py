"""The seed scenario in the failover benchmark (`failover.py --clusters 3-node-pg`).

PostgreSQL on a replicated volume (protocol C, ext4) behind a VIP, in a 3-node lab with
IPMI fencing (the shipped default; "off" as in the other fenced shapes); a client in the
client namespace commits numbered rows without pause. The active node loses power after a
random delay; the gap is from the power loss to the first commit acknowledged after it
(necessarily by the new node: the old one has no power). After each kill the node powers
on and resyncs before the next. At the end, every acknowledged commit must be in the
table: the result carries the count lost.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from typing import Any

from lab.cluster import VigilLab
from lab.postgres import CommitClient, committed_rows, group_manifest, prepare
from lab.testing import unique_lab_name
from lab.volumes import create_disks, in_sync, initial_sync, volume_manifest, wait_replicas

VOLUME = "pgdata"


def run_pg(
    timing: dict[str, str], kills: int, seed: int, percentile: Any, hogs: Any
) -> dict[str, Any]:
    rng = random.Random(seed)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as disks:
        lab = VigilLab(
            unique_lab_name("fp"), 3, timing=timing, disk_root=disks, fencing=True,
            fence_action="off",
        )  # fmt: skip
        lab.up()
        try:
            nodes = (lab.nodes[0], lab.nodes[1])
            create_disks(lab, VOLUME, nodes, "128M")
            if lab.apply(volume_manifest(lab, VOLUME, nodes)).code != 0:
                raise RuntimeError("applying the volume failed")
            initial_sync(lab, VOLUME, nodes)
            prepare(lab, VOLUME, nodes[0])
            applied = lab.apply(group_manifest(lab, VOLUME, nodes))
            if applied.code != 0:
                raise RuntimeError(applied.err)
            lab.wait_running("pg", 60)
            load = hogs()
            try:
                with CommitClient(lab, lab.vip()) as client:
                    client.wait_commits(50, 60)
                    for i in range(kills):
                        victim = lab.wait_running("pg", 60)
                        time.sleep(0.5 + rng.uniform(0.0, 1.0))
                        killed = time.monotonic()
                        lab.lab.kill(victim)
                        survivor = lab.wait_running("pg", 60, not_on=victim)
                        client.wait_commits(5, 60)
                        first = client.first_ok_after(killed)
                        gap = None if first is None else first.time - killed
                        runs.append({"victim": victim, "survivor": survivor, "gap_s": gap})
                        print(
                            f"  [pg] kill {i + 1}/{kills}: {victim} -> {survivor}: first "
                            f"commit after {'none' if gap is None else f'{gap:.3f} s'}",
                            flush=True,
                        )
                        lab.lab.power_on(victim)
                        wait_replicas(lab, VOLUME, nodes, "resync", in_sync, 120)
                acked = client.acked()
            finally:
                for hog in load:
                    hog.kill()
                    hog.wait()
            rows = committed_rows(lab, lab.vip())
        finally:
            lab.down()
    gaps = [r["gap_s"] for r in runs if r["gap_s"] is not None]
    return {
        "cluster": "3-node-pg",
        "timing": timing,
        "kills": kills,
        "answered": len(gaps),
        "gap_min_s": min(gaps) if gaps else None,
        "gap_median_s": statistics.median(gaps) if gaps else None,
        "gap_p95_s": percentile(gaps, 0.95) if gaps else None,
        "gap_max_s": max(gaps) if gaps else None,
        "commits_acknowledged": len(acked),
        "commits_lost": len(acked - rows),
        "etcd_leader_kills": 0,
        "gap_max_etcd_leader_killed_s": None,
        "runs": runs,
        "soak": None,
    }
