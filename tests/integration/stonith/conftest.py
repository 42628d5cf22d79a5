"""Fixtures: Vigil labs that fence through real IPMI simulators (lab/bmc.py), watched by a
VipObserver that fails the test if the VIP was ever on two powered nodes at once."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import state
from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.testing import unique_lab_name
from tests.integration.cluster.helpers import watched_lab

needs_ipmi_sim = pytest.mark.skipif(
    shutil.which("ipmi_sim") is None, reason="needs Debian's openipmi (ipmi_sim)"
)


@contextlib.contextmanager
def explained(lab: VigilLab, lines: int = 80) -> Iterator[None]:
    """On a failure, each node's log tail to stderr (pytest shows it with the failure):
    the lab and its logs are gone once the fixture tears it down."""
    try:
        yield
    except BaseException:
        for node in lab.nodes:
            path = state.log_path(lab.name, node)
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                sys.stderr.write(f"\n--- {path} (last {lines} lines)\n" + "\n".join(tail) + "\n")
        raise


@pytest.fixture
def fenced3(tmp_path: Path) -> Iterator[tuple[VigilLab, VipObserver]]:
    """Three nodes, majority quorum, fencing on through the BMCs (action off: a fenced lab
    node stays off until the test powers it on)."""
    yield from watched_lab(
        VigilLab(
            unique_lab_name("st"), 3, disk_root=tmp_path / "disks", fencing=True, fence_action="off"
        )
    )


@pytest.fixture
def fenced2(tmp_path: Path) -> Iterator[tuple[VigilLab, VipObserver]]:
    """Two nodes, two-node mode, fencing through the BMCs."""
    yield from watched_lab(
        VigilLab(
            unique_lab_name("tn"),
            2,
            disk_root=tmp_path / "disks",
            fencing=True,
            quorum="two-node",
            fence_action="off",
        )
    )
