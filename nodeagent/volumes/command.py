"""The `blockrepl serve` command line of one replica, from the ReplicatedVolume spec. Pure.

Every field of the spec that blockrepl acts on appears here; a field with no flag is
refused at `ha apply` (controller/api/availability.py) rather than dropped here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from controller.api.volume import Replica, ReplicatedVolume
from nodeagent.actuators.volume_paths import control_socket, nbd_socket, volume_dir


@dataclass(frozen=True)
class ReplicaFiles:
    """What a replica needs from its node beyond the spec: the store client config for
    outdate records, and the node's certificate for a TLS replication link."""

    store_config: Path
    tls_cert: str
    tls_key: str
    tls_ca: str


class NotAReplica(ValueError):
    """The volume has no replica on this node."""


def own_and_peer(volume: ReplicatedVolume, node: str) -> tuple[Replica, Replica]:
    mine = [r for r in volume.spec.replicas if r.node == node]
    if not mine:
        raise NotAReplica(f"volume {volume.metadata.name} has no replica on {node}")
    peer = next(r for r in volume.spec.replicas if r.node != node)
    return mine[0], peer


def pid_file(run_dir: Path, name: str) -> Path:
    return volume_dir(run_dir, name) / "serve.pid"


def derived_secret_file(run_dir: Path, name: str) -> Path:
    """Where the link secret derived from the cluster key is kept when the spec names no
    secret file (supervisor.py writes it, root-only)."""
    return volume_dir(run_dir, name) / "secret"


def serve_command(
    volume: ReplicatedVolume, node: str, run_dir: Path, files: ReplicaFiles
) -> list[str]:
    """argv of this node's replica, always started Secondary: the cluster promotes it."""
    spec, name = volume.spec, volume.metadata.name
    mine, peer = own_and_peer(volume, node)
    argv = [sys.executable, "-m", "blockrepl.cli", "serve", "--backing", mine.disk]
    if mine.meta_disk != "internal":
        argv += ["--meta", mine.meta_disk]
    argv += [
        "--unix", str(nbd_socket(run_dir, name)),
        "--control", str(control_socket(run_dir, name)),
        "--pidfile", str(pid_file(run_dir, name)),
        "--export-name", name,
        "--volume", name,
        "--role", "secondary",
        "--listen-repl", mine.address,
        "--peer", peer.address,
        "--protocol", spec.protocol,
        "--timeout", f"{spec.network.timeout.total_seconds():g}",
        "--ping-interval", f"{spec.network.keepalive.total_seconds():g}",
        "--resync-rate", str(spec.resync_rate),
        "--on-io-error", spec.on_io_error,
        "--node-name", node,
        "--after-sb-0pri", spec.split_brain.after_sb_0pri,
        "--after-sb-1pri", spec.split_brain.after_sb_1pri,
        "--after-sb-2pri", spec.split_brain.after_sb_2pri,
    ]  # fmt: skip
    argv += ["--secret-file", spec.secret_file or str(derived_secret_file(run_dir, name))]
    if spec.checksum_resync:
        argv.append("--csums")
    argv += ["--peer-id", peer.node, "--outdate-peer", spec.outdate_peer]
    if spec.outdate_peer == "resource-only":
        argv += ["--store-config", str(files.store_config)]
    if spec.network.tls:
        argv += [
            "--tls-cert", files.tls_cert,
            "--tls-key", files.tls_key,
            "--tls-ca", files.tls_ca,
            "--tls-peer-name", peer.node,
        ]  # fmt: skip
    return argv
