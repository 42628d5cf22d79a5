"""Processes that keep a mount busy, found under /proc as `fuser -m` and the OCF
Filesystem agent's force_unmount do: a working directory, a root, an open file or a
memory-mapped file on it.

What references a mount is matched by mount id where the kernel gives one (the fdinfo
of an open file, and of an O_PATH handle on a process's cwd and root), so the scan never
calls into the filesystem itself: a stat() on a file of a dead NFS server or FUSE daemon
can hang, the scan must not. Mapped files (/proc/<pid>/maps) carry only a device
number, so they match every mount of that filesystem. Reading another process's entries
races with it exiting; a process gone mid-scan holds nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nodeagent.actuators.mountinfo import unescape

PROC = Path("/proc")


@dataclass(frozen=True)
class Holder:
    pid: int
    comm: str
    how: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        return f"pid {self.pid} ({self.comm}: {', '.join(self.how)})"


def parse_mnt_id(fdinfo: str) -> int | None:
    """The mnt_id line of /proc/<pid>/fdinfo/<fd>."""
    for line in fdinfo.splitlines():
        key, _, value = line.partition(":")
        if key == "mnt_id":
            return int(value)
    return None


def mapped_on(maps: str, dev: tuple[int, int]) -> list[str]:
    """Paths of the file mappings in /proc/<pid>/maps that live on device dev (hex
    major:minor in the 4th column, inode in the 5th; anonymous mappings have inode 0)."""
    found: list[str] = []
    for line in maps.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 5 or parts[4] == "0":
            continue
        major, _, minor = parts[3].partition(":")
        if (int(major, 16), int(minor, 16)) != dev:
            continue
        path = parts[5].strip() if len(parts) > 5 else f"inode {parts[4]}"
        if path not in found:
            found.append(path)
    return found


def describe_all(holders: Iterable[Holder]) -> str:
    return "; ".join(h.describe() for h in holders)


def _own_mnt_id(fd: int) -> int | None:
    try:
        return parse_mnt_id((PROC / "self" / "fdinfo" / str(fd)).read_text())
    except OSError:
        return None


def _link_mnt_id(path: Path) -> int | None:
    """The mount id of what a /proc magic link (cwd, root, fd/N) points to, through an
    O_PATH handle: it opens nothing on the target filesystem."""
    try:
        fd = os.open(path, os.O_PATH)
    except OSError:
        return None
    try:
        return _own_mnt_id(fd)
    finally:
        os.close(fd)


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _comm(pid_dir: Path) -> str:
    try:
        return (pid_dir / "comm").read_text().strip()
    except OSError:
        return "?"


def holder_of(pid: int, mount_id: int, dev: tuple[int, int], proc: Path = PROC) -> Holder | None:
    """How process pid holds the mount, or None when it does not (or is gone)."""
    pid_dir = proc / str(pid)
    how: list[str] = []
    for name in ("cwd", "root"):
        if _link_mnt_id(pid_dir / name) == mount_id:
            how.append(f"{name} {_readlink(pid_dir / name)}")
    with contextlib.suppress(OSError):
        for fd in sorted(os.listdir(pid_dir / "fdinfo"), key=lambda s: int(s)):
            with contextlib.suppress(OSError, ValueError):
                if parse_mnt_id((pid_dir / "fdinfo" / fd).read_text()) == mount_id:
                    how.append(f"fd {fd} {_readlink(pid_dir / 'fd' / fd)}")
    with contextlib.suppress(OSError):
        how.extend(f"mmap {path}" for path in mapped_on((pid_dir / "maps").read_text(), dev))
    if not how:
        return None
    return Holder(pid, _comm(pid_dir), tuple(how))


def find_holders(
    mount_id: int, dev: tuple[int, int], proc: Path = PROC, skip: Collection[int] = ()
) -> list[Holder]:
    """Every process (but those in skip) that holds the mount."""
    found: list[Holder] = []
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) in skip:
            continue
        holder = holder_of(int(entry), mount_id, dev, proc)
        if holder is not None:
            found.append(holder)
    return found


def namespaces_mounting(dev: tuple[int, int], proc: Path = PROC) -> list[Holder]:
    """One process per other mount namespace in which the filesystem on dev is mounted
    (mountinfo is per namespace: this one's does not show those copies)."""
    own = _readlink(proc / "self" / "ns" / "mnt")
    seen: set[str] = {own}
    found: list[Holder] = []
    needle = f" {dev[0]}:{dev[1]} "
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        pid_dir = proc / entry
        ns = _readlink(pid_dir / "ns" / "mnt")
        if ns in seen or ns == "?":
            continue
        seen.add(ns)
        try:
            lines = (pid_dir / "mountinfo").read_text().splitlines()
        except OSError:
            continue
        points = [unescape(line.split()[4]) for line in lines if needle in f" {line.split()[2]} "]
        if points:
            found.append(
                Holder(int(entry), _comm(pid_dir), tuple(f"mounted at {p}" for p in points))
            )
    return found
