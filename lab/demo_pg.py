"""The main job's scenario: PostgreSQL on a replicated volume survives a power loss with no
committed transaction lost (run by lab/demo.py on a booted 3-node lab with fencing).

The volume's replicas live on the first two nodes (the third is the majority's
tie-breaker); protocol C, so a commit PostgreSQL acknowledged is on both disks.
"""

from __future__ import annotations

import sys

from lab.cluster import VigilLab
from lab.demo import say, show
from lab.pg_power_loss import VOLUME, lose_power, lost_commits, power_on_and_resync
from lab.postgres import CommitClient, group_manifest, prepare
from lab.volumes import create_disks, initial_sync, volume_manifest


def postgres_scenario(lab: VigilLab) -> int:
    nodes = (lab.nodes[0], lab.nodes[1])
    say(f"A replicated volume {VOLUME} on {nodes[0]} and {nodes[1]} (protocol C)")
    create_disks(lab, VOLUME, nodes, "128M")
    manifest = volume_manifest(lab, VOLUME, nodes, protocol="C")
    print(manifest)
    result = lab.apply(manifest)
    sys.stdout.write(result.out or result.err)
    if result.code != 0:
        return 1
    initial_sync(lab, VOLUME, nodes)
    show(lab, "get", "rv")
    say(f"ext4 and a PostgreSQL database on the volume (once, on {nodes[0]})")
    prepare(lab, VOLUME, nodes[0])
    say(f"PostgreSQL behind the floating IP {lab.vip()}")
    spec = group_manifest(lab, VOLUME, nodes)
    print(spec)
    result = lab.apply(spec)
    sys.stdout.write(result.out or result.err)
    if result.code != 0:
        return 1
    active = lab.wait_running("pg", 60)
    show(lab, "status")

    with CommitClient(lab, lab.vip()) as client:
        client.wait_commits(200, 60)
        say(
            f"A client commits numbered rows through {lab.vip()} without pause "
            f"({len(client.acked())} so far); power loss of {active}"
        )
        out = lose_power(lab, client, commits_after=200)
    active, survivor = out.victim, out.survivor
    last_before = max(
        (x.n for x in client.lines if x.what == "ok" and x.n is not None and x.time < out.killed),
        default=0,
    )
    acked = client.acked()
    lost = lost_commits(lab, client)
    show(lab, "status")
    show(lab, "events", "rg", "pg")
    say(f"How {active} was fenced before PostgreSQL moved")
    show(lab, "events", "node", active)
    say("Result")
    outage = f"{out.gap:.2f} s" if out.gap is not None else "no commit after the loss"
    print(f"power loss of {active} -> first commit on {survivor}: {outage}")
    print(f"last commit acknowledged before the power loss: row {last_before}")
    print(f"commits acknowledged: {len(acked)}, read back from the table on {survivor}")
    print(f"acknowledged commits lost: {len(lost)}{' ' + str(lost[:10]) if lost else ''}")
    say(f"{active} powers on again and catches up by resync")
    power_on_and_resync(lab, active, nodes, VOLUME)
    show(lab, "get", "rv")
    return 0 if out.gap is not None and not lost else 1
