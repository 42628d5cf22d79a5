"""A fresh three-node Vigil lab per test, watched by the VIP observer; volumes live on the
first two nodes (the third is the majority's tie-breaker, as a witness would be)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.testing import unique_lab_name
from tests.integration.cluster.conftest import needs_root
from tests.integration.cluster.helpers import watched_lab

__all__ = ["needs_root"]


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[VigilLab, VipObserver]]:
    yield from watched_lab(VigilLab(unique_lab_name("vv"), 3, disk_root=tmp_path / "disks"))


@pytest.fixture
def vlab(watched: tuple[VigilLab, VipObserver]) -> VigilLab:
    return watched[0]
