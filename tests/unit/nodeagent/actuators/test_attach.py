"""Attachment records and telling our loop attachment from a later one (sysfs faked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.actuators import attach
from nodeagent.actuators.attach import (
    Attachment,
    attachment_state,
    detach_recorded,
    read_record,
    record_paths,
    write_record,
)

OURS = Attachment("pgdata", "/run/vigil/volumes/pgdata/nbd.sock", "/run/vigil/filesystems/g_fs",
                  4242, 987, "/dev/loop7", 120)  # fmt: skip


def fake_loop(sys_block: Path, name: str, diskseq: int, attached: bool) -> None:
    (sys_block / name).mkdir(parents=True, exist_ok=True)
    (sys_block / name / "diskseq").write_text(f"{diskseq}\n")
    if attached:
        (sys_block / name / "loop").mkdir(exist_ok=True)
        (sys_block / name / "loop" / "backing_file").write_text("/disk\n")


def test_record_round_trip_in_both_places(tmp_path: Path) -> None:
    run, lib = record_paths("g_fs", tmp_path / "run", tmp_path / "lib")
    assert run == tmp_path / "run" / "filesystems" / "g_fs.json"
    assert lib == tmp_path / "lib" / "filesystems" / "g_fs.json"
    write_record(OURS, run, lib)
    assert read_record(run) == read_record(lib) == OURS
    assert OURS.file == Path("/run/vigil/filesystems/g_fs/disk")
    assert read_record(tmp_path / "none.json") is None


@pytest.mark.parametrize(
    ("diskseq", "attached", "state"),
    [
        (120, True, "attached"),
        (121, True, "detaching"),  # losetup -d began: the final flush still runs
        (121, False, "gone"),
        (125, True, "gone"),  # a later attachment of the same loop: not ours
        (120, False, "gone"),
    ],
)
def test_attachment_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, diskseq: int, attached: bool, state: str
) -> None:
    monkeypatch.setattr(attach, "SYS_BLOCK", tmp_path)
    fake_loop(tmp_path, "loop7", diskseq, attached)
    assert attachment_state(OURS) == state


def test_the_lab_cleanup_leaves_a_loop_it_did_not_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attach, "SYS_BLOCK", tmp_path / "sys")
    fake_loop(tmp_path / "sys", "loop7", 130, attached=True)  # someone else's now
    records = tmp_path / "filesystems"
    write_record(OURS, records / "g_fs.json")
    (records / "bad.json").write_text("{")
    errors = detach_recorded(records, timeout=0.1)
    assert not (records / "g_fs.json").exists()  # nothing of ours is left to detach
    assert len(errors) == 1 and "bad.json: unreadable attachment record" in errors[0]
