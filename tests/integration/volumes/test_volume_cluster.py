"""A replicated volume run by the cluster: both replicas supervised and connected, Primary
only where its group runs, moved with `ha move`, promoted on the survivor after a power
loss of the Primary's node, and the returned node back as an UpToDate Secondary."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from datetime import datetime

import pytest

from lab.cluster import VigilLab
from lab.volume_observer import VolumeObserver
from lab.volumes import (
    create_disks,
    in_sync,
    initial_sync,
    replica,
    volume_group,
    volume_manifest,
    wait_replicas,
)
from tests.integration.blockrepl.nbdclient import NbdClient
from tests.integration.cluster.helpers import wait_until

from .conftest import needs_root

pytestmark = [pytest.mark.slow, needs_root]
BLOCK = 4096


def group(vlab: VigilLab, nodes: tuple[str, str]) -> str:
    return volume_group(vlab, "vg", "data", nodes)


def roles(vlab: VigilLab, nodes: tuple[str, ...]) -> dict[str, str]:
    return {n: replica(vlab, n, "data").get("role", "down") for n in nodes}


def volume_status(vlab: VigilLab) -> dict[str, dict[str, object]]:
    got = vlab.ha("get", "rv", "data", "-o", "json")
    assert got.code == 0, got.err
    return {r["node"]: r for r in json.loads(got.out)["status"].get("replicas", [])}


def test_the_volume_is_primary_only_where_its_group_runs(vlab: VigilLab) -> None:
    nodes = (vlab.nodes[0], vlab.nodes[1])
    create_disks(vlab, "data", nodes)
    applied = vlab.apply(volume_manifest(vlab, "data", nodes))
    assert applied.code == 0, applied.err
    initial_sync(vlab, "data", nodes)
    # Each node reports its replica into the volume's status.
    reported = wait_until(
        "both replicas reported UpToDate and Connected",
        lambda: (
            (s := volume_status(vlab))
            and all(
                s.get(n, {}).get("diskState") == "UpToDate"
                and s.get(n, {}).get("connection") == "Connected"
                for n in nodes
            )
            and s
        ),
        20,
    )
    assert set(reported) == set(nodes)
    adopted_after_agent_restart(vlab, nodes[1])

    with VolumeObserver(vlab, "data", "/nonexistent") as observer:
        moves(vlab, nodes)
    observer.assert_never_twice()


def serve_pid(vlab: VigilLab, node: str) -> int:
    proc = vlab.lab.exec_in(node, ["cat", "/run/vigil/volumes/data/serve.pid"])
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


def adopted_after_agent_restart(vlab: VigilLab, node: str) -> None:
    """The agent dies (SIGKILL) and comes back: the replica it started runs on untouched,
    and the new agent reports it again."""
    before = serve_pid(vlab, node)
    agent, _ = vlab.agent_processes(node)
    assert agent is not None
    os.kill(agent, signal.SIGKILL)
    wait_until("a new agent", lambda: vlab.agent_processes(node)[0] not in (None, agent), 30)
    vlab.wait_ready(60)
    assert serve_pid(vlab, node) == before
    assert replica(vlab, node, "data")["connection"] == "Connected"
    stamp = volume_status(vlab)[node]["observedAt"]
    wait_until(
        "the new agent reporting the adopted replica",
        lambda: volume_status(vlab)[node]["observedAt"] != stamp,
        30,
    )


def moves(vlab: VigilLab, nodes: tuple[str, str]) -> None:
    assert vlab.apply(group(vlab, nodes)).code == 0
    active = vlab.wait_running("vg", 30)
    assert active == nodes[0]
    assert roles(vlab, nodes) == {nodes[0]: "Primary", nodes[1]: "Secondary"}

    assert vlab.ha("move", "vg", nodes[1]).code == 0
    wait_until("vg on the second node", lambda: vlab.where("vg") == nodes[1], 30)
    assert roles(vlab, nodes) == {nodes[0]: "Secondary", nodes[1]: "Primary"}

    # Power loss of the Primary's node: the survivor's replica is promoted once the
    # replication link times out, and the group runs there.
    killed = time.monotonic()
    vlab.lab.kill(nodes[1])
    vlab.wait_running("vg", 30, not_on=nodes[1])
    took = time.monotonic() - killed
    assert roles(vlab, (nodes[0],)) == {nodes[0]: "Primary"}
    print(f"power loss of the Primary's node: Primary on {nodes[0]} after {took:.2f} s")

    # Back on, the lost node's replica reconnects as Secondary and catches up.
    vlab.lab.reboot(nodes[1])
    wait_replicas(
        vlab, "data", nodes, "the returned replica UpToDate again",
        in_sync,
        60,
    )  # fmt: skip
    # `ha move` still asks for the second node: the group goes back there, and the
    # volume's Primary with it; one Primary at every step.
    wait_until("vg back on the second node", lambda: vlab.where("vg") == nodes[1], 30)
    assert roles(vlab, nodes) == {nodes[0]: "Secondary", nodes[1]: "Primary"}


def write_blocks(vlab: VigilLab, node: str, offsets: list[int], rnd: random.Random) -> None:
    """Random 4 KiB blocks at `offsets`, written through the node's Primary replica (its NBD
    socket, reached in the node's private /run through its init's root)."""
    pid = vlab.lab.node_pid(node)
    assert pid is not None
    sock = f"/proc/{pid}/root/run/vigil/volumes/data/nbd.sock"

    async def go() -> None:
        client = await NbdClient.connect(unix=sock, export="data")
        try:
            for offset in offsets:
                await client.write(offset, rnd.randbytes(BLOCK))
            await client.flush()
        finally:
            await client.close()

    asyncio.run(go())


def test_the_returning_node_resyncs_only_what_changed(vlab: VigilLab) -> None:
    """The Primary's node loses power; the survivor, promoted, writes N blocks; the lost
    node returns and resyncs: the bitmap marked exactly those blocks, and what went over
    the wire is within 1.2x of the bytes changed (a crashed Primary's activity-log extents
    are compared by checksum, not sent)."""
    nodes = (vlab.nodes[0], vlab.nodes[1])
    create_disks(vlab, "data", nodes)
    assert vlab.apply(volume_manifest(vlab, "data", nodes)).code == 0
    initial_sync(vlab, "data", nodes)
    assert vlab.apply(group(vlab, nodes)).code == 0
    assert vlab.wait_running("vg", 30) == nodes[0]
    rnd = random.Random()
    # The Primary writes before it dies: its activity log is hot when the power goes.
    write_blocks(vlab, nodes[0], [i * BLOCK for i in range(0, 2048, 7)], rnd)
    killed_at = time.time()
    vlab.lab.kill(nodes[0])
    wait_until(
        "Primary on the survivor", lambda: roles(vlab, (nodes[1],))[nodes[1]] == "Primary", 30
    )
    blocks = rnd.sample(range(64 * 1024 * 1024 // BLOCK - 4096), 2048)  # 8 MiB, spread out
    write_blocks(vlab, nodes[1], [b * BLOCK for b in blocks], rnd)
    changed = len(blocks) * BLOCK
    assert replica(vlab, nodes[1], "data")["out_of_sync_bytes"] == changed

    vlab.lab.reboot(nodes[0])
    source = wait_replicas(
        vlab, "data", nodes, "the resync to the returned node",
        lambda s: in_sync(s) and s[nodes[1]]["last_sync"] is not None,
        60,
    )[nodes[1]]  # fmt: skip
    sync = source["last_sync"]
    print(f"changed {changed} B; resync {sync}")
    assert sync["kind"] == "SyncSource"
    assert sync["data_bytes"] >= changed  # every changed block was sent
    assert sync["wire_bytes_out"] <= 1.2 * changed, sync

    # The survivor's agent told it: the link lost, then back, and the resync it served.
    said = wait_until(
        "the survivor's volume events",
        lambda: replica_events(vlab, "data", nodes[1], killed_at, "ResyncFinished"),
        15,
    )
    assert [e["reason"] for e in said] == [
        "ReplicaDisconnected", "ReplicaConnected", "ResyncFinished"
    ], said  # fmt: skip
    assert said[0]["type"] == "Warning" and "Connected ->" in said[0]["message"], said
    assert said[2]["message"].startswith("data: resync done as SyncSource in "), said


def replica_events(
    vlab: VigilLab, volume: str, node: str, since: float, last: str
) -> list[dict[str, str]]:
    """The link and resync events the agent of `node` recorded for `volume` from `since`
    (a wall-clock time) on, once `last` is among them."""
    result = vlab.ha("events", "ReplicatedVolume", volume, "-o", "json", "--source", node)
    assert result.code == 0, result.err
    # Not ResyncStarted: a resync of a second may begin and end between two looks.
    wanted = {"ReplicaDisconnected", "ReplicaConnected", "ResyncFinished"}
    events = [
        e for e in json.loads(result.out)
        if e["reason"] in wanted
        and datetime.fromisoformat(e["time"]).timestamp() >= since
    ]  # fmt: skip
    return events if any(e["reason"] == last for e in events) else []
