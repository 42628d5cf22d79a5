"""Acceptance: ext4 made on the Primary through nbdfuse + loop survives a failover.

Two real replicas in two network namespaces (protocol C). On A: nbdfuse on its NBD socket,
losetup, mkfs.ext4, mount, write files, sha256 them, sync. Then either a clean switch-over
(umount, demote A, promote B) or a power loss (SIGKILL A and cut the link right after
``sync`` returned, the filesystem still mounted). On B: promote, nbdfuse + losetup,
e2fsck, mount: the same checksums.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from .replicas import Replica, replica_pair, shm_dir, wait_for

TOOLS = ("ip", "nbdfuse", "losetup", "mkfs.ext4", "e2fsck", "fusermount3", "mount", "umount")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0
        or not all(shutil.which(t) for t in TOOLS)
        or not os.path.exists("/dev/fuse"),
        reason="needs root, /dev/fuse, " + ", ".join(TOOLS),
    ),
]
KiB, MiB = 1024, 1024 * 1024


def run(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def must(*cmd: str) -> str:
    res = run(*cmd)
    assert res.returncode == 0, f"{cmd} failed ({res.returncode}): {res.stdout} {res.stderr}"
    return res.stdout


def is_mounted(path: Path) -> bool:
    """From the mount table: os.path.ismount is False for a dead FUSE mount (ENOTCONN)."""
    want = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].replace("\\040", " ") == want for line in f if line.strip())


def mounts_under(path: Path) -> list[str]:
    root = os.path.realpath(path) + "/"
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(root)]


def _attached(disk: Path) -> bool:
    return bool(run("losetup", "-j", str(disk)).stdout.strip())


def _detach(loop: str, disk: Path) -> None:
    """losetup -d, retried while busy; then wait: the detach (final flush) is asynchronous
    and the FUSE file stays busy until it is done."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        res = run("losetup", "-d", loop)
        if res.returncode == 0 or "No such device" in res.stderr or not _attached(disk):
            break
        time.sleep(0.2)
    with suppress(TimeoutError):
        wait_for(lambda: not _attached(disk), 60, f"{loop} to detach from {disk}")


@contextmanager
def nbd_loop(replica: Replica, work: Path, readonly: bool = False) -> Iterator[str]:
    """nbdfuse on the replica's NBD socket, a loop device on its file; torn down after."""
    fuse_dir = work / f"fuse-{replica.name}"
    fuse_dir.mkdir()
    disk, pidfile = fuse_dir / "disk", work / f"nbdfuse-{replica.name}.pid"
    cmd = ["nbdfuse", "-P", str(pidfile), *(["-r"] if readonly else []), str(disk)]
    log = work / f"nbdfuse-{replica.name}.log"
    with open(log, "w") as err:  # a file: an unread pipe could block nbdfuse
        fuse = subprocess.Popen([*cmd, "--unix", replica.sock], stdout=err, stderr=err)
    loop = ""
    try:
        wait_for(lambda: pidfile.exists() or fuse.poll() is not None, 20, "nbdfuse")
        assert fuse.poll() is None, f"nbdfuse exited: {log.read_text()}"
        ro = ["-r"] if readonly else []
        loop = must("losetup", "-f", "--show", "--direct-io=on", *ro, str(disk)).strip()
        yield loop
    finally:
        if loop:
            _detach(loop, disk)
        # Also when nbdfuse already exited: its mount stays behind, dead (ENOTCONN).
        for _ in range(50):
            if not is_mounted(fuse_dir) or run("fusermount3", "-u", str(fuse_dir)).returncode == 0:
                break
            time.sleep(0.2)
        else:
            run("fusermount3", "-u", "-z", str(fuse_dir))
        if fuse.poll() is None:
            fuse.send_signal(signal.SIGTERM)
        try:
            fuse.wait(timeout=20)
        except subprocess.TimeoutExpired:
            fuse.kill()
            fuse.wait()


@contextmanager
def mounted(loop: str, where: Path, *options: str) -> Iterator[Path]:
    where.mkdir(exist_ok=True)
    must("mount", *(["-o", ",".join(options)] if options else []), loop, str(where))
    try:
        yield where
    finally:
        if is_mounted(where) and run("umount", str(where)).returncode != 0:
            run("umount", "-l", str(where))


def write_files(root: Path, rnd: random.Random) -> dict[str, str]:
    """Small files, a few medium ones and one spanning many blocks (~5 MiB in all)."""
    sizes = [rnd.randint(1, 12 * KiB) for _ in range(16)]
    sizes += [256 * KiB + rnd.randint(0, 4095) for _ in range(3)]
    sizes.append(4 * MiB + 123)
    (root / "d" / "e").mkdir(parents=True)
    digests = {}
    for i, size in enumerate(sizes):
        rel = f"d/e/f{i}.bin" if i % 3 == 0 else f"f{i}.bin"
        blob = rnd.randbytes(size)
        (root / rel).write_bytes(blob)
        digests[rel] = hashlib.sha256(blob).hexdigest()
    return digests


def read_digests(root: Path, names: dict[str, str]) -> dict[str, str]:
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in names}


def fsck(loop: str) -> subprocess.CompletedProcess[str]:
    return run("e2fsck", "-f", "-n", loop)


@contextmanager
def fs_with_files(a: Replica, work: Path, rnd: random.Random) -> Iterator[dict[str, str]]:
    """On A: mkfs + files + sync; the digests, with the filesystem still mounted."""
    with nbd_loop(a, work) as loop:
        must("mkfs.ext4", "-q", "-F", loop)
        with mounted(loop, work / "fs-a") as fs:
            digests = write_files(fs, rnd)
            must("sync")
            yield digests


def test_clean_switchover_same_checksums(tmp_path: Path) -> None:
    rnd = random.Random(os.getpid())
    with shm_dir() as shm, replica_pair(shm, "64M") as (_net, a, b, _secret):
        assert a.status()["protocol"] == "C"
        with fs_with_files(a, tmp_path, rnd) as digests:
            pass  # leaving: umount, losetup -d, nbdfuse gone
        assert a.control("demote")["ok"]
        answer = b.control("promote")
        assert answer["ok"], answer
        assert answer["status"]["role"] == "Primary" and answer["status"]["disk"] == "UpToDate"
        with nbd_loop(b, tmp_path, readonly=True) as loop:
            check = fsck(loop)
            assert check.returncode == 0, f"e2fsck -fn on B: {check.stdout} {check.stderr}"
            with mounted(loop, tmp_path / "fs-b", "ro") as fs:
                assert read_digests(fs, digests) == digests
        print(f"{len(digests)} files: checksums equal on B")
    assert not mounts_under(tmp_path)


def test_primary_power_loss_after_sync_same_checksums(tmp_path: Path) -> None:
    rnd = random.Random(os.getpid() + 1)
    # A's stack stays up until the end: its umount/detach then meet a server that is gone.
    with (
        shm_dir() as shm,
        replica_pair(shm, "64M") as (net, a, b, _secret),
        fs_with_files(a, tmp_path, rnd) as digests,
    ):
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL)  # sync returned a moment ago
        net.link(0, False)
        a.proc.wait()
        wait_for(lambda: b.status()["connection"] != "Connected", 15, "B notices the loss")
        answer = b.control("promote")
        assert answer["ok"], answer
        assert answer["status"]["role"] == "Primary"
        with nbd_loop(b, tmp_path) as loop:
            # A died with the journal live: a read-only check may complain until the
            # journal is replayed, which the mount does.
            before = fsck(loop)
            print(f"e2fsck -fn before journal replay: rc {before.returncode}")
            with mounted(loop, tmp_path / "fs-b") as fs:
                assert read_digests(fs, digests) == digests
            after = fsck(loop)
            assert after.returncode == 0, f"e2fsck -fn after replay: {after.stdout}"
    assert not mounts_under(tmp_path), "A's stack was not torn down"
