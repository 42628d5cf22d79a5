"""The fsck policy: when to check, with what, and which exit statuses stop the mount."""

from __future__ import annotations

import pytest

from nodeagent.actuators.fsck import (
    ExtSuperblock,
    fsck_failure,
    needs_superblock,
    parse_dumpe2fs,
    plan_fsck,
)

DUMPE2FS = """\
Filesystem volume name:   <none>
Filesystem features:      has_journal ext_attr resize_inode dir_index filetype extent 64bit
Default mount options:    user_xattr acl
Filesystem state:         clean with errors
Errors behavior:          Continue
"""

CLEAN_EXT4 = ExtSuperblock("clean", frozenset({"has_journal", "extent"}))
CRASHED_EXT4 = ExtSuperblock("not clean", frozenset({"has_journal", "needs_recovery"}))
FLAGGED_EXT4 = ExtSuperblock("clean with errors", frozenset({"has_journal"}))
EXT2 = ExtSuperblock("clean", frozenset({"ext_attr"}))


def test_parse_dumpe2fs() -> None:
    sb = parse_dumpe2fs(DUMPE2FS)
    assert sb.state == "clean with errors" and sb.has_errors and sb.journaled
    with pytest.raises(ValueError, match="Filesystem state"):
        parse_dumpe2fs("dumpe2fs: Bad magic number in super-block\n")


@pytest.mark.parametrize(
    ("fs_type", "superblock", "argv"),
    [
        # A crash of a journaled filesystem: the mount's journal replay recovers it.
        ("ext4", CLEAN_EXT4, None),
        ("ext4", CRASHED_EXT4, None),
        ("ext3", CRASHED_EXT4, None),
        # The kernel recorded errors: preen (e2fsck -p forces a check on that state).
        ("ext4", FLAGGED_EXT4, ("e2fsck", "-p", "/dev/x")),
        # No journal: preen at every start, as the OCF agent.
        ("ext2", EXT2, ("e2fsck", "-p", "/dev/x")),
        ("ext4", EXT2, ("e2fsck", "-p", "/dev/x")),  # ext4 made without a journal
        ("vfat", None, ("fsck", "-t", "vfat", "-p", "/dev/x")),
        ("xfs", None, None),
        ("btrfs", None, None),
    ],
)
def test_auto(fs_type: str, superblock: ExtSuperblock | None, argv: tuple[str, ...] | None) -> None:
    step = plan_fsck("auto", fs_type, "/dev/x", superblock)
    assert (step.argv if step else None) == argv


def test_auto_checks_an_ext_superblock_it_cannot_read() -> None:
    step = plan_fsck("auto", "ext4", "/dev/x", None, "Bad magic number")
    assert step is not None and step.argv == ("e2fsck", "-p", "/dev/x")
    assert "Bad magic number" in step.why


def test_force_and_never() -> None:
    force = plan_fsck("force", "ext4", "/dev/x", CLEAN_EXT4)
    assert force is not None and force.argv == ("e2fsck", "-f", "-p", "/dev/x")
    xfs = plan_fsck("force", "xfs", "/dev/x")
    assert xfs is not None and xfs.argv == ("fsck", "-t", "xfs", "-p", "/dev/x")
    assert plan_fsck("never", "ext4", "/dev/x", FLAGGED_EXT4) is None
    assert needs_superblock("auto", "ext4") and not needs_superblock("force", "ext4")
    assert not needs_superblock("auto", "xfs")


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        (0, None),
        (1, None),
        (2, None),
        (3, None),
        (4, "exit status 4: errors left uncorrected"),
        (12, "exit status 12: errors left uncorrected, operational error"),
        (8, "exit status 8: operational error"),
        (-9, "exit status -9: "),
    ],
)
def test_exit_statuses(code: int, failure: str | None) -> None:
    found = fsck_failure(code)
    if failure is None:
        assert found is None
    else:
        assert found is not None and found.startswith(failure)
