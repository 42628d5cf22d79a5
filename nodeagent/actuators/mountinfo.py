"""The mount table as the kernel keeps it (/proc/self/mountinfo), and the mount commands.

Pure, apart from `read_mountinfo`. mountinfo rather than /proc/mounts because it gives
each mount's device number: a block filesystem is "ours" when the mount's major:minor is
the device's (a /dev/disk/by-uuid symlink, /dev/sdb1 and /dev/dm-0 all compare right),
which a source string cannot tell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as \\ooo."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class Mount:
    mount_id: int
    major: int
    minor: int
    root: str  # the mounted subtree of the filesystem ("/" unless a bind mount of a part)
    mount_point: str
    options: str
    fs_type: str
    source: str

    @property
    def dev(self) -> tuple[int, int]:
        return (self.major, self.minor)


def parse_mountinfo(text: str) -> list[Mount]:
    """Every line of proc(5)'s mountinfo; optional fields end at the " - " separator."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        head, sep, tail = line.partition(" - ")
        if not sep:
            raise ValueError(f"malformed mountinfo line (no ' - '): {line[:120]!r}")
        fields = head.split()
        rest = tail.split(" ")  # one space apart: an empty source stays a field
        major, _, minor = fields[2].partition(":")
        mounts.append(
            Mount(
                mount_id=int(fields[0]),
                major=int(major),
                minor=int(minor),
                root=unescape(fields[3]),
                mount_point=unescape(fields[4]),
                options=fields[5],
                fs_type=rest[0],
                source=unescape(rest[1]) if len(rest) > 1 else "",
            )
        )
    return mounts


def read_mountinfo(path: Path = MOUNTINFO) -> list[Mount]:
    return parse_mountinfo(path.read_text())


def normal_path(path: str) -> str:
    return path.rstrip("/") or "/"


def mount_at(mounts: Iterable[Mount], mount_point: str) -> Mount | None:
    """What is visible at mount_point now: the last mount on it (mounts stack)."""
    want = normal_path(mount_point)
    found = None
    for mount in mounts:
        if mount.mount_point == want:
            found = mount
    return found


def mounts_of_device(mounts: Iterable[Mount], dev: tuple[int, int]) -> list[Mount]:
    """Every mount of the filesystem on device dev (its bind mounts included)."""
    return [m for m in mounts if m.dev == dev]


def same_network_source(mounted: str, wanted: str) -> bool:
    """nfs shows "host:/export" as given, perhaps with or without a trailing slash."""
    return normal_path(mounted) == normal_path(wanted)


def mount_argv(device: str, mount_point: str, fs_type: str, options: Sequence[str]) -> list[str]:
    """mount(8) with the type always given: never let it guess a damaged filesystem's type."""
    opts = ["-o", ",".join(options)] if options else []
    return ["mount", "-t", fs_type, *opts, device, mount_point]


def umount_argv(mount_point: str) -> list[str]:
    return ["umount", mount_point]
