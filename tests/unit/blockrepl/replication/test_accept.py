"""Who may connect to the replication listener (blockrepl.replication.accept)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from blockrepl import cli
from blockrepl.replication.accept import address, canonical, is_peer
from blockrepl.replication.node import ReplConfig


def test_canonical_addresses() -> None:
    assert canonical("::ffff:10.0.0.1") == "10.0.0.1"
    assert canonical("fe80:0:0::1%eth0") == "fe80::1"
    assert canonical("2001:DB8::0:1") == "2001:db8::1"
    assert canonical("Peer.Example") == "peer.example"
    assert address(("10.0.0.1", 7788)) == "10.0.0.1"


def test_is_peer_by_address_and_by_name() -> None:
    hosts = ("10.0.0.1", "localhost")
    assert asyncio.run(is_peer("::ffff:10.0.0.1", hosts))
    assert asyncio.run(is_peer("127.0.0.1", hosts))  # localhost resolves to it
    assert not asyncio.run(is_peer("10.0.0.2", hosts))
    assert not asyncio.run(is_peer("10.0.0.1", ()))


def test_peer_hosts_are_peer_and_allow_peer() -> None:
    cfg = ReplConfig("v", b"s" * 16, peer=("10.0.0.1", 7788), allow_peers=("10.0.0.9", "10.0.0.1"))
    assert cfg.peer_hosts == ("10.0.0.1", "10.0.0.9")
    assert ReplConfig("v", b"s" * 16, allow_peers=("h",)).peer_hosts == ("h",)


def test_listen_repl_alone_needs_allow_peer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "s").write_text("s" * 40)
    argv = ["serve", "--backing", str(tmp_path / "none.img"), "--listen-repl", "127.0.0.1:0"]
    argv += ["--secret-file", str(tmp_path / "s")]
    assert cli.main(argv) == 1
    assert "--listen-repl without --peer needs --allow-peer HOST" in capsys.readouterr().err
    args = cli.build_parser().parse_args([*argv, "--allow-peer", "[::1]", "--allow-peer", "b"])
    assert args.allow_peer == ["[::1]", "b"]
