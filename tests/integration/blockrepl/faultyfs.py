"""A FUSE file that fails like a broken disk: real EIO from read/write/fsync syscalls.

Stand-in for the device mapper's ``error`` target (this kernel has no device-mapper:
``/dev/mapper/control`` gives ENODEV). Serves one file, ``MOUNT/disk``, backed by IMAGE.
The faults are read from a JSON control file whenever it changes::

    {"bad": [[offset, length], ...], "ops": ["read", "write", "writeback"]}

"read"/"write": those calls fail with EIO when they touch a bad range. "writeback": a
write touching a bad range "succeeds" but its data is dropped, and the next fsync fails
once with EIO, the way a failed page-cache writeback is reported (errseq). ``direct_io``
keeps the kernel page cache out of the way, so every request reaches this process.

Run: python -m tests.integration.blockrepl.faultyfs IMAGE MOUNT CONTROL
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import threading
from typing import Any

import mfusepy  # type: ignore[import-untyped]


class FaultyDisk(mfusepy.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, image: str, control: str) -> None:
        self.fd = os.open(image, os.O_RDWR)
        self.size = os.fstat(self.fd).st_size
        self.control = control
        self._lock = threading.Lock()
        self.bad: list[tuple[int, int]] = []
        self.ops: set[str] = set()
        self.lost_writeback = False

    def _reload(self) -> None:
        # Read every time: mtime granularity could hide two quick changes.
        cfg: dict[str, Any] = {}
        try:
            with open(self.control) as f:
                cfg = json.load(f)
        except (FileNotFoundError, ValueError):  # ValueError: caught mid-rewrite
            if os.path.exists(self.control):
                return
        with self._lock:
            self.bad = [(int(o), int(n)) for o, n in cfg.get("bad", [])]
            self.ops = set(cfg.get("ops", ["read", "write"]))

    def _fails(self, op: str, offset: int, length: int) -> bool:
        self._reload()
        if op not in self.ops:
            return False
        return any(offset < o + n and o < offset + length for o, n in self.bad)

    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == "/disk":
            return {"st_mode": stat.S_IFREG | 0o600, "st_nlink": 1, "st_size": self.size}
        raise mfusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", "disk"]

    def open(self, path: str, flags: int) -> int:
        if path != "/disk":
            raise mfusepy.FuseOSError(errno.ENOENT)
        return 0

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        if self._fails("read", offset, size):
            raise mfusepy.FuseOSError(errno.EIO)
        return os.pread(self.fd, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
        if self._fails("write", offset, len(data)):
            raise mfusepy.FuseOSError(errno.EIO)
        if self._fails("writeback", offset, len(data)):
            with self._lock:
                self.lost_writeback = True
            return len(data)
        return os.pwrite(self.fd, data, offset)

    def fsync(self, path: str, datasync: int, fh: Any) -> int:
        with self._lock:
            lost, self.lost_writeback = self.lost_writeback, False
        if lost:
            raise mfusepy.FuseOSError(errno.EIO)
        os.fdatasync(self.fd)
        return 0

    def flush(self, path: str, fh: Any) -> int:
        return 0

    def release(self, path: str, fh: Any) -> int:
        return 0

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        if length != self.size:
            raise mfusepy.FuseOSError(errno.EPERM)
        return 0


def main() -> None:
    image, mount, control = sys.argv[1:4]
    mfusepy.FUSE(FaultyDisk(image, control), mount, foreground=True, direct_io=True)


if __name__ == "__main__":
    main()
