"""Finding what holds a mount: fdinfo mount ids, mapped files by device, and a real scan
of this process's own open file (tmp_path's mount)."""

from __future__ import annotations

import os
from pathlib import Path

from nodeagent.actuators.holders import (
    Holder,
    describe_all,
    find_holders,
    holder_of,
    mapped_on,
    parse_mnt_id,
)
from nodeagent.actuators.mountinfo import read_mountinfo

MAPS = """\
55d0c0a00000-55d0c0a21000 r--p 00000000 07:03 131 /srv/app/bin/server
55d0c0a21000-55d0c0a90000 r-xp 00021000 07:03 131 /srv/app/bin/server
7f10a0000000-7f10a0021000 rw-p 00000000 00:00 0
7f10a1000000-7f10a1200000 r--p 00000000 fd:01 99 /usr/lib/libc.so.6
7f10a2000000-7f10a2001000 rw-s 00000000 07:03 140 /srv/app/data/shm (deleted)
7f10a3000000-7f10a3001000 r--p 00000000 07:03 141
"""


def test_parse_mnt_id() -> None:
    assert parse_mnt_id("pos:\t0\nflags:\t02100002\nmnt_id:\t36\nino:\t12\n") == 36
    assert parse_mnt_id("pos:\t0\n") is None


def test_mapped_files_on_a_device() -> None:
    assert mapped_on(MAPS, (7, 3)) == [
        "/srv/app/bin/server",
        "/srv/app/data/shm (deleted)",
        "inode 141",
    ]
    assert mapped_on(MAPS, (0xFD, 1)) == ["/usr/lib/libc.so.6"]
    assert mapped_on(MAPS, (8, 1)) == []


def test_description_names_pid_command_and_how() -> None:
    held = [Holder(42, "postgres", ("cwd /srv/pg", "fd 3 /srv/pg/x")), Holder(7, "sh", ("root /",))]
    assert (
        describe_all(held) == "pid 42 (postgres: cwd /srv/pg, fd 3 /srv/pg/x); pid 7 (sh: root /)"
    )


def _mount_of(path: Path) -> tuple[int, tuple[int, int]]:
    """The mount id and device of the mount that holds path (longest mount point prefix)."""
    real = os.path.realpath(path)
    best = max(
        (
            m
            for m in read_mountinfo()
            if real == m.mount_point or real.startswith(m.mount_point.rstrip("/") + "/")
        ),
        key=lambda m: len(m.mount_point),
    )
    return best.mount_id, best.dev


def test_this_process_holding_a_file_is_found(tmp_path: Path) -> None:
    mount_id, dev = _mount_of(tmp_path)
    with (tmp_path / "held").open("w"):
        me = holder_of(os.getpid(), mount_id, dev)
        assert me is not None and me.pid == os.getpid()
        assert any(how.startswith("fd ") and how.endswith("/held") for how in me.how), me
        assert os.getpid() in [h.pid for h in find_holders(mount_id, dev)]
        assert os.getpid() not in [h.pid for h in find_holders(mount_id, dev, skip={os.getpid()})]
    assert holder_of(2**22 + 4321, mount_id, dev) is None  # gone: holds nothing
