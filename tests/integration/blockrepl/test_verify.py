"""Online verify between two real replicas in two network namespaces.

Corruption is injected behind blockrepl's back (os.pwrite + fsync on the Secondary's
backing file while it runs); concurrent writes come from a real NBD client.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from .nbdclient import NbdClient
from .replicas import Replica, replica_pair, synced, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]
BLK = 4096
SIZE = "16M"


def verify_cli(r: Replica, *flags: str) -> tuple[int, str]:
    """`blockrepl verify --wait` as an operator runs it: (exit code, stdout)."""
    p = subprocess.run(
        [sys.executable, "-m", "blockrepl.cli", "verify", "--control", r.ctl, "--wait", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode in (0, 1), p.stderr + p.stdout
    return p.returncode, p.stdout


def last_verify(r: Replica) -> dict[str, Any]:
    lv: dict[str, Any] = r.status()["last_verify"]
    return lv


def data_size(r: Replica) -> int:
    """The volume size as verify walked it (a run from offset 0 covers it all)."""
    size = last_verify(r)["total_bytes"]
    assert isinstance(size, int) and size > 0
    return size


def corrupt(path: str, blocks: list[int]) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        for b in blocks:
            assert os.pwrite(fd, os.urandom(BLK), b * BLK) == BLK
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_of(path: str, length: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(length))
    return h.hexdigest()


def expected_ranges(blocks: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for b in sorted(blocks):
        if out and out[-1][0] + out[-1][1] == b * BLK:
            out[-1][1] += BLK
        else:
            out.append([b * BLK, BLK])
    return out


def test_in_sync_pair_verifies_clean_even_under_writes(tmp_path: Path) -> None:
    with replica_pair(tmp_path, SIZE) as (_net, a, b, _secret):
        code, out = verify_cli(a)
        assert code == 0, out
        lv = last_verify(a)
        assert lv["result"] == "in-sync" and lv["out_of_sync_blocks"] == 0
        size = data_size(a)
        assert lv["verified_bytes"] == size
        # Slow the walk down so it overlaps many writes, then verify from each side while
        # a client keeps rewriting random (also unaligned, multi-block) ranges.
        for r in (a, b):
            assert r.control("set-resync-rate", rate=6 * 1024 * 1024)["ok"]
        for source in (a, b):
            written, code, out = asyncio.run(_verify_while_writing(a.sock, source, size))
            lv = last_verify(source)
            print(f"verify from {source.name} under {written} writes: {lv}")
            assert written > 200, "the client must write throughout the verify"
            assert lv["verified_bytes"] == size
            assert code == 0 and lv["out_of_sync_blocks"] == 0, (out, lv)


async def _verify_while_writing(sock: str, source: Replica, size: int) -> tuple[int, int, str]:
    client = await NbdClient.connect(unix=sock)
    rnd = random.Random(os.getpid())
    stop = asyncio.Event()
    count = 0

    async def writer() -> None:
        nonlocal count
        while not stop.is_set():
            length = rnd.choice((BLK, 512, 3 * BLK + 512, 64 * 1024))
            off = rnd.randrange(0, (size - length) // 512) * 512
            await client.write(off, os.urandom(length))
            count += 1

    writers = [asyncio.create_task(writer()) for _ in range(8)]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "blockrepl.cli",
            "verify",
            "--control",
            source.ctl,
            "--wait",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await client.close()
    assert proc.returncode is not None
    return count, proc.returncode, out.decode()


def resynced(a: Replica, b: Replica, connections: int) -> bool:
    return a.status()["wire"]["connections"] >= connections and synced(a) and synced(b)


def test_corrupted_blocks_are_found_exactly_and_resynced(tmp_path: Path) -> None:
    with replica_pair(tmp_path, SIZE) as (_net, a, b, _secret):
        code, _ = verify_cli(a)
        assert code == 0
        size = data_size(a)
        nblocks = size // BLK
        bad = [3, 4, 5, 1000, nblocks // 2, nblocks - 1]
        corrupt(b.backing, bad)

        # Found from either side, without changing anything.
        for source in (b, a):
            code, out = verify_cli(source)
            lv = last_verify(source)
            assert code == 1, out
            assert lv["result"] == "out-of-sync" and lv["out_of_sync_blocks"] == len(bad)
            assert lv["ranges"] == expected_ranges(bad), lv
            assert lv["resync"] is None
        assert a.status()["connection"] == "Connected"
        assert sha256_of(a.backing, size) != sha256_of(b.backing, size)

        # Repaired: from the Primary, then (new corruption) from the Secondary.
        conns = a.status()["wire"]["connections"]
        for source, blocks in ((a, bad), (b, [7, nblocks - 2])):
            if source is b:
                corrupt(b.backing, blocks)
            code, out = verify_cli(source, "--resync")
            assert code == 1, out
            lv = last_verify(source)
            assert lv["ranges"] == expected_ranges(blocks), lv
            assert "reconnecting" in lv["resync"]
            conns += 1
            wait_for(partial(resynced, a, b, conns), 60, "reconnect and resync")
            last = a.status()["last_sync"]
            assert last["kind"] == "SyncSource" and last["payload_bytes"] == len(blocks) * BLK
            assert verify_cli(source)[0] == 0
        assert sha256_of(a.backing, size) == sha256_of(b.backing, size)


def test_verify_refusals(tmp_path: Path) -> None:
    with replica_pair(tmp_path, "8M") as (net, a, b, _secret):
        assert a.control("set-resync-rate", rate=1024 * 1024)["ok"]
        assert a.control("verify")["ok"]
        again = a.control("verify")
        assert not again["ok"] and "already running" in again["error"]
        bad = b.control("verify", start=1 << 40)
        assert not bad["ok"] and '"start"' in bad["error"]
        assert a.control("verify-stop")["ok"]
        assert last_verify(a)["result"] == "stopped"
        net.link(0, False)
        wait_for(lambda: a.status()["connection"] != "Connected", 10, "A notices the loss")
        refused = a.control("verify")
        assert not refused["ok"] and "connected peer" in refused["error"]
        p = subprocess.run(
            [sys.executable, "-m", "blockrepl.cli", "verify", "--control", a.ctl, "--wait"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert p.returncode == 2 and "connected peer" in p.stderr
