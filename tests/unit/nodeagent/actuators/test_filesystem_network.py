"""Network mounts (nfs, nfs4, glusterfs, cifs) with the commands and the mount table faked:
no NFS server or kernel module here, so this checks what the actuator runs and how it
reads the table; the mount itself is not tested on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.api.group import Resource
from nodeagent.actuators import ActuatorContext, State, default_registry
from nodeagent.actuators import filesystem as fs_module
from nodeagent.actuators.commands import CommandResult
from nodeagent.actuators.filesystem import FilesystemActuator
from nodeagent.actuators.mountinfo import Mount


class FakeNode:
    """The mount table and the commands run, as the actuator sees them."""

    def __init__(self) -> None:
        self.table: list[Mount] = []
        self.ran: list[list[str]] = []

    def mount(self, point: str, fs_type: str, source: str) -> None:
        self.table.append(Mount(90, 0, 77, "/", point, "rw", fs_type, source))

    async def run(self, argv: list[str], **_: object) -> CommandResult:
        self.ran.append(list(argv))
        if argv[0] == "mount":
            self.mount(argv[-1], argv[2], argv[-2])
        elif argv[0] == "umount":
            self.table = [m for m in self.table if m.mount_point != argv[1]]
        return CommandResult(tuple(argv), 0, "")


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr(fs_module, "run_command", fake.run)
    monkeypatch.setattr(fs_module, "read_mountinfo", lambda: list(fake.table))
    return fake


def make(tmp_path: Path, **spec: object) -> FilesystemActuator:
    resource = Resource.model_validate({"filesystem": {"mountPoint": str(tmp_path / "m"), **spec}})
    ctx = ActuatorContext(resource="g.fs", run_dir=tmp_path / "run", lib_dir=tmp_path / "lib")
    actuator = default_registry.create(resource, ctx)
    assert isinstance(actuator, FilesystemActuator)
    return actuator


async def test_nfs_is_mounted_without_attach_or_fsck_and_recognised(
    tmp_path: Path, node: FakeNode
) -> None:
    fs = make(tmp_path, device="nfs1:/export", fsType="nfs", options=["hard", "vers=4.2"])
    assert (await fs.observe()).state is State.STOPPED
    await fs.start()
    point = str(tmp_path / "m")
    assert node.ran == [["mount", "-t", "nfs", "-o", "hard,vers=4.2", "nfs1:/export", point]]
    # The kernel reports `-t nfs` with vers=4.x as nfs4, and may add a trailing slash.
    node.table = [Mount(90, 0, 77, "/", point, "rw", "nfs4", "nfs1:/export/")]
    seen = await fs.observe()
    assert seen.state is State.RUNNING and "nfs1:/export/" in seen.detail
    await fs.stop()
    assert node.ran[-1] == ["umount", point]
    assert (await fs.observe()).state is State.STOPPED
    assert not (tmp_path / "run" / "filesystems").exists()  # nothing attached, no record


async def test_another_share_on_the_mount_point_is_not_ours(tmp_path: Path, node: FakeNode) -> None:
    fs = make(tmp_path, device="//files/share", fsType="cifs")
    node.mount(str(tmp_path / "m"), "cifs", "//files/other")
    seen = await fs.observe()
    assert seen.state is State.STOPPED and "not //files/share" in seen.detail
    await fs.stop()  # leaves it alone
    assert node.ran == []


async def test_glusterfs_and_cifs_commands(tmp_path: Path, node: FakeNode) -> None:
    await make(tmp_path, device="gl1:/vol0", fsType="glusterfs").start()
    await make(tmp_path / "b", device="//files/share", fsType="cifs", options=["ro"]).start()
    assert node.ran == [
        ["mount", "-t", "glusterfs", "gl1:/vol0", str(tmp_path / "m")],
        ["mount", "-t", "cifs", "-o", "ro", "//files/share", str(tmp_path / "b" / "m")],
    ]
