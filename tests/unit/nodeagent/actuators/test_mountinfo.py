"""Reading the mount table: escapes, optional fields, stacked mounts, bind mounts."""

from __future__ import annotations

import os

import pytest

from nodeagent.actuators.mountinfo import (
    mount_argv,
    mount_at,
    mounts_of_device,
    parse_mountinfo,
    read_mountinfo,
    same_network_source,
    umount_argv,
    unescape,
)

TABLE = """\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
36 22 7:3 / /srv/my\\040data rw,noatime shared:20 master:3 - ext4 /dev/loop3 rw,errors=remount-ro
37 22 7:3 /sub /mnt/bind rw,noatime - ext4 /dev/loop3 rw
38 36 0:53 / /srv/my\\040data rw,relatime - ext4 /dev/loop4 rw
40 22 0:60 / /srv/nfs rw,relatime - nfs4 nfs1:/export/ rw,vers=4.2,addr=10.0.0.5
41 22 0:61 / /srv/empty rw - tmpfs  rw
"""


def test_fields_and_escapes() -> None:
    mounts = parse_mountinfo(TABLE)
    assert len(mounts) == 6
    data = mounts[1]
    assert (data.mount_id, data.dev, data.root) == (36, (7, 3), "/")
    assert data.mount_point == "/srv/my data" and data.fs_type == "ext4"
    assert data.source == "/dev/loop3" and "noatime" in data.options
    assert mounts[2].root == "/sub"
    assert mounts[5].source == ""  # an empty source (tmpfs none) still parses
    assert unescape("a\\011b\\134c\\012") == "a\tb\\c\n"
    with pytest.raises(ValueError, match="no ' - '"):
        parse_mountinfo("36 22 7:3 / /x rw\n")


def test_the_top_of_a_stack_is_what_a_mount_point_shows() -> None:
    mounts = parse_mountinfo(TABLE)
    top = mount_at(mounts, "/srv/my data/")
    assert top is not None and top.mount_id == 38 and top.source == "/dev/loop4"
    assert mount_at(mounts, "/srv/other") is None
    assert mount_at(mounts, "/") is not None


def test_every_mount_of_a_device_bind_mounts_included() -> None:
    mounts = parse_mountinfo(TABLE)
    assert [m.mount_point for m in mounts_of_device(mounts, (7, 3))] == [
        "/srv/my data",
        "/mnt/bind",
    ]


def test_network_sources_compare_without_a_trailing_slash() -> None:
    assert same_network_source("nfs1:/export/", "nfs1:/export")
    assert same_network_source("//files/share", "//files/share/")
    assert not same_network_source("nfs1:/export", "nfs2:/export")


def test_commands() -> None:
    assert mount_argv("/dev/loop3", "/srv/d", "ext4", []) == [
        "mount", "-t", "ext4", "/dev/loop3", "/srv/d",
    ]  # fmt: skip
    assert mount_argv("nfs1:/e", "/srv/n", "nfs4", ["hard", "vers=4.2"]) == [
        "mount", "-t", "nfs4", "-o", "hard,vers=4.2", "nfs1:/e", "/srv/n",
    ]  # fmt: skip
    assert umount_argv("/srv/d") == ["umount", "/srv/d"]


def test_this_machines_table_parses() -> None:
    mounts = read_mountinfo()
    root = mount_at(mounts, "/")
    assert root is not None
    st = os.stat("/")
    assert root.dev == (os.major(st.st_dev), os.minor(st.st_dev))
