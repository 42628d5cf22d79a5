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
from typing import Any

from lab.cluster import VigilLab
from lab.pg_power_loss import deploy, lose_power, lost_commits, power_on_and_resync
from lab.postgres import CommitClient
from lab.testing import unique_lab_name
from tests.bench.procstat import percentile


def run_pg(timing: dict[str, str], kills: int, seed: int, hogs: Any) -> dict[str, Any]:
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
            deploy(lab, nodes)
            load = hogs()
            try:
                with CommitClient(lab, lab.vip()) as client:
                    client.wait_commits(50, 60)
                    for i in range(kills):
                        out = lose_power(lab, client, pause=0.5 + rng.uniform(0.0, 1.0))
                        runs.append({"victim": out.victim, "survivor": out.survivor,
                                     "gap_s": out.gap})  # fmt: skip
                        print(
                            f"  [pg] kill {i + 1}/{kills}: {out.victim} -> {out.survivor}: "
                            f"first commit after "
                            f"{'none' if out.gap is None else f'{out.gap:.3f} s'}",
                            flush=True,
                        )
                        power_on_and_resync(lab, out.victim, nodes)
            finally:
                for hog in load:
                    hog.kill()
                    hog.wait()
            acked = client.acked()
            lost = lost_commits(lab, client)
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
        "commits_lost": len(lost),
        "etcd_leader_kills": 0,
        "gap_max_etcd_leader_killed_s": None,
        "runs": runs,
        "soak": None,
    }
