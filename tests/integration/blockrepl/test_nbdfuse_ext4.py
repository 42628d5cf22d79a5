"""Full stack: blockrepl serve -> nbdfuse -> losetup --direct-io -> mkfs.ext4 -> mount."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Served, run, show_md

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0
        or not all(shutil.which(t) for t in ("nbdfuse", "losetup", "mkfs.ext4", "fusermount3"))
        or not os.path.exists("/dev/fuse"),
        reason="needs root, /dev/fuse, nbdfuse, losetup, mkfs.ext4",
    ),
]


def _wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def test_ext4_on_nbdfuse_loop(served: Served, tmp_path: Path) -> None:
    fuse_dir, fs_dir = tmp_path / "fuse", tmp_path / "fs"
    fuse_dir.mkdir()
    fs_dir.mkdir()
    disk = fuse_dir / "disk"
    pidfile = tmp_path / "nbdfuse.pid"
    fuse = subprocess.Popen(
        ["nbdfuse", "-P", str(pidfile), str(disk), "--unix", served.sock],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    loop = ""
    mounted = False
    try:
        _wait(pidfile.exists, 20, "nbdfuse pidfile")
        loop = run("losetup", "-f", "--show", "--direct-io=on", str(disk)).strip()
        run("mkfs.ext4", "-q", "-F", loop)
        run("mount", loop, str(fs_dir))
        mounted = True
        digests = {}
        for i in range(3):
            blob = os.urandom(3 * 1024 * 1024 + i * 4097)
            (fs_dir / f"f{i}.bin").write_bytes(blob)
            digests[f"f{i}.bin"] = hashlib.sha256(blob).hexdigest()
        run("sync")
        run("umount", str(fs_dir))
        mounted = False
        # Remount: everything now comes back through nbdfuse and the server.
        run("sh", "-c", "echo 3 > /proc/sys/vm/drop_caches")
        run("mount", loop, str(fs_dir))
        mounted = True
        for name, digest in digests.items():
            assert hashlib.sha256((fs_dir / name).read_bytes()).hexdigest() == digest
        run("umount", str(fs_dir))
        mounted = False
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(fs_dir)], check=False)
        if loop:
            subprocess.run(["losetup", "-d", loop], check=False)
            # Detach is asynchronous (final flush); fusermount fails with EBUSY until done.
            with contextlib.suppress(TimeoutError):
                _wait(
                    lambda: (
                        not subprocess.run(
                            ["losetup", "-j", str(disk)], capture_output=True, text=True
                        ).stdout.strip()
                    ),
                    60,
                    "loop detach",
                )
        subprocess.run(["fusermount3", "-u", str(fuse_dir)], check=False, capture_output=True)
        try:
            fuse.wait(timeout=20)
        except subprocess.TimeoutExpired:
            fuse.kill()
            fuse.wait()
    served.stop()
    md = show_md(served.backing)
    assert md["clean_shutdown"] and int(md["dirty_bits"]) > 0  # type: ignore[call-overload]
