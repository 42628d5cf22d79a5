"""The filesystem actuator with real parts: ext4 on loop devices, real mounts, processes
that hold the mount, a corrupted filesystem, and a volume served by `blockrepl serve`
through real nbdfuse and a loop device."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.actuators import ActuatorError, State
from nodeagent.actuators.attach import Attachment
from nodeagent.actuators.mountinfo import mount_at, read_mountinfo
from tests.integration.actuators.fsparts import (
    Parts,
    context,
    image,
    loop_is_attached,
    make,
    mkfs_volume,
    mounts_under,
    require_parts,
    run,
    served_volume,
)

pytestmark = pytest.mark.slow

IGNORE_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(120)"
)
HOLD_OPEN = (
    "import sys, time; f = open(sys.argv[1], 'a'); print('ready', flush=True); time.sleep(120)"
)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    require_parts()
    yield tmp_path


@pytest.fixture
def parts(root: Path) -> Iterator[Parts]:
    """Processes and loop devices a test made, and every mount under root, undone at the
    end whatever happens."""
    made = Parts(root)
    made.share()
    try:
        yield made
    finally:
        made.cleanup()


def mounted(point: Path) -> bool:
    return mount_at(read_mountinfo(), str(point)) is not None


def holder(argv: list[str], parts: Parts, cwd: Path | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=cwd
    )
    parts.pids.append(proc.pid)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def test_block_device_start_observe_stop(root: Path, parts: Parts) -> None:
    loop = parts.attach(image(root / "disk.img"))
    mp = root / "mnt" / "data"  # created by start
    fs = make(context(root), loop, mp, options=["noatime"])
    assert (await fs.observe()).state is State.STOPPED
    await fs.start()
    seen = await fs.observe()
    assert seen.state is State.RUNNING and loop in seen.detail, seen
    found = mount_at(read_mountinfo(), str(mp))
    assert found is not None and "noatime" in found.options
    (mp / "hello").write_text("hello")
    await fs.start()  # no-op
    await fs.stop()
    assert not mounted(mp)
    assert (await fs.observe()).state is State.STOPPED
    await fs.stop()  # no-op
    await fs.start()
    assert (mp / "hello").read_text() == "hello"
    await fs.stop()


async def test_a_mount_point_through_a_symlink_is_recognised(root: Path, parts: Parts) -> None:
    # mountinfo spells the resolved path; a mismatch would mount it again on top.
    loop = parts.attach(image(root / "disk.img"))
    (root / "real").mkdir()
    (root / "link").symlink_to(root / "real")
    fs = make(context(root), loop, root / "link" / "m")
    await fs.start()
    assert (await fs.observe()).state is State.RUNNING
    await fs.start()  # no second mount on top
    assert len([m for m in read_mountinfo() if m.mount_point == str(root / "real" / "m")]) == 1
    await fs.stop()
    assert not mounts_under(root)


async def test_an_image_file_or_a_missing_device_is_refused(root: Path, parts: Parts) -> None:
    img = image(root / "disk.img")
    with pytest.raises(ActuatorError, match="is not a block device.*losetup -f --show"):
        await make(context(root), str(img), root / "m").start()
    with pytest.raises(ActuatorError, match="does not exist on this node"):
        await make(context(root), "/dev/no-such-disk", root / "m").start()
    assert not mounts_under(root)


async def test_stop_kills_the_holders_within_the_stop_timeout(root: Path, parts: Parts) -> None:
    loop = parts.attach(image(root / "disk.img"))
    mp = root / "m"
    fs = make(context(root, stop=8), loop, mp)
    await fs.start()
    (mp / "sub").mkdir()
    opener = holder([sys.executable, "-c", HOLD_OPEN, str(mp / "sub" / "log")], parts)
    # A process that ignores SIGTERM, sitting in a directory of the mount: SIGKILL ends it.
    inside = holder([sys.executable, "-c", IGNORE_TERM], parts, cwd=mp / "sub")
    began = time.monotonic()
    await fs.stop()
    took = time.monotonic() - began
    assert took < 8, took
    assert opener.wait(timeout=5) != 0 and inside.wait(timeout=5) == -9
    assert not mounted(mp)


async def test_a_holder_vigil_must_not_kill_fails_the_stop_naming_it(
    root: Path, parts: Parts
) -> None:
    loop = parts.attach(image(root / "disk.img"))
    mp = root / "m"
    fs = make(context(root, stop=3), loop, mp)
    await fs.start()
    # The agent's own process (here the test's) is never signalled.
    with (mp / "held").open("w"):
        began = time.monotonic()
        with pytest.raises(ActuatorError) as info:
            await fs.stop()
        assert time.monotonic() - began < 3.5
    message = str(info.value)
    assert f"processes Vigil does not kill: pid {os.getpid()}" in message, message
    assert "fd " in message and "held" in message and "fuser -vm" in message
    assert mounted(mp)
    await fs.stop()  # the file is closed: now it goes
    assert not mounted(mp)


async def test_a_bind_mount_elsewhere_fails_the_stop(root: Path, parts: Parts) -> None:
    loop = parts.attach(image(root / "disk.img"))
    mp, other = root / "m", root / "other"
    fs = make(context(root), loop, mp)
    await fs.start()
    other.mkdir()
    run("mount", "--bind", str(mp), str(other))
    with pytest.raises(ActuatorError, match=f"still mounted at {other}"):
        await fs.stop()
    run("umount", str(other))
    assert not mounted(mp)


async def test_a_mount_left_in_another_namespace_fails_the_stop_until_gone(
    root: Path, parts: Parts
) -> None:
    # A mount namespace made while it is mounted (a container, a lab node) keeps a copy of
    # the mount that this namespace's table does not show: umount here succeeds, but the
    # filesystem is still live on the device.
    loop = parts.attach(image(root / "disk.img"))
    mp = root / "m"
    fs = make(context(root, stop=3), loop, mp)
    await fs.start()
    other = holder(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "echo ready; exec sleep 120",
        ],
        parts,
    )
    with pytest.raises(ActuatorError, match=f"unmounted here, but {loop} is still in use") as info:
        await fs.stop()
    assert f"mount namespace of pid {other.pid} (sleep: mounted at {mp})" in str(info.value)
    assert not mounted(mp)
    seen = await fs.observe()
    assert seen.state is State.FAILED and "in use elsewhere" in seen.detail, seen
    with pytest.raises(ActuatorError, match="in use elsewhere"):
        await fs.stop()  # still there: the stop still fails
    other.kill()
    other.wait()
    await fs.stop()
    assert (await fs.observe()).state is State.STOPPED


async def test_a_foreign_mount_on_the_mount_point_is_not_ours(root: Path, parts: Parts) -> None:
    ours = parts.attach(image(root / "a.img"))
    theirs = parts.attach(image(root / "b.img"))
    mp = root / "m"
    mp.mkdir()
    run("mount", theirs, str(mp))
    fs = make(context(root), ours, mp)
    seen = await fs.observe()
    assert seen.state is State.STOPPED and "not " + ours in seen.detail, seen
    with pytest.raises(ActuatorError, match="already holds .* unmount it by hand"):
        await fs.start()
    await fs.stop()  # nothing of ours to stop; what is not ours stays
    assert mounted(mp)


def corrupt(parts: Parts, img: Path, *requests: str) -> None:
    """debugfs -w on an image: an extent of /f pointing past the end of the filesystem
    (e2fsck -f -p exits 4, yet the kernel mounts it); `ssv state 3` records errors."""
    loop = parts.attach(img)
    try:
        mp = img.with_suffix(".mnt")
        mp.mkdir()
        run("mount", loop, str(mp))
        (mp / "f").write_bytes(os.urandom(100_000))
        run("umount", str(mp))
        for request in requests:
            run("debugfs", "-w", "-R", request, loop)
    finally:
        run("losetup", "-d", loop, check=False)


BROKEN_EXTENT = "sif /f block[5] 0x7fffffff"
KERNEL_SAW_ERRORS = "ssv state 3"


@pytest.mark.parametrize(
    ("policy", "damage", "refused"),
    [
        ("force", [BROKEN_EXTENT], True),
        # auto: a journaled filesystem the kernel has not flagged is mounted unchecked
        # (docs/decisions.md); flagged, it is checked and refused.
        ("auto", [BROKEN_EXTENT], False),
        ("auto", [BROKEN_EXTENT, KERNEL_SAW_ERRORS], True),
        ("never", [BROKEN_EXTENT, KERNEL_SAW_ERRORS], False),
    ],
)
async def test_fsck_policy_on_a_corrupted_ext4(
    root: Path, parts: Parts, policy: str, damage: list[str], refused: bool
) -> None:
    img = image(root / "disk.img")
    corrupt(parts, img, *damage)
    loop = parts.attach(img)
    mp = root / "m"
    fs = make(context(root), loop, mp, fsck=policy)
    if not refused:
        await fs.start()
        assert mounted(mp)
        await fs.stop()
        return
    with pytest.raises(ActuatorError) as info:
        await fs.start()
    message = str(info.value)
    assert "errors left uncorrected" in message and "not mounted" in message, message
    assert "UNEXPECTED INCONSISTENCY" in message and "fsck: never" in message
    assert not mounted(mp)


async def test_volume_device_through_nbdfuse_and_a_loop(root: Path, parts: Parts) -> None:
    ctx = context(root)
    mp = root / "m"
    with served_volume(root, ctx.run_dir) as sock:
        fs = make(ctx, "volume:vol1", mp)
        mkfs_volume(root, sock, parts)

        await fs.start()
        record = Attachment.loads(fs.record_file.read_text())
        assert fs.lib_record.read_text() == fs.record_file.read_text()
        assert (await fs.observe()).state is State.RUNNING
        (mp / "data").write_bytes(b"x" * 300_000)
        await fs.stop()
        assert not mounted(mp) and not loop_is_attached(record.loop)
        assert not record.nbdfuse_alive()
        assert not fs.record_file.exists() and not fs.lib_record.exists()
        assert not mounts_under(root)

        await fs.start()
        assert (mp / "data").read_bytes() == b"x" * 300_000
        # Adoption: a restarted agent's fresh actuator sees it running and stops it all.
        again = make(ctx, "volume:vol1", mp)
        record = Attachment.loads(again.record_file.read_text())
        assert (await again.observe()).state is State.RUNNING
        await again.stop()
        assert not loop_is_attached(record.loop) and not record.nbdfuse_alive()
        assert not mounts_under(root)


async def test_a_dead_nbdfuse_is_observed_failed_and_stop_cleans_up(
    root: Path, parts: Parts
) -> None:
    ctx = context(root)
    mp = root / "m"
    with served_volume(root, ctx.run_dir) as sock:
        mkfs_volume(root, sock, parts)
        fs = make(ctx, "volume:vol1", mp)
        await fs.start()
        record = Attachment.loads(fs.record_file.read_text())
        os.kill(record.nbdfuse_pid, 9)
        deadline = time.monotonic() + 5
        while record.nbdfuse_alive():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        seen = await fs.observe()
        assert seen.state is State.FAILED and "nbdfuse" in seen.detail, seen
        await fs.stop()
        assert not loop_is_attached(record.loop)
        assert not mounts_under(root)


async def test_no_volume_served_fails_the_start_saying_so(root: Path, parts: Parts) -> None:
    fs = make(context(root), "volume:vol1", root / "m")
    with pytest.raises(ActuatorError, match="no NBD export at .*not Primary here"):
        await fs.start()
    assert not fs.record_file.exists()
    assert (await fs.observe()).state is State.STOPPED
