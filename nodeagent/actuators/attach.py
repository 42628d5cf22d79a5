"""A volume's NBD export as a block device: nbdfuse (a FUSE file) plus a loop device.

This machine class has no nbd kernel module, so the Primary's NBD socket is attached as
tests/integration/blockrepl/test_ext4_failover.py does: `nbdfuse DIR/disk --unix SOCK`
exposes the export as a file, `losetup --direct-io=on` makes it a block device (direct
I/O so the loop adds no second page cache in front of the replicated one).

Pitfalls handled here: `losetup -d` is asynchronous (the loop's final flush runs after
it returns, and the FUSE file stays busy until then), so detach waits until the loop
no longer has this backing file; a dead nbdfuse leaves its FUSE mount behind (ENOTCONN)
that `fusermount3 -u` may need retries, and at the end a lazy unmount, to remove.

An attachment is recorded twice: under the run directory (tmpfs) so that a restarted
agent adopts it, and under the lib directory (disk) so that the lab can detach the loop
devices of a node that lost power (`detach_recorded`): loop devices are global, they
outlive the node's namespaces, still bound to a FUSE file whose daemon is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nodeagent.actuators.commands import run_command
from nodeagent.actuators.procinfo import is_same_live_process, read_proc_stat

POLL = 0.1
RECORDS = "filesystems"


@dataclass(frozen=True)
class Attachment:
    """What one start attached; enough for any later agent (or the lab) to undo it."""

    volume: str
    socket: str
    fuse_dir: str
    nbdfuse_pid: int
    nbdfuse_start: int
    loop: str = ""
    diskseq: int = 0  # of the loop at attach: see loop_diskseq

    @property
    def file(self) -> Path:
        return Path(self.fuse_dir) / "disk"

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> Attachment:
        data = json.loads(text)
        return cls(
            volume=str(data["volume"]),
            socket=str(data["socket"]),
            fuse_dir=str(data["fuse_dir"]),
            nbdfuse_pid=int(data["nbdfuse_pid"]),
            nbdfuse_start=int(data["nbdfuse_start"]),
            loop=str(data["loop"]),
            diskseq=int(data["diskseq"]),
        )

    def nbdfuse_alive(self) -> bool:
        return is_same_live_process(self.nbdfuse_pid, self.nbdfuse_start)


def record_paths(instance: str, run_dir: Path, lib_dir: Path) -> tuple[Path, Path]:
    return run_dir / RECORDS / f"{instance}.json", lib_dir / RECORDS / f"{instance}.json"


def write_record(attachment: Attachment, *paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(attachment.dumps())
        tmp.replace(path)


def read_record(path: Path) -> Attachment | None:
    try:
        return Attachment.loads(path.read_text())
    except FileNotFoundError:
        return None


SYS_BLOCK = Path("/sys/block")


def _sys_loop(loop: str) -> Path:
    return SYS_BLOCK / Path(loop).name


def loop_diskseq(loop: str) -> int | None:
    """The loop device's disk sequence number, None when it is free. The kernel raises it
    at every attach and never reuses one within a boot, so (loop, diskseq) names one
    attachment; its backing file cannot: the kernel stats it for LOOP_GET_STATUS64 and
    `losetup -l`, which fails (ENOTCONN) once nbdfuse is gone, exactly when a detach is
    needed."""
    sys_dir = _sys_loop(loop)
    try:
        if not (sys_dir / "loop" / "backing_file").exists():
            return None
        return int((sys_dir / "diskseq").read_text())
    except (FileNotFoundError, ValueError):
        return None


def attachment_state(attachment: Attachment) -> str:
    """ "attached", "detaching" or "gone". The kernel raises a loop's diskseq once more when
    a detach begins, before the final flush that keeps the backing file busy, so
    diskseq + 1 with a backing file still there is our attachment on its way out; any
    other number is a later attachment of the same loop, not ours."""
    if not attachment.loop:
        return "gone"
    seq = loop_diskseq(attachment.loop)
    if seq == attachment.diskseq:
        return "attached"
    return "detaching" if seq == attachment.diskseq + 1 else "gone"


def still_attached(attachment: Attachment) -> bool:
    return attachment_state(attachment) != "gone"


def is_mount_point(path: str) -> bool:
    """From the mount table: os.path.ismount is False for a dead FUSE mount (ENOTCONN)."""
    want = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].replace("\\040", " ") == want for line in f if line.strip())


def _exists(path: Path) -> bool:
    # Local paths on tmpfs (a socket, a pid file): a stat that cannot block.
    return path.exists()


class AttachError(RuntimeError):
    """What failed while attaching or detaching, with the command's output."""


async def start_nbdfuse(volume: str, socket: Path, fuse_dir: Path, log: Path) -> Attachment:
    """nbdfuse in its own session, the agent's child; returns once its file is served."""
    if not _exists(socket):
        raise AttachError(f"no NBD export at {socket}: volume {volume} is not Primary here")
    await unmount_fuse(fuse_dir, time.monotonic() + 5)  # a dead one from before
    os.makedirs(fuse_dir, exist_ok=True)
    pid_file = fuse_dir.with_suffix(".pid")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pid_file)
    argv = ["nbdfuse", "-P", str(pid_file), str(fuse_dir / "disk"), "--unix", str(socket)]
    with log.open("ab") as out:  # a file: an unread pipe could block nbdfuse
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    while not _exists(pid_file):
        if proc.returncode is not None:
            raise AttachError(f"nbdfuse exited with code {proc.returncode}; log: {log}")
        await asyncio.sleep(POLL)
    stat = read_proc_stat(proc.pid)
    return Attachment(volume, str(socket), str(fuse_dir), proc.pid, stat.starttime if stat else -1)


async def attach_loop(attachment: Attachment) -> Attachment:
    file = attachment.file
    result = await run_command(["losetup", "-f", "--show", "--direct-io=on", str(file)])
    if result.returncode != 0:
        raise AttachError(f"losetup -f {file} failed: {result.tail()}")
    loop = result.output.strip()
    diskseq = loop_diskseq(loop)
    if diskseq is None:
        raise AttachError(f"{loop} from losetup -f {file} is not attached right after")
    return dataclasses.replace(attachment, loop=loop, diskseq=diskseq)


async def detach_loop(attachment: Attachment, deadline: float) -> None:
    """losetup -d, retried while busy, then wait for the asynchronous detach to end."""
    if not attachment.loop:
        return
    last = ""
    while True:
        state = attachment_state(attachment)
        if state == "gone":
            return
        if state == "attached":
            result = await run_command(["losetup", "-d", attachment.loop])
            last = result.tail()
        if time.monotonic() >= deadline:
            raise AttachError(
                f"{attachment.loop} still attached to {attachment.file} "
                f"(losetup -d: {last or 'accepted, detach pending'})"
            )
        await asyncio.sleep(POLL)


async def unmount_fuse(fuse_dir: Path, deadline: float) -> None:
    """fusermount3 -u until the mount is gone; lazily at the deadline (a dead FUSE mount
    can refuse for a while)."""
    while is_mount_point(str(fuse_dir)):
        result = await run_command(["fusermount3", "-u", str(fuse_dir)])
        if result.returncode == 0:
            return
        if time.monotonic() >= deadline:
            await run_command(["fusermount3", "-u", "-z", str(fuse_dir)])
            return
        await asyncio.sleep(POLL * 2)


async def stop_nbdfuse(attachment: Attachment) -> None:
    """nbdfuse ends by itself once unmounted; SIGTERM, then SIGKILL, if it does not."""
    pid = attachment.nbdfuse_pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not attachment.nbdfuse_alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        # Two seconds each, also past the deadline: a live nbdfuse left behind would keep
        # its FUSE file and the replica's socket busy.
        grace = time.monotonic() + 2
        while time.monotonic() < grace:
            if not attachment.nbdfuse_alive():
                return
            await asyncio.sleep(POLL)


async def detach(attachment: Attachment, deadline: float) -> None:
    """Undo an attachment in order: loop (waited for), FUSE mount, nbdfuse."""
    await detach_loop(attachment, deadline)
    await unmount_fuse(Path(attachment.fuse_dir), deadline)
    await stop_nbdfuse(attachment)


def _detach_one_now(attachment: Attachment, timeout: float) -> bool:
    """losetup -d until the loop no longer has this backing file; False at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        state = attachment_state(attachment)
        if state == "gone":
            return True
        if time.monotonic() >= deadline:
            return False
        if state == "attached":
            subprocess.run(["losetup", "-d", attachment.loop], capture_output=True, check=False)
        time.sleep(POLL)


def detach_recorded(records_dir: Path, timeout: float = 20.0) -> list[str]:
    """After a node's power loss (its processes and mount namespace gone): detach the loop
    devices its filesystem actuator recorded in records_dir, each only if still bound to
    the recorded backing file (a loop name is reused once free); drop the records.
    Blocking; returns the errors."""
    errors: list[str] = []
    for path in sorted(records_dir.glob("*.json")):
        try:
            attachment = Attachment.loads(path.read_text())
        except (OSError, ValueError, KeyError) as exc:
            errors.append(f"{path}: unreadable attachment record ({exc}); remove it")
            continue
        if _detach_one_now(attachment, timeout):
            path.unlink(missing_ok=True)
        else:
            errors.append(
                f"{attachment.loop} (recorded in {path}) is still attached to "
                f"{attachment.file} after {timeout:g}s; detach it with losetup -d "
                f"{attachment.loop}"
            )
    return errors
