"""`filesystem:` resources: a filesystem mounted on this node, as the OCF Filesystem agent.

Three kinds of device:
- a block device path (/dev/sdb1, /dev/loop3, a /dev/disk/by-* link): mounted as it is. A
  regular image file is refused: mount would attach a loop device of its own that no
  stop could name;
- `volume:<name>`: the Primary replica on this node serves its NBD export on a unix
  socket (volume_paths.nbd_socket); attach.py makes it a block device with nbdfuse and
  a loop device, recorded so that a restarted agent, or the lab after a power loss,
  can undo it;
- a network source (host:/export, //host/share) for nfs, nfs4, glusterfs, cifs: no
  attach, no fsck.

Start: attach, fsck as the resource's policy says (fsck.py), mkdir -p, mount -t. Observe
reads /proc/self/mountinfo: Running when the mount point holds *this* device (by device
number, or by source for a network mount). Stop: umount; while busy, the processes that
hold the mount (holders.py) get SIGTERM, then SIGKILL, and umount is tried again, all
within timeouts.stop; then detach. A mount still held at the deadline is an error that
names its holders: the reconciler reports StopFailed, and with fencing on the node is
fenced.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import stat
import time
from pathlib import Path

from controller.api.group import (
    NETWORK_FS_TYPES,
    VOLUME_DEVICE_PREFIX,
    FilesystemResource,
    Resource,
    is_network_device,
)
from nodeagent.actuators import attach
from nodeagent.actuators.attach import AttachError, Attachment
from nodeagent.actuators.base import (
    Actuator,
    ActuatorContext,
    ActuatorError,
    instance_name,
    register,
)
from nodeagent.actuators.commands import run_command
from nodeagent.actuators.fsck import fsck_failure, needs_superblock, parse_dumpe2fs, plan_fsck
from nodeagent.actuators.holders import Holder, describe_all, find_holders, namespaces_mounting
from nodeagent.actuators.mountinfo import (
    Mount,
    mount_argv,
    mount_at,
    mounts_of_device,
    normal_path,
    read_mountinfo,
    same_network_source,
    umount_argv,
)
from nodeagent.actuators.procinfo import read_proc_stat
from nodeagent.actuators.volume_paths import nbd_socket
from nodeagent.observation import Observation

POLL = 0.1
# Share of timeouts.stop for freeing and unmounting; the rest is for the detach and the
# observation that checks the stop.
UNMOUNT_SHARE = 0.6
DETACH_SHARE = 0.9
# How long holders get between SIGTERM and SIGKILL, at most (less for a short timeout).
TERM_GRACE = 5.0


def _same_family(mounted: str, wanted: str) -> bool:
    """`mount -t nfs` may come up as nfs4: one family."""
    nfs = ("nfs", "nfs4")
    return mounted == wanted or (mounted in nfs and wanted in nfs)


def _alive(pid: int) -> bool:
    found = read_proc_stat(pid)
    return found is not None and found.alive


def _canonical(path: str) -> str:
    """The mount point as mountinfo spells it: symlinks in its parent resolved. Not the
    mount point itself: a stat on the root of a hung NFS mount would hang."""
    if path == "/":
        return path
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name)


def _free(device: str) -> bool:
    """Whether nothing holds the block device exclusively (a mount, anywhere, does)."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return False
        raise
    os.close(fd)
    return True


def _rdev(path: str) -> tuple[int, int] | None:
    """major:minor of a block device node; None if missing or not a block device."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    return (os.major(st.st_rdev), os.minor(st.st_rdev))


class FilesystemActuator(Actuator):
    def __init__(self, spec: FilesystemResource, ctx: ActuatorContext) -> None:
        super().__init__(ctx)
        self.spec = spec
        self.device = spec.device
        self.mount_point = _canonical(normal_path(spec.mount_point))
        self.instance = instance_name(ctx.resource)
        if spec.device.startswith(VOLUME_DEVICE_PREFIX):
            self.volume: str | None = spec.device[len(VOLUME_DEVICE_PREFIX) :]
        else:
            self.volume = None
        self.network = is_network_device(spec.device) and spec.fs_type in NETWORK_FS_TYPES
        self.state_dir = ctx.run_dir / attach.RECORDS
        self.record_file, self.lib_record = attach.record_paths(
            self.instance, ctx.run_dir, ctx.lib_dir
        )
        self._busy_elsewhere: str | None = None  # see _check_released
        # Processes never signalled: this agent itself, its parent and the namespace's init.
        self.spare = {os.getpid(), os.getppid(), 1}

    @property
    def where(self) -> str:
        try:
            record = self._record()
        except ActuatorError:  # where is part of that very error's message
            record = None
        via = f" via {record.loop}" if record and record.loop else ""
        return f"{self.device}{via} on {self.mount_point}"

    # -- records --------------------------------------------------------------------------

    def _record(self) -> Attachment | None:
        try:
            return attach.read_record(self.record_file)
        except (ValueError, KeyError) as exc:
            raise self.error(
                f"attachment record {self.record_file} is corrupt ({exc})",
                "detach the loop device and nbdfuse by hand (losetup -d, fusermount3 -u), "
                "then delete the record",
            ) from None

    def _save(self, attachment: Attachment) -> None:
        attach.write_record(attachment, self.record_file, self.lib_record)

    def _forget(self) -> None:
        self.record_file.unlink(missing_ok=True)
        self.lib_record.unlink(missing_ok=True)

    # -- observe --------------------------------------------------------------------------

    def _device_dev(self, record: Attachment | None) -> tuple[int, int] | None:
        """The device number this resource's filesystem is mounted from, if known."""
        if self.volume is not None:
            return _rdev(record.loop) if record and record.loop else None
        return None if self.network else _rdev(self.device)

    def _ours(self, mount: Mount, record: Attachment | None) -> bool:
        if self.network:
            return _same_family(mount.fs_type, self.spec.fs_type) and same_network_source(
                mount.source, self.device
            )
        return self._device_dev(record) == mount.dev

    async def _observe(self) -> Observation:
        mount = mount_at(read_mountinfo(), self.mount_point)
        record = self._record()
        if mount is None:
            if self._busy_elsewhere is not None and not _free(self._busy_elsewhere):
                return Observation.failed(
                    f"unmounted on {self.mount_point}, but {self._busy_elsewhere} is still "
                    "in use elsewhere (another mount namespace?); stop checks again"
                )
            if record is not None:
                return Observation.failed(
                    f"nothing is mounted on {self.mount_point}, but {record.loop or 'nbdfuse'} "
                    f"from an earlier start is still attached (record {self.record_file}); "
                    "stop detaches it"
                )
            return Observation.stopped(f"nothing is mounted on {self.mount_point}")
        if not self._ours(mount, record):
            # Not failed: that would make the reconciler stop it, and a stop leaves what is
            # not ours alone, so the stop would "fail" and fence the node. Ours is simply
            # not mounted; start says what is in the way.
            return Observation.stopped(
                f"{self.mount_point} holds {mount.source} ({mount.fs_type}), not {self.device}"
            )
        if record is not None and not record.nbdfuse_alive():
            return Observation.failed(
                f"nbdfuse (pid {record.nbdfuse_pid}) serving {record.loop} has died: I/O on "
                f"{self.mount_point} fails; its log: {self._log()}; stop unmounts and detaches"
            )
        via = f" via {record.loop}" if record else ""
        return Observation.running(
            f"{mount.source}{via} ({mount.fs_type}) is mounted on {self.mount_point}"
        )

    # -- start ----------------------------------------------------------------------------

    def _log(self) -> Path:
        return self.state_dir / f"{self.instance}.log"

    def _deadline(self, which: str, share: float) -> float:
        limit: float = getattr(self.ctx.timeouts, which).total_seconds()
        return time.monotonic() + limit * share

    async def _start(self) -> None:
        mount = mount_at(read_mountinfo(), self.mount_point)
        if mount is not None:
            raise self.error(
                f"{self.mount_point} already holds {mount.source} ({mount.fs_type})",
                "unmount it by hand, or choose another mountPoint",
            )
        attachment: Attachment | None = None
        if self.volume is not None:
            attachment = await self._attach()
            source = attachment.loop
        elif self.network:
            source = self.device
        else:
            source = self._block_device()
        try:
            if not self.network:
                await self._fsck(source)
            os.makedirs(self.mount_point, exist_ok=True)
            argv = mount_argv(source, self.mount_point, self.spec.fs_type, self.spec.options)
            result = await run_command(argv)
            if result.returncode != 0:
                raise self.error(
                    f"{' '.join(argv)} failed with code {result.returncode}: {result.tail()}",
                    "check fsType and options, and that the filesystem exists on the device",
                )
        except BaseException:
            if attachment is not None:
                # A failed start leaves nothing attached: the next try starts afresh.
                with contextlib.suppress(AttachError, OSError):
                    await attach.detach(attachment, time.monotonic() + 10)
                self._forget()
            raise

    def _block_device(self) -> str:
        try:
            mode = os.stat(self.device).st_mode
        except FileNotFoundError:
            raise self.error(
                f"device {self.device} does not exist on this node",
                "check the device path, or that the disk is attached to this node",
            ) from None
        if not stat.S_ISBLK(mode):
            raise self.error(
                f"{self.device} is not a block device",
                "give a block device: attach an image file with losetup -f --show and name "
                "the loop device, or use volume:<name> for a replicated volume",
            )
        return self.device

    async def _attach(self) -> Attachment:
        assert self.volume is not None
        leftover = self._record()
        if leftover is not None:  # from a start that could not clean up after itself
            await self._detach(leftover, self._deadline("start", 0.3))
        socket = nbd_socket(self.ctx.run_dir, self.volume)
        fuse_dir = self.state_dir / self.instance
        try:
            attachment = await attach.start_nbdfuse(self.volume, socket, fuse_dir, self._log())
            self._save(attachment)  # first: a crash before losetup leaves nbdfuse recorded
            attachment = await attach.attach_loop(attachment)
            self._save(attachment)
        except AttachError as exc:
            raise self.error(
                f"attaching volume {self.volume} failed: {exc}",
                "the volume resource must come before this filesystem in the group and be "
                f"Primary here; nbdfuse's log: {self._log()}",
            ) from None
        return attachment

    async def _fsck(self, device: str) -> None:
        superblock, error = None, None
        if needs_superblock(self.spec.fsck, self.spec.fs_type):
            read = await run_command(["dumpe2fs", "-h", device])
            try:
                superblock = parse_dumpe2fs(read.output)
            except ValueError:
                error = read.tail(200)
        step = plan_fsck(self.spec.fsck, self.spec.fs_type, device, superblock, error)
        if step is None:
            return
        result = await run_command(step.argv)
        failure = fsck_failure(result.returncode)
        if failure is not None:
            raise self.error(
                f"{' '.join(step.argv)} (run because {step.why}) found {failure}; "
                f"not mounted. Its output: {result.tail()}",
                f"repair the filesystem by hand (e2fsck -f {device} or fsck) while the group "
                "is stopped, or set fsck: never to mount it as it is",
            )

    # -- stop -----------------------------------------------------------------------------

    async def _stop(self) -> None:
        record = self._record()
        mount = mount_at(read_mountinfo(), self.mount_point)
        if mount is not None and self._ours(mount, record):
            await self._unmount(mount, self._deadline("stop", UNMOUNT_SHARE))
            dev = self._device_dev(record)
            others = mounts_of_device(read_mountinfo(), dev) if dev and not self.network else []
            if others:
                # A bind mount keeps the filesystem live: the device must not be given to
                # another node while this one can still write to it.
                raise self.error(
                    "unmounted, but the filesystem is still mounted at "
                    + ", ".join(m.mount_point for m in others),
                    "unmount those (a bind mount of it, or a second mount) by hand",
                )
            path = record.loop if record and record.loop else self.device
            if dev and not self.network:
                await self._check_released(path, self._deadline("stop", UNMOUNT_SHARE))
        if record is not None:
            await self._detach(record, self._deadline("stop", DETACH_SHARE))

    async def _check_released(self, device: str, deadline: float) -> None:
        """After umount, the device must be free: an exclusive open fails (EBUSY) while
        the filesystem is mounted anywhere, also in a mount namespace this agent cannot
        see (a container, a lab node booted while it was mounted), which mountinfo does
        not show. Remembered: observe() reports it failed until the device is free, so
        the failed stop is not forgotten at the next turn."""
        while True:
            if _free(device):
                self._busy_elsewhere = None
                return
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL)
        self._busy_elsewhere = device
        dev = _rdev(device)
        others = await asyncio.to_thread(namespaces_mounting, dev) if dev else []
        where = (
            f"still mounted in the mount namespace of {describe_all(others)}"
            if others
            else "held by another user of the device"
        )
        raise self.error(
            f"unmounted here, but {device} is still in use (an exclusive open fails): {where}",
            "unmount it there (nsenter -m -t PID umount ...), or end that namespace's "
            "processes; lsblk and /proc/*/mountinfo show other users",
        )

    async def _detach(self, record: Attachment, deadline: float) -> None:
        try:
            await attach.detach(record, deadline)
        except AttachError as exc:
            raise self.error(
                f"detaching volume {self.volume} failed: {exc}",
                "something else holds the loop device (a second mount, a process that "
                f"opened it); find it with fuser -v {record.loop}",
            ) from None
        self._forget()

    async def _unmount(self, mount: Mount, deadline: float) -> None:
        """umount; while it fails, TERM then KILL the holders and try again."""
        signalled: dict[int, float] = {}  # pid -> when it got SIGTERM
        stop_limit = self.ctx.timeouts.stop.total_seconds()
        grace = min(TERM_GRACE, stop_limit * 0.2)
        while True:
            result = await run_command(umount_argv(self.mount_point))
            if result.returncode == 0 or mount_at(read_mountinfo(), self.mount_point) != mount:
                return
            holders = await asyncio.to_thread(find_holders, mount.mount_id, mount.dev)
            if time.monotonic() >= deadline:
                raise self._still_busy(result.tail(), holders)
            now = time.monotonic()
            for holder in holders:
                if holder.pid in self.spare:
                    continue
                first = signalled.get(holder.pid)
                if first is None:
                    signalled[holder.pid] = now
                    self._signal(holder.pid, signal.SIGTERM)
                elif now - first >= grace:
                    self._signal(holder.pid, signal.SIGKILL)
            await asyncio.sleep(POLL if not holders else POLL * 2)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _still_busy(self, umount_said: str, holders: list[Holder]) -> Exception:
        spared = [h for h in holders if h.pid in self.spare]
        killed = [h for h in holders if h.pid not in self.spare]
        below = [
            m.mount_point
            for m in read_mountinfo()
            if m.mount_point.startswith(self.mount_point.rstrip("/") + "/")
        ]
        parts = [f"umount {self.mount_point} still fails: {umount_said}"]
        if spared:
            parts.append(f"held by processes Vigil does not kill: {describe_all(spared)}")
        if killed:
            alive = [h for h in killed if _alive(h.pid)]
            parts.append(f"held by processes that survived SIGKILL: {describe_all(alive)}")
        if below:
            parts.append(f"mounts below it: {', '.join(below)}")
        if not holders and not below:
            parts.append("no process holds it (a kernel user: NFS export, swap file, loop?)")
        return self.error(
            "; ".join(parts),
            "free the mount point by hand (fuser -vm, umount what is mounted below it); "
            "then ha cleanup the group",
        )


@register("filesystem")
def make_filesystem(resource: Resource, ctx: ActuatorContext) -> Actuator:
    assert resource.filesystem is not None
    return FilesystemActuator(resource.filesystem, ctx)
