"""Fixtures for cluster tests: a fresh 3-node Vigil lab per test, watched by a VipObserver.

Every test that uses `vlab` runs under the observer of the lab's VIP; the teardown fails
the test if the VIP was ever on two powered nodes at once (docs/safety.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.testing import unique_lab_name

from .helpers import watched_lab

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "unshare", "nsenter", "nft")),
    reason="cluster lab tests need root and ip/unshare/nsenter/nft",
)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[VigilLab, VipObserver]]:
    yield from watched_lab(VigilLab(unique_lab_name("vc"), 3, disk_root=tmp_path / "disks"))


@pytest.fixture
def vlab(watched: tuple[VigilLab, VipObserver]) -> VigilLab:
    return watched[0]


@pytest.fixture
def observer(watched: tuple[VigilLab, VipObserver]) -> VipObserver:
    return watched[1]
