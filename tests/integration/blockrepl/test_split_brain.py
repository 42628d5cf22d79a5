"""Split brain between two real replicas in two network namespaces, and its resolution.

Each case: a connected, synced pair (A Primary, B Secondary) loses its link; B is promoted;
both write different blocks through NBD; roles are set as the policy case needs; the link
comes back. Then either both replicas stay StandAlone with their own data (disconnect), or
the policy picks a winner and the loser is resynced from it. "Resolved" is checked byte for
byte: both data areas equal the winner's data area as it was before the reconnect, and the
resync moved exactly the union of the blocks either side wrote since they parted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from .nbdclient import NbdClient
from .replicas import NetPair, Replica, net_pair, synced, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]
BLK = 4096
FAST = ("--timeout", "2", "--ping-interval", "0.3")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blockrepl.cli", *args], capture_output=True, text=True, timeout=60
    )


def data_size(backing: str) -> int:
    out = cli("show-md", "--backing", backing, "--json")
    return int(json.loads(out.stdout)["data_size"])


def digest(path: str, length: int) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(length)).hexdigest()


@contextmanager
def sb_pair(
    tmp: Path, extra_a: tuple[str, ...] = (), extra_b: tuple[str, ...] = ()
) -> Iterator[tuple[NetPair, Replica, Replica]]:
    """A synced pair (A Primary) with different random data in the first MiB than zeros."""
    secret = tmp / "secret"
    secret.write_text(secrets.token_hex(32))
    with net_pair() as net:
        a = Replica("a", net.ns[0], net.ip[0], net.ip[1], tmp, "8M", None, [*FAST, *extra_a])
        b = Replica("b", net.ns[1], net.ip[1], net.ip[0], tmp, "8M", None, [*FAST, *extra_b])
        try:
            a.create()
            b.create()
            a.start("primary", str(secret), "--force")
            b.start("secondary", str(secret))
            wait_for(lambda: synced(a) and synced(b), 30, "initial full sync")
            asyncio.run(write_blocks(a.sock, range(256), 0x11))  # common base data
            wait_for(lambda: a.status()["out_of_sync_bytes"] == 0, 10, "base data on B")
            yield net, a, b
        finally:
            for r in (a, b):
                r.stop()


async def write_blocks(sock: str, blocks: range | list[int], tag: int) -> None:
    client = await NbdClient.connect(unix=sock)
    try:
        for x in blocks:
            await client.write(x * BLK, bytes([tag, x % 251]) * (BLK // 2))
        await client.flush()
    finally:
        await client.close()


def split(net: NetPair, a: Replica, b: Replica) -> None:
    """Cut the link and make B Primary too: both may now write."""
    net.link(0, False)
    wait_for(lambda: a.status()["connection"] != "Connected", 10, "A notices the loss")
    wait_for(lambda: b.status()["connection"] != "Connected", 10, "B notices the loss")
    assert b.control("promote")["ok"]


def diverge(a: Replica, b: Replica, n_a: int, n_b: int, seed: int) -> set[int]:
    """A and B write n_a / n_b blocks, some of them the same; returns the union."""
    rnd = random.Random(seed)
    wa = rnd.sample(range(200), n_a)
    wb = rnd.sample(range(100, 300), n_b)
    if wa:
        asyncio.run(write_blocks(a.sock, sorted(wa), 0xAA))
    if wb:
        asyncio.run(write_blocks(b.sock, sorted(wb), 0xBB))
    assert a.status()["out_of_sync_bytes"] == n_a * BLK
    assert b.status()["out_of_sync_bytes"] == n_b * BLK
    return set(wa) | set(wb)


def winner_data(a: Replica, b: Replica, winner: Replica) -> tuple[int, str]:
    """(data size, digest of the winner's data area) taken before the reconnect."""
    size = data_size(a.backing)
    want = digest(winner.backing, size)
    loser = b if winner is a else a
    assert digest(loser.backing, size) != want
    return size, want


def expect_resolved(
    a: Replica,
    b: Replica,
    winner: Replica,
    union: set[int],
    before: tuple[int, str],
    roles: tuple[str, str] = ("Secondary", "Secondary"),
) -> None:
    size, want = before
    loser = b if winner is a else a
    wait_for(
        lambda: synced(a) and synced(b) and a.status()["wire"]["connections"] >= 2,
        30,
        "resync after the split brain",
    )
    last = winner.status()["last_sync"]
    # The loser got every block either side wrote since they parted: the union of bitmaps.
    assert last["kind"] == "SyncSource" and last["payload_bytes"] == len(union) * BLK, last
    assert loser.status()["last_sync"]["kind"] == "SyncTarget"
    assert "split brain resolved" in (winner.log.read_text() + loser.log.read_text())
    assert (a.status()["role"], b.status()["role"]) == roles
    for r in (a, b):
        r.stop()
    assert digest(a.backing, size) == digest(b.backing, size) == want


def detected(r: Replica, times: int) -> bool:
    return r.log.read_text().count("split brain detected") >= times


def in_state(r: Replica, state: str) -> bool:
    return bool(r.status()["connection"] == state)


def last_error(r: Replica, part: str) -> str | None:
    err = str(r.status()["last_error"])
    return err if part in err else None


def test_disconnect_policy_never_merges_and_resolve_discard_mine_ends_it(tmp_path: Path) -> None:
    with sb_pair(tmp_path) as (net, a, b):
        split(net, a, b)
        union = diverge(a, b, 5, 9, seed=1)
        assert b.control("demote")["ok"]
        size = data_size(a.backing)
        own = {r.name: digest(r.backing, size) for r in (a, b)}
        net.link(0, True)
        for rnd in (1, 2):  # detected every time, also after `resolve --connect` on both
            for r in (a, b):
                wait_for(partial(detected, r, rnd), 15, f"{r.name} detects it ({rnd})")
                wait_for(partial(in_state, r, "SplitBrain"), 5, f"{r.name} SplitBrain")
                st = r.status()
                assert "resolve --discard-mine" in st["last_error"], st["last_error"]
                assert "resolve --connect" in st["last_error"]
                assert st["wire"]["connections"] == 1  # only the initial one: nothing synced
                assert digest(r.backing, size) == own[r.name], "split brain data was touched"
            if rnd == 1:
                for r in (a, b):
                    assert cli("resolve", "--connect", "--control", r.ctl).returncode == 0
        # A Primary may not discard its data; once Secondary it marks itself sync target.
        res = cli("resolve", "--discard-mine", "--control", a.ctl)
        assert res.returncode == 1 and "demote it first" in res.stderr, res.stderr
        assert a.control("demote")["ok"]
        before = winner_data(a, b, b)
        res = cli("resolve", "--discard-mine", "--control", a.ctl)
        assert res.returncode == 0, res.stderr
        assert cli("resolve", "--connect", "--control", b.ctl).returncode == 0
        expect_resolved(a, b, b, union, before)


def test_resolve_refused_on_a_primary_and_while_connected(tmp_path: Path) -> None:
    with sb_pair(tmp_path) as (_net, a, b):
        res = cli("resolve", "--discard-mine", "--control", a.ctl)
        assert res.returncode == 1 and "disconnected replica" in res.stderr
        assert b.control("resolve", discard_mine=True)["ok"] is False


@pytest.mark.parametrize(
    ("policy", "n_a", "n_b", "win"),
    [
        ("discard-zero-changes", 0, 9, "b"),
        ("discard-least-changes", 3, 10, "b"),
        ("discard-younger-primary", 3, 10, "a"),  # A was Primary when they parted
        ("discard-older-primary", 10, 3, "b"),
        ("discard-node-a", 10, 3, "b"),
    ],
)
def test_after_sb_0pri(tmp_path: Path, policy: str, n_a: int, n_b: int, win: str) -> None:
    opts = ("--after-sb-0pri", policy)
    with sb_pair(tmp_path, (*opts, "--node-name", "a"), (*opts, "--node-name", "b")) as (
        net,
        a,
        b,
    ):
        split(net, a, b)
        union = diverge(a, b, n_a, n_b, seed=sum(policy.encode()))
        assert a.control("demote")["ok"] and b.control("demote")["ok"]
        before = winner_data(a, b, a if win == "a" else b)
        net.link(0, True)
        expect_resolved(a, b, a if win == "a" else b, union, before)


def test_after_sb_1pri_discard_secondary_keeps_the_primary(tmp_path: Path) -> None:
    opts = ("--after-sb-0pri", "discard-least-changes", "--after-sb-1pri", "discard-secondary")
    with sb_pair(tmp_path, opts, opts) as (net, a, b):
        split(net, a, b)
        union = diverge(a, b, 2, 12, seed=3)  # B changed more, but A stays Primary
        assert b.control("demote")["ok"]
        before = winner_data(a, b, a)
        net.link(0, True)
        expect_resolved(a, b, a, union, before, roles=("Primary", "Secondary"))


@pytest.mark.parametrize("npri", [1, 2])
def test_call_pri_lost_after_sb_demotes_the_losing_primary(tmp_path: Path, npri: int) -> None:
    """1pri: B demoted before the reconnect; 2pri: both still Primary. B changed more."""
    opts = (
        "--after-sb-0pri",
        "discard-least-changes",
        f"--after-sb-{npri}pri",
        "call-pri-lost-after-sb",
    )
    with sb_pair(tmp_path, opts, opts) as (net, a, b):
        split(net, a, b)
        union = diverge(a, b, 2, 12, seed=4)
        if npri == 1:
            assert b.control("demote")["ok"]
        assert a.status()["role"] == "Primary"
        before = winner_data(a, b, b)
        net.link(0, True)
        wait_for(lambda: a.status()["role"] == "Secondary", 15, "A gives up the Primary role")
        roles = ("Secondary", "Primary" if npri == 2 else "Secondary")
        expect_resolved(a, b, b, union, before, roles=roles)


def test_call_pri_lost_after_sb_with_open_client_disconnects(tmp_path: Path) -> None:
    opts = ("--after-sb-0pri", "discard-least-changes", "--after-sb-1pri", "call-pri-lost-after-sb")
    with sb_pair(tmp_path, opts, opts) as (net, a, b):
        split(net, a, b)
        union = diverge(a, b, 2, 12, seed=5)
        assert b.control("demote")["ok"]
        before = winner_data(a, b, b)

        async def hold_open() -> None:
            client = await NbdClient.connect(unix=a.sock)  # A's device stays open
            try:
                net.link(0, True)
                await asyncio.to_thread(
                    wait_for,
                    lambda: a.status()["connection"] == "SplitBrain",
                    15,
                    "A refuses: cannot demote",
                )
                await asyncio.sleep(1.0)  # still Primary, no data taken from B
            finally:
                await client.close()

        asyncio.run(hold_open())
        st = a.status()
        assert st["role"] == "Primary" and "cannot demote" in st["last_error"], st
        assert "NBD client" in st["last_error"]
        assert a.control("demote")["ok"]
        assert a.control("resolve", discard_mine=True)["ok"]
        expect_resolved(a, b, b, union, before)


def test_different_policies_are_refused_on_both_sides(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_hex(32))
    with net_pair() as net:
        opts = [*FAST, "--after-sb-0pri", "discard-zero-changes"]
        a = Replica("a", net.ns[0], net.ip[0], net.ip[1], tmp_path, "8M", None, opts)
        b = Replica("b", net.ns[1], net.ip[1], net.ip[0], tmp_path, "8M", None, [*FAST])
        try:
            a.create()
            b.create()
            a.start("primary", str(secret), "--force")
            b.start("secondary", str(secret))
            for r in (a, b):
                err = wait_for(partial(last_error, r, "policies differ"), 15, f"{r.name} refuses")
                assert "after-sb-0pri/1pri/2pri" in err, err
                assert r.status()["last_sync"] is None
        finally:
            a.stop()
            b.stop()


def test_unknown_policy_is_a_usage_error(tmp_path: Path) -> None:
    backing = str(tmp_path / "v.img")
    assert cli("create-md", "--backing", backing, "--size", "4M").returncode == 0
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    res = cli(
        "serve",
        "--backing",
        backing,
        "--peer",
        "127.0.0.1:1",
        "--secret-file",
        str(secret),
        "--after-sb-1pri",
        "discard-least-changes",
    )
    assert res.returncode == 1 and "--after-sb-1pri 'discard-least-changes'" in res.stderr
