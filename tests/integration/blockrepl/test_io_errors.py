"""Backing-disk I/O errors with two real replicas in two namespaces (on-io-error policies).

The Primary's backing file lives on a FUSE file system (faultyfs.py) that returns real
EIO from read/write/fsync for chosen ranges while the replica runs: the kernel here has
no device-mapper, so the dm ``error`` target cannot be used.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mfusepy  # type: ignore[import-untyped]  # noqa: F401  # a dev dependency: fail loudly if missing
import pytest

from .conftest import system_python_env
from .nbdclient import NbdClient, NbdError
from .replicas import Replica, net_pair, sh, synced, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("fusermount3"),
        reason="needs root, ip and fusermount3 (fuse3)",
    ),
]
MiB = 1024 * 1024
SIZE = "16M"
BAD = 8 * MiB  # start of the failing range
BAD_LEN = 1 * MiB
CHUNK = 64 * 1024


@dataclass
class FaultyMount:
    image: Path
    mount: Path
    control: Path
    proc: subprocess.Popen[bytes]

    @property
    def disk(self) -> str:
        return str(self.mount / "disk")

    def fail(self, offset: int, length: int, ops: tuple[str, ...] = ("read", "write")) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps({"bad": [[offset, length]], "ops": list(ops)}))
        os.replace(tmp, self.control)

    def heal(self) -> None:
        self.fail(0, 0, ())


@contextmanager
def faulty_disk(workdir: Path, size: int) -> Iterator[FaultyMount]:
    image, mount = workdir / "a-under.img", workdir / f"mnt-{secrets.token_hex(3)}"
    image.write_bytes(b"")
    os.truncate(image, size)
    mount.mkdir()
    with open(workdir / "faultyfs.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.blockrepl.faultyfs",
                str(image),
                str(mount),
                str(workdir / "faults.json"),
            ],
            stdout=log,
            stderr=log,
            cwd=str(Path(__file__).parents[3]),
        )
    fm = FaultyMount(image, mount, workdir / "faults.json", proc)
    try:
        wait_for(lambda: os.path.exists(fm.disk) or proc.poll() is not None, 20, "FUSE mount")
        assert proc.poll() is None, (workdir / "faultyfs.log").read_text()
        yield fm
    finally:
        sh("fusermount3", "-u", str(mount), check=False)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(mount, ignore_errors=True)


@dataclass
class FaultyReplica(Replica):
    disk_path: str = ""

    @property
    def backing(self) -> str:
        return self.disk_path or str(self.workdir / f"{self.name}.img")


@contextmanager
def faulty_pair(
    tmp: Path, policy: str, with_peer: bool = True
) -> Iterator[tuple[FaultyMount, Replica, Replica]]:
    """Primary A on the faulty disk, Secondary B on a plain file (started if with_peer)."""
    secret = str(tmp / "secret")
    Path(secret).write_text(secrets.token_hex(32))
    extra = ["--on-io-error", policy]
    with faulty_disk(tmp, 16 * MiB) as fm, net_pair() as net:
        a = FaultyReplica("a", net.ns[0], net.ip[0], net.ip[1], tmp, SIZE, None, extra)
        a.disk_path = fm.disk
        b = Replica("b", net.ns[1], net.ip[1], net.ip[0], tmp, SIZE, None, list(extra))
        try:
            a.create()
            b.create()
            a.start("primary", secret, "--force")
            if with_peer:
                b.start("secondary", secret)
                wait_for(lambda: synced(a) and synced(b), 60, "initial full sync")
            yield fm, a, b
        finally:
            for r in (a, b):
                r.stop()


def pattern(tag: int, length: int = CHUNK) -> bytes:
    return bytes([tag]) * 16 + os.urandom(length - 16)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def image_bytes(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


# ---------------------------------------------------------------- (a) detach, peer connected
@pytest.mark.skipif(not shutil.which("nbdsh"), reason="python3-libnbd (nbdsh) not installed")
def test_detach_real_client_keeps_working_through_the_peer(tmp_path: Path) -> None:
    """One libnbd connection across the detach: no error, data read back equals writes."""
    with faulty_pair(tmp_path, "detach") as (fm, a, b):
        p1, p2, p3 = (tmp_path / f"p{i}.bin" for i in (1, 2, 3))
        for i, p in enumerate((p1, p2, p3)):
            p.write_bytes(pattern(0x30 + i))
        bad = json.dumps({"bad": [[BAD, BAD_LEN]], "ops": ["read", "write"]})
        script = f"""
import os
p1, p2, p3 = (open(p, 'rb').read() for p in {[str(p1), str(p2), str(p3)]!r})
h.connect_unix({a.sock!r})
h.pwrite(p1, 0); h.pwrite(p1, {BAD}); h.flush()
with open({str(fm.control) + ".tmp"!r}, 'w') as f:
    f.write({bad!r})
os.replace({str(fm.control) + ".tmp"!r}, {str(fm.control)!r})
assert h.pread({CHUNK}, {BAD}) == p1, 'failed range read through the peer'
h.pwrite(p2, {BAD}); h.pwrite(p3, 0); h.flush()
assert h.pread({CHUNK}, {BAD}) == p2
assert h.pread({CHUNK}, 0) == p3
h.shutdown()
print('client ok')
"""
        out = subprocess.run(
            ["nbdsh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            env=system_python_env(),
        )
        assert out.returncode == 0 and "client ok" in out.stdout, out.stderr + a.log.read_text()
        st = a.status()
        assert st["disk"] == "Diskless"
        err = st["disk_error"]
        assert err["detached"] and err["policy"] == "detach"
        assert err["first"]["errno"] == 5 and err["first"]["error"] == "EIO"
        assert err["first"]["op"] == "read" and BAD <= err["first"]["offset"] < BAD + BAD_LEN
        assert err["serving"].startswith("through the peer")
        assert "marked Inconsistent" in err["metadata"]
        stb = b.status()
        assert stb["peer_disk"] == "Diskless" and stb["disk"] == "UpToDate"
        # The peer tracks what the Diskless Primary wrote (DRBD: set out of sync) ...
        assert stb["out_of_sync_bytes"] >= 2 * CHUNK
        # ... under a new data generation of its own.
        assert stb["generation"] != st["generation"]
        # Protocol C: acknowledged writes are on the peer's disk.
        assert image_bytes(b.backing, BAD, CHUNK) == p2.read_bytes()
        assert image_bytes(b.backing, 0, CHUNK) == p3.read_bytes()


def test_detach_on_write_error_and_restart_resyncs_from_peer(tmp_path: Path) -> None:
    """The first error comes from a write; later the repaired node restarts as Secondary,
    attaches Inconsistent and becomes SyncTarget: it ends up with the peer's data."""
    with faulty_pair(tmp_path, "detach") as (fm, a, b):
        data = {off: pattern(0x40 + i) for i, off in enumerate((0, BAD, BAD + 4 * CHUNK))}

        async def phase() -> None:
            c = await NbdClient.connect(unix=a.sock)
            try:
                fm.fail(BAD, BAD_LEN)
                for off, d in data.items():
                    await c.write(off, d)  # BAD fails locally: detach, peer only
                await c.flush()
                for off, d in data.items():
                    assert await c.read(off, CHUNK) == d
            finally:
                await c.close()

        run(phase())
        st = a.status()
        assert st["disk"] == "Diskless"
        assert st["disk_error"]["first"]["op"] == "write"
        assert st["disk_error"]["first"]["offset"] == BAD
        # Repair the disk and restart A as Secondary: Inconsistent -> SyncTarget.
        a.stop()
        fm.heal()
        b.control("promote")
        a.start("secondary", str(tmp_path / "secret"))
        wait_for(lambda: synced(a) and synced(b), 60, "resync of the repaired node")
        for off, d in data.items():
            assert image_bytes(fm.image.as_posix(), off, CHUNK) == d


def test_detach_on_failed_writeback_reported_by_flush(tmp_path: Path) -> None:
    """Buffered-write model: the write "succeeds", the flush reports EIO: detach, and the
    flush is completed by the peer (which has the write), so the client sees no error."""
    with faulty_pair(tmp_path, "detach") as (fm, a, b):
        d = pattern(0x48)

        async def phase() -> None:
            c = await NbdClient.connect(unix=a.sock)
            try:
                fm.fail(BAD, BAD_LEN, ops=("writeback",))
                await c.write(BAD, d)  # dropped by the "device", acknowledged by the peer
                await c.flush()  # fdatasync EIO -> detach -> peer flush
                assert await c.read(BAD, CHUNK) == d  # via the peer
            finally:
                await c.close()

        run(phase())
        st = a.status()
        assert st["disk"] == "Diskless"
        first = st["disk_error"]["first"]
        assert first["op"] == "flush" and first["offset"] is None and first["errno"] == 5
        assert image_bytes(b.backing, BAD, CHUNK) == d


# ---------------------------------------------------------------- (b) pass_on
def test_pass_on_eio_for_failed_range_only(tmp_path: Path) -> None:
    with faulty_pair(tmp_path, "pass_on") as (fm, a, b):
        good, bad = pattern(0x51), pattern(0x52)
        newer = pattern(0x53)

        async def phase() -> None:
            c = await NbdClient.connect(unix=a.sock)
            try:
                await c.write(0, good)
                await c.write(BAD, bad)
                await c.flush()
                fm.fail(BAD, BAD_LEN, ops=("read", "write"))
                with pytest.raises(NbdError, match="server error 5"):
                    await c.read(BAD, CHUNK)
                assert await c.read(0, CHUNK) == good  # elsewhere: fine
                with pytest.raises(NbdError, match="server error 5"):
                    await c.write(BAD + CHUNK, newer)  # failed locally, reached the peer
                await c.write(4 * MiB, newer)
                assert await c.read(4 * MiB, CHUNK) == newer
                with pytest.raises(NbdError, match="server error 5"):
                    await c.read(BAD + CHUNK, 4096)  # still failing, still EIO
                await c.flush()
                assert await c.read(0, CHUNK) == good  # same connection still usable
            finally:
                await c.close()

        run(phase())
        st = a.status()
        assert st["disk"] == "Inconsistent"  # DRBD pass_on: disk becomes Inconsistent
        assert st["connection"] == "Connected"
        err = st["disk_error"]
        assert err["policy"] == "pass_on" and not err["detached"]
        assert err["errors"] >= 2 and err["first"]["errno"] == 5
        assert err["failed_bytes"] >= 2 * CHUNK
        # The write that failed here but reached the peer stays out of sync (resync later).
        assert st["out_of_sync_bytes"] >= CHUNK
        assert image_bytes(b.backing, BAD + CHUNK, CHUNK) == newer


# ---------------------------------------------------------------- (c) detach, no peer
def test_detach_without_peer_gives_eio_and_says_why(tmp_path: Path) -> None:
    with faulty_pair(tmp_path, "detach", with_peer=False) as (fm, a, _b):
        first = pattern(0x61)

        async def phase() -> None:
            c = await NbdClient.connect(unix=a.sock)
            try:
                await c.write(0, first)
                fm.fail(BAD, BAD_LEN)
                with pytest.raises(NbdError, match="server error 5"):
                    await c.read(BAD, CHUNK)
                # Detached: even the healthy range has no copy left to serve.
                with pytest.raises(NbdError, match="server error 5"):
                    await c.read(0, CHUNK)
                with pytest.raises(NbdError, match="server error 5"):
                    await c.write(0, first)
            finally:
                await c.close()

        run(phase())
        st = a.status()
        assert st["disk"] == "Diskless" and st["connection"] != "Connected"
        assert st["disk_error"]["serving"].startswith("nowhere: no connected UpToDate peer")
        assert st["disk_error"]["first"]["offset"] == BAD
        time.sleep(0.2)
        assert a.proc is not None and a.proc.poll() is None  # still running, still answering
