"""The seed scenario's experiment: PostgreSQL on a replicated volume, a client committing
numbered rows through the VIP, and the active node losing its power. Shared by its tests,
the failover benchmark and the demo, so they measure one thing the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.errors import LabError
from lab.postgres import CommitClient, committed_rows, group_manifest, prepare
from lab.volumes import create_disks, in_sync, initial_sync, volume_manifest, wait_replicas

if TYPE_CHECKING:
    from lab.cluster import VigilLab

VOLUME = "pgdata"
GROUP = "pg"


@dataclass(frozen=True)
class Outage:
    victim: str
    survivor: str
    killed: float  # time.monotonic() of the power loss
    gap: float | None  # to the first commit the survivor acknowledged; None: none yet


def deploy(lab: VigilLab, nodes: tuple[str, str], volume: str = VOLUME) -> str:
    """The volume's replicas on `nodes`, their first sync, ext4 and initdb on the first
    node, then the group; returns the node PostgreSQL runs on."""
    create_disks(lab, volume, nodes, "128M")
    _apply(lab, volume_manifest(lab, volume, nodes), "the volume")
    initial_sync(lab, volume, nodes)
    prepare(lab, volume, nodes[0])
    _apply(lab, group_manifest(lab, volume, nodes), "the PostgreSQL group")
    return lab.wait_running(GROUP, 60)


def _apply(lab: VigilLab, manifest: str, what: str) -> None:
    result = lab.apply(manifest)
    if result.code != 0:
        raise LabError(f"applying {what} failed: {result.err.strip()}")


def lose_power(
    lab: VigilLab, client: CommitClient, pause: float = 0.0, commits_after: int = 5
) -> Outage:
    """Power loss of the node running PostgreSQL `pause` seconds from now; returns once
    another node runs it and acknowledged `commits_after` further commits."""
    victim = lab.wait_running(GROUP, 60)
    time.sleep(pause)
    killed = time.monotonic()
    lab.lab.kill(victim)
    survivor = lab.wait_running(GROUP, 60, not_on=victim)
    client.wait_commits(commits_after, 60)
    first = client.first_ok_after(killed)
    return Outage(victim, survivor, killed, None if first is None else first.time - killed)


def power_on_and_resync(
    lab: VigilLab, victim: str, nodes: tuple[str, str], volume: str = VOLUME
) -> None:
    lab.lab.power_on(victim)
    wait_replicas(lab, volume, nodes, f"{victim}'s replica back in sync", in_sync, 120)


def lost_commits(lab: VigilLab, client: CommitClient) -> list[int]:
    """Commits the client saw acknowledged that are not in the table now."""
    return sorted(client.acked() - committed_rows(lab, lab.vip()))
