"""Where a replicated volume's replica is reached on its node.

The volume supervisor runs `blockrepl serve` with these sockets; the `volume` actuator
promotes and demotes through the control socket, and a `filesystem` on `volume:<name>`
attaches the NBD socket. One module, so the two sides cannot disagree on a path.
"""

from __future__ import annotations

from pathlib import Path


def volume_dir(run_dir: Path, volume: str) -> Path:
    """Runtime directory of one volume's replica on this node (tmpfs: gone at reboot)."""
    return run_dir / "volumes" / volume


def nbd_socket(run_dir: Path, volume: str) -> Path:
    """The replica's NBD export (unix socket); only a Primary serves I/O through it."""
    return volume_dir(run_dir, volume) / "nbd.sock"


def control_socket(run_dir: Path, volume: str) -> Path:
    """The replica's control socket (blockrepl/replication/control.py)."""
    return volume_dir(run_dir, volume) / "control.sock"
