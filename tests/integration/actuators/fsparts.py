"""Real parts for the filesystem actuator's tests: image files on loop devices, a local
`blockrepl serve` exporting a volume over NBD, and clean-up that runs however a test ends.

Every loop device, mount and process made here is recorded and undone in `finally`:
mounts under the test's directory (lazily if need be), the loop devices this test
attached (matched by backing file), the processes it started (by pid).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nodeagent.actuators import ActuatorContext
from nodeagent.actuators.attach import (
    RECORDS,
    Attachment,
    detach_recorded,
    loop_diskseq,
    still_attached,
)
from nodeagent.actuators.filesystem import FilesystemActuator
from nodeagent.actuators.volume_paths import nbd_socket
from tests.integration.actuators.specs import create, limits

TOOLS = ("losetup", "mkfs.ext4", "e2fsck", "debugfs", "mount", "umount", "nbdfuse", "fusermount3")
BLOCKREPL = Path(sys.executable).with_name("blockrepl")


def require_parts() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounts and loop devices need root")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing or not os.path.exists("/dev/fuse"):
        pytest.skip(f"needs {', '.join(missing) or '/dev/fuse'}")


def run(*argv: str, check: bool = True) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{argv} failed ({res.returncode}): {res.stdout} {res.stderr}")
    return res.stdout


def mounts_under(path: Path) -> list[str]:
    root = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f if line.strip()]
    return [p for p in points if p.startswith(root)]


def loop_is_attached(loop: str) -> bool:
    # Not `losetup -O NAME LOOP`: it prints the name of a free loop too.
    return loop_diskseq(loop) is not None


def wait_until(cond: object, limit: float = 10.0, what: str = "condition") -> None:
    assert callable(cond)
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, f"{what} not met within {limit}s"
        time.sleep(0.05)


@dataclass
class Parts:
    """What a test made outside the actuator, undone by `cleanup` however it ends."""

    root: Path
    pids: list[int] = field(default_factory=list)
    loops: list[Attachment] = field(default_factory=list)
    shared: bool = False

    def share(self) -> None:
        """Make root a shared mount, so that an umount under it propagates into the
        mount namespaces other processes make meanwhile. This machine's / is private:
        every `ip netns exec` (a slave copy of the tree) that another test on the machine
        runs while a filesystem is mounted here would otherwise keep that filesystem
        mounted, and the actuator would rightly refuse to call it stopped."""
        run("mount", "--bind", str(self.root), str(self.root))
        run("mount", "--make-rshared", str(self.root))
        self.shared = True

    def attach(self, img: Path) -> str:
        loop = run("losetup", "-f", "--show", str(img)).strip()
        seq = loop_diskseq(loop)
        assert seq is not None
        self.loops.append(Attachment("", "", "", 0, 0, loop, seq))
        return loop

    def cleanup(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        for point in sorted(mounts_under(self.root), key=len, reverse=True):
            run("umount", point, check=False)
            if point in mounts_under(self.root):
                run("umount", "-l", point, check=False)
        for point in sorted(mounts_under(self.root), key=len, reverse=True):  # dead FUSE
            run("fusermount3", "-u", "-z", point, check=False)
            run("umount", "-l", point, check=False)
        # The actuator's own attachments, from its lib_dir records, matched by diskseq.
        errors = detach_recorded(self.root / "lib" / RECORDS)
        for attachment in self.loops:
            if still_attached(attachment):
                run("losetup", "-d", attachment.loop, check=False)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not any(still_attached(a) for a in self.loops), 20, "detach")
        if self.shared:
            run("umount", "-l", str(self.root), check=False)
        assert not errors, errors


def image(path: Path, size: str = "48M", mkfs: bool = True) -> Path:
    run("truncate", "-s", size, str(path))
    if mkfs:
        run("mkfs.ext4", "-q", "-F", str(path))
    return path


def context(root: Path, resource: str = "grp/fs", stop: float = 8.0) -> ActuatorContext:
    return ActuatorContext(
        resource=resource,
        run_dir=root / "run",
        lib_dir=root / "lib",
        timeouts=limits(start=30, stop=stop, monitor=5),
    )


def make(
    ctx: ActuatorContext, device: str, mount_point: Path, **extra: object
) -> FilesystemActuator:
    spec = {"device": device, "mountPoint": str(mount_point), **extra}
    actuator = create({"filesystem": spec}, ctx)
    assert isinstance(actuator, FilesystemActuator)
    return actuator


@contextlib.contextmanager
def served_volume(
    root: Path, run_dir: Path, name: str = "vol1", create: bool = True
) -> Iterator[Path]:
    """`blockrepl serve` in non-replicated mode on the NBD socket the filesystem actuator
    looks for; yields the socket. Stopped (SIGTERM, then SIGKILL) at the end."""
    backing = root / f"{name}.img"
    if create:
        run(str(BLOCKREPL), "create-md", "--backing", str(backing), "--size", "64M")
    sock = nbd_socket(run_dir, name)
    sock.parent.mkdir(parents=True, exist_ok=True)
    log = (root / f"{name}.serve.log").open("wb")
    proc = subprocess.Popen(
        [str(BLOCKREPL), "serve", "--backing", str(backing), "--unix", str(sock), "--force"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: sock.exists() or proc.poll() is not None, 20, "blockrepl serve")
        assert proc.poll() is None, (root / f"{name}.serve.log").read_text()
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def mkfs_volume(root: Path, sock: Path, parts: Parts | None = None) -> None:
    """A new volume is blank: attach it once by hand (nbdfuse, no loop) for mkfs, as an
    operator makes the filesystem on a new volume."""
    fuse = root / "mkfs-fuse"
    fuse.mkdir()
    nbd = subprocess.Popen(["nbdfuse", str(fuse / "disk"), "--unix", str(sock)])
    if parts is not None:
        parts.pids.append(nbd.pid)
    try:
        deadline = time.monotonic() + 20
        while not (fuse / "disk").exists():
            assert time.monotonic() < deadline and nbd.poll() is None, "nbdfuse did not serve"
            time.sleep(0.05)
        run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", str(fuse / "disk"))
    finally:
        run("fusermount3", "-u", str(fuse), check=False)
        nbd.wait(timeout=10)
