"""Fixtures for the fence device tests: simulated BMCs on loopback (sims.py) and the
root-only credentials files the devices read."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fencing.sims import IpmiSim, SushyEmulator

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="credentials files must be owned by root: run the tests as root"
)
needs_ipmi_sim = pytest.mark.skipif(
    shutil.which("ipmi_sim") is None, reason="ipmi_sim missing: apt-get install openipmi"
)


@pytest.fixture
def ipmi_sim(tmp_path: Path) -> Iterator[IpmiSim]:
    sim = IpmiSim(tmp_path / "ipmi").start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def sushy(tmp_path: Path) -> Iterator[SushyEmulator]:
    emulator = SushyEmulator(tmp_path / "sushy").start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    # Every test sees every log line, pyghmi's and sushy's included, so the secret
    # checks read everything a node's journal would.
    caplog.set_level(logging.DEBUG)
