"""A node's power loss leaves no loop device behind: the loops its filesystem actuator
attached (recorded on the node's disk) are detached by the lab's power-off."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from lab import Lab, state
from lab.testing import running_lab
from nodeagent.actuators.attach import RECORDS, Attachment, attachment_state
from tests.integration.lab.conftest import needs_root

pytestmark = [
    needs_root,
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("nbdfuse", "losetup", "mkfs.ext4", "fusermount3")),
        reason="needs nbdfuse, losetup, mkfs.ext4, fusermount3",
    ),
]
PAYLOAD = [sys.executable, str(Path(__file__).with_name("payload_filesystem.py"))]


def lab_log(lab: Lab) -> str:
    return state.log_path(lab.name, "n1").read_text()[-3000:]


def test_power_off_leaves_no_loop_device_behind(tmp_path: Path) -> None:
    with running_lab(1, PAYLOAD, disk_root=tmp_path, prefix="fs") as lab:
        disk = lab.disk_dir("n1")
        deadline = time.monotonic() + 60
        while not (disk / "ready").exists():
            assert time.monotonic() < deadline, lab_log(lab)
            time.sleep(0.1)
        record_file = disk / RECORDS / "grp_fs.json"
        attachment = Attachment.loads(record_file.read_text())
        assert attachment_state(attachment) == "attached"

        assert lab.power_off("n1")
        assert attachment_state(attachment) == "gone"
        assert not record_file.exists()
        # Booted again on the same disk, the node finds the filesystem intact.
        (disk / "ready").unlink()
        lab.power_on("n1")
        deadline = time.monotonic() + 60
        while not (disk / "ready").exists():
            assert time.monotonic() < deadline, lab_log(lab)
            time.sleep(0.1)
        assert (disk / "ready").read_text() == "found: before the power loss\n"
        again = Attachment.loads(record_file.read_text())
        assert attachment_state(again) == "attached"
    # lab.down() powered it off too.
    assert attachment_state(again) == "gone"
