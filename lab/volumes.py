"""Replicated volumes in a Vigil lab: backing disks on the nodes' disks, their metadata, the
ReplicatedVolume document, the one-time initial sync, and a look at each replica.

A lab node's disk is a host directory bind-mounted on its /var/lib/vigil, so a backing
file made there from the host is the node's disk, kept across its power losses as a real
disk is. As with DRBD (`drbdadm create-md`, then `drbdadm primary --force` once), fresh
metadata leaves both replicas Inconsistent; `initial_sync` makes one node's data the
reference once, and the cluster takes over from there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lab.errors import LabError

if TYPE_CHECKING:
    from lab.cluster import VigilLab

NODE_LIB = "/var/lib/vigil"
BLOCKREPL = str(Path(sys.executable).parent / "blockrepl")
REPL_PORT = 7789


def disk_path(name: str) -> str:
    """Where the volume's backing file is, as the node sees it."""
    return f"{NODE_LIB}/disks/{name}.img"


def control_path(name: str) -> str:
    """The replica's control socket inside its node (nodeagent/actuators/volume_paths.py)."""
    return f"/run/vigil/volumes/{name}/control.sock"


def create_disks(vlab: VigilLab, name: str, nodes: tuple[str, str], size: str = "64M") -> None:
    """A backing file with fresh blockrepl metadata on each of the two nodes' disks."""
    for node in nodes:
        host = vlab.lab.disk_dir(node) / "disks" / f"{name}.img"
        host.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [BLOCKREPL, "create-md", "--backing", str(host), "--size", size],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise LabError(f"blockrepl create-md on {node}: {proc.stderr.strip()}")


def volume_document(
    vlab: VigilLab, name: str, nodes: tuple[str, str], **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "ha.vigil.dev/v1alpha1",
        "kind": "ReplicatedVolume",
        "metadata": {"name": name},
        "spec": {
            "replicas": [
                {
                    "node": node,
                    "disk": disk_path(name),
                    "address": f"{vlab.lab.node_ip(node)}:{REPL_PORT}",
                }
                for node in nodes
            ],
            **spec,
        },
    }


def volume_manifest(vlab: VigilLab, name: str, nodes: tuple[str, str], **spec: Any) -> str:
    return yaml.safe_dump(volume_document(vlab, name, nodes, **spec), sort_keys=False)


def volume_group(
    vlab: VigilLab,
    group: str,
    volume: str,
    nodes: tuple[str, str],
    mount: str | None = None,
    stop_timeout: str | None = None,
) -> str:
    """A group on the volume's two nodes (the first preferred): the volume Primary, its
    ext4 filesystem at `mount` if given, and the lab's VIP."""
    filesystem = ""
    if mount is not None:
        timeouts = f"\n      timeouts: {{stop: {stop_timeout}}}" if stop_timeout else ""
        filesystem = (
            f'\n    - filesystem: {{device: "volume:{volume}", mountPoint: {mount}, '
            f"fsType: ext4}}{timeouts}"
        )
    return f"""apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {{name: {group}}}
spec:
  placement:
    nodes: [{{name: {nodes[0]}, score: 100}}, {{name: {nodes[1]}, score: 50}}]
    restricted: true
  resources:
    - volume: {{name: {volume}}}{filesystem}
    - ip: {{address: {vlab.vip()}/24, interface: eth0, arp: {{count: 3, interval: 50ms}}}}
"""


def replica(vlab: VigilLab, node: str, name: str) -> dict[str, Any]:
    """The replica's own status (`blockrepl status --json`) in its node; {} when it does
    not answer (not running yet, or the node is down)."""
    try:
        proc = vlab.lab.exec_in(
            node, [BLOCKREPL, "status", "--json", "--control", control_path(name)]
        )
    except LabError:
        return {}
    if proc.returncode != 0:
        return {}
    answer: dict[str, Any] = json.loads(proc.stdout)
    return answer


def control(vlab: VigilLab, node: str, name: str, command: str, *flags: str) -> None:
    proc = vlab.lab.exec_in(node, [BLOCKREPL, command, *flags, "--control", control_path(name)])
    if proc.returncode != 0:
        raise LabError(f"blockrepl {command} on {node}: {proc.stderr.strip()}")


def verify(vlab: VigilLab, node: str, name: str) -> tuple[bool, str]:
    """An online verify from `node` (blockrepl verify --wait): whether both replicas hold
    the same bytes, and blockrepl's summary."""
    argv = [BLOCKREPL, "verify", "--wait", "--control", control_path(name)]
    proc = vlab.lab.exec_in(node, argv, timeout=300)
    if proc.returncode not in (0, 1):
        raise LabError(f"blockrepl verify on {node}: {(proc.stderr or proc.stdout).strip()}")
    return proc.returncode == 0, proc.stdout.strip()


def in_sync(replicas: dict[str, dict[str, Any]]) -> bool:
    """Every replica (blockrepl status by node) UpToDate and connected to its peer."""
    return all(
        r["disk"] == "UpToDate" and r["connection"] == "Connected" for r in replicas.values()
    )


def wait_replicas(
    vlab: VigilLab, name: str, nodes: tuple[str, str], what: str, ok: Any, within: float = 60.0
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + within
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        seen = {node: replica(vlab, node, name) for node in nodes}
        if all(seen.values()) and ok(seen):
            return seen
        time.sleep(0.2)
    raise LabError(f"volume {name}: timed out waiting for {what}; replicas: {seen}")


def initial_sync(vlab: VigilLab, name: str, nodes: tuple[str, str], within: float = 120.0) -> None:
    """Once, on fresh metadata: the first node's data is the reference (DRBD's `primary
    --force`), then Secondary again; waits until both replicas are UpToDate."""
    wait_replicas(
        vlab, name, nodes, "the replicas to connect",
        lambda s: all(r["connection"] == "Connected" for r in s.values()), within,
    )  # fmt: skip
    # Forced beside an Inconsistent peer, the replica reconnects and sends it everything.
    control(vlab, nodes[0], name, "promote", "--force")
    control(vlab, nodes[0], name, "demote")
    wait_replicas(vlab, name, nodes, "the initial sync", in_sync, within)
