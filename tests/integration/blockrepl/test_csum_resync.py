"""Checksum resync between two real replicas in two network namespaces.

While disconnected the Primary rewrites 1% of a 64 MiB volume; half of those blocks get
the data they already held (marked in the bitmap, but equal on both replicas). With
``--csums`` only the other half travels as RS_DATA; without it every marked byte does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import sys
from pathlib import Path

import pytest

from .nbdclient import NbdClient
from .replicas import Replica, replica_pair, sh, shm_dir, synced, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]
BLOCK = 4096
SLACK = 32 * 1024  # handshake, two bitmaps of 2 KiB, pings, RS_ACKs: not resync data

MODES = {
    "csums": ("--csums",),
    "plain": (),
    "after-crash-only-no-crash": ("--csums", "--csums-after-crash-only"),
    "after-crash-only-crash": ("--csums", "--csums-after-crash-only"),
}


async def _write_blocks(sock: str, blocks: dict[int, bytes]) -> None:
    client = await NbdClient.connect(unix=sock)
    try:
        await asyncio.gather(*(client.write(b * BLOCK, data) for b, data in blocks.items()))
        await client.flush()
    finally:
        await client.close()


def _data_digest(r: Replica) -> str:
    out = sh(sys.executable, "-m", "blockrepl.cli", "show-md", "--backing", r.backing, "--json")
    left = int(json.loads(out.stdout)["data_size"])
    h = hashlib.sha256()
    with open(r.backing, "rb") as f:
        while left > 0:
            chunk = f.read(min(left, 1 << 22))
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("mode", list(MODES))
def test_csum_resync_sends_only_differing_blocks(tmp_path: Path, mode: str) -> None:
    rnd = random.Random(f"{mode}-{os.getpid()}")
    with shm_dir() as shm, replica_pair(shm, "64M", extra=MODES[mode]) as (net, a, b, secret):
        volume = os.path.getsize(a.backing) // BLOCK - 64  # clear of the internal metadata
        chosen = rnd.sample(range(volume), volume // 100)
        same, new = chosen[: len(chosen) // 2], chosen[len(chosen) // 2 :]
        old = {x: rnd.randbytes(BLOCK) for x in chosen}
        asyncio.run(_write_blocks(a.sock, old))  # replicated: both hold `old`
        wait_for(lambda: a.status()["out_of_sync_bytes"] == 0, 10, "writes acknowledged")

        net.link(0, False)
        wait_for(lambda: a.status()["connection"] != "Connected", 10, "A notices the loss")
        wait_for(lambda: b.status()["connection"] != "Connected", 10, "B notices the loss")
        rewrite = {x: old[x] for x in same} | {x: rnd.randbytes(BLOCK) for x in new}
        asyncio.run(_write_blocks(a.sock, rewrite))
        marked = a.status()["out_of_sync_bytes"]
        assert marked == len(chosen) * BLOCK
        if mode == "after-crash-only-crash":
            assert a.proc is not None
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait()
            a.start("primary", secret)  # comes back as a crashed Primary
            # The activity log's hot extents are marked on top: mostly equal data.
            marked = a.status()["out_of_sync_bytes"]
            assert marked >= len(chosen) * BLOCK
        before = b.status()
        net.link(0, True)
        wait_for(
            lambda: synced(a) and synced(b) and b.status()["last_sync"] != before["last_sync"],
            60,
            "resync after reconnect",
        )
        src, dst = a.status()["last_sync"], b.status()["last_sync"]
        received = b.status()["wire"]["bytes_in"] - before["wire"]["bytes_in"]
        print(f"{mode}: marked {marked} B, B received {received} B; source {src}; target {dst}")
        assert src["kind"] == "SyncSource" and dst["kind"] == "SyncTarget"
        differing = len(new) * BLOCK
        if mode in ("csums", "after-crash-only-crash"):
            assert src["csums"] and dst["csums"]
            assert src["data_bytes"] == dst["data_bytes"] == differing
            assert src["data_bytes"] <= 0.6 * marked
            skipped = marked // BLOCK - len(new)
            assert src["skipped_equal_blocks"] == dst["skipped_equal_blocks"] == skipped
            assert src["csum_bytes"] > 0 and dst["csum_bytes"] > 0
            assert received <= 0.6 * marked + src["csum_bytes"] + SLACK, received
        else:
            assert not src["csums"] and not dst["csums"]
            assert src["skipped_equal_blocks"] == 0 and src["csum_bytes"] == 0
            assert src["data_bytes"] == dst["data_bytes"] == marked
            assert marked <= received <= marked + SLACK, received
        a.stop()
        b.stop()
        assert _data_digest(a) == _data_digest(b)


def test_csum_resync_with_application_writes_ends_identical(tmp_path: Path) -> None:
    """Writes to marked (equal and differing) and unmarked blocks while the checksum
    resync runs slowly: the replicas must still end byte-identical."""
    rnd = random.Random(os.getpid())
    with shm_dir() as shm, replica_pair(shm, "64M", extra=("--csums",)) as (net, a, b, _s):
        volume = os.path.getsize(a.backing) // BLOCK - 64
        chosen = rnd.sample(range(volume), volume // 20)
        old = {x: rnd.randbytes(BLOCK) for x in chosen}
        asyncio.run(_write_blocks(a.sock, old))
        wait_for(lambda: a.status()["out_of_sync_bytes"] == 0, 10, "writes acknowledged")
        net.link(0, False)
        wait_for(lambda: a.status()["connection"] != "Connected", 10, "A notices the loss")
        half = chosen[len(chosen) // 2 :]
        asyncio.run(
            _write_blocks(a.sock, {x: old[x] for x in chosen} | {x: b"n" * BLOCK for x in half})
        )
        # Past the 1 MiB burst the differing half takes seconds at this rate.
        assert a.control("set-resync-rate", rate=256 * 1024)["ok"]
        before = b.status()
        net.link(0, True)
        wait_for(lambda: a.status()["sync"] is not None, 20, "resync starts")

        async def write_during_sync() -> int:
            client = await NbdClient.connect(unix=a.sock)
            during = 0
            try:
                for _ in range(400):
                    if a.status()["sync"] is None:
                        break
                    during += 1
                    targets = rnd.sample(chosen, 8) + rnd.sample(range(volume), 4)
                    await asyncio.gather(
                        *(client.write(x * BLOCK, rnd.randbytes(BLOCK)) for x in targets)
                    )
                    await asyncio.sleep(0.01)
            finally:
                await client.close()
            return during

        during = asyncio.run(write_during_sync())
        assert a.control("set-resync-rate", rate=0)["ok"]
        wait_for(
            lambda: synced(a) and synced(b) and b.status()["last_sync"] != before["last_sync"],
            60,
            "resync after reconnect",
        )
        src = a.status()["last_sync"]
        print(f"{during} write batches during the resync; source {src}")
        assert during >= 3, "the writes must overlap the resync"
        assert src["csums"] and src["skipped_equal_blocks"] > 0
        a.stop()
        b.stop()
        assert _data_digest(a) == _data_digest(b)
