"""A watchdog device for tests, since this machine has none: a FUSE file that speaks the
Linux watchdog interface (/dev/cuse is absent and the kernel has no cuse, so not a
character device; FUSE passes ioctls on regular files when their size is encoded in the
command, as WDIOC_* are).

Serves MOUNT/watchdog with the watchdog core's semantics: opening starts the timer;
WDIOC_SETTIMEOUT sets it (and pets), WDIOC_KEEPALIVE or any write pets it; a close after
writing the magic 'V' stops it, any other close leaves it running. When it expires it
"fires": it SIGKILLs the victim process (the stand-in for the node) whose PID is given.
Every event goes to EVENTS, one line each.

Run: python -m tests.integration.fencing.watchdogfs MOUNT VICTIM_PID EVENTS
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import stat
import sys
import threading
import time
from typing import Any

import mfusepy  # type: ignore[import-untyped]

from nodeagent.fencing.watchdog import WDIOC_GETTIMEOUT, WDIOC_KEEPALIVE, WDIOC_SETTIMEOUT

DEFAULT_TIMEOUT = 60


class WatchdogFile(mfusepy.Operations):  # type: ignore[misc]
    def __init__(self, victim: int, events: str) -> None:
        self.victim = victim
        self.events = events
        self.lock = threading.Lock()
        self.timeout = DEFAULT_TIMEOUT
        self.deadline: float | None = None  # None: stopped
        self.open_count = 0
        self.expect_close = False
        threading.Thread(target=self._expiry, daemon=True).start()

    def _event(self, text: str) -> None:
        with open(self.events, "a") as f:
            f.write(f"{time.monotonic():.3f} {text}\n")

    def _pet(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def _expiry(self) -> None:
        while True:
            time.sleep(0.02)
            with self.lock:
                if self.deadline is None or time.monotonic() < self.deadline:
                    continue
                self.deadline = None
                try:
                    os.kill(self.victim, signal.SIGKILL)
                    self._event(f"fired killed {self.victim}")
                except ProcessLookupError:
                    self._event("fired no victim")

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        now = time.time()
        if path == "/":
            mode = stat.S_IFDIR | 0o755
        elif path == "/watchdog":
            mode = stat.S_IFREG | 0o600
        else:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return {"st_mode": mode, "st_nlink": 1, "st_size": 0,
                "st_atime": now, "st_mtime": now, "st_ctime": now}  # fmt: skip

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", "watchdog"]

    def open(self, path: str, flags: int) -> int:
        with self.lock:
            if self.open_count:
                raise mfusepy.FuseOSError(errno.EBUSY)  # as the kernel: one opener
            self.open_count = 1
            self.expect_close = False
            self._pet()
            self._event(f"open timeout={self.timeout}")
        return 0

    def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
        with self.lock:
            self.expect_close = b"V" in data
            self._pet()
            self._event(f"write {data!r}")
        return len(data)

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        return 0

    def ioctl(self, path: str, cmd: int, arg: Any, fh: Any, flags: int, data: Any) -> int:
        cmd &= 0xFFFFFFFF
        value = ctypes.cast(data, ctypes.POINTER(ctypes.c_int)) if data else None
        with self.lock:
            if cmd == WDIOC_SETTIMEOUT and value is not None:
                self.timeout = int(value[0])
                self._pet()
                value[0] = self.timeout
                self._event(f"settimeout {self.timeout}")
            elif cmd == WDIOC_KEEPALIVE:
                self._pet()
                self._event("keepalive")
            elif cmd == WDIOC_GETTIMEOUT and value is not None:
                value[0] = self.timeout
            else:
                raise mfusepy.FuseOSError(errno.ENOTTY)
        return 0

    def release(self, path: str, fh: Any) -> int:
        with self.lock:
            self.open_count = 0
            if self.expect_close:
                self.deadline = None
                self._event("release stopped")
            else:
                self._event("release without magic close: still running")
        return 0


def main() -> None:
    mount, victim, events = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    mfusepy.FUSE(WatchdogFile(victim, events), mount, foreground=True, direct_io=True)


if __name__ == "__main__":
    main()
