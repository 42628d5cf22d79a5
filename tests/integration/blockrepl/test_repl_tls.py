"""TLS on the replication link: two real replicas in two network namespaces.

Certificates come from Vigil's cluster CA (controller/bootstrap/pki.py); the replicas dial
each other by IP, so identity is the CA chain plus --tls-peer-name against the certificate's CN.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from .nbdclient import NbdClient
from .replicas import Replica, net_pair, sh, synced, wait_for
from .tlscerts import TLSFiles, issue_replica, make_ca

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]
SIZE = "16M"


def _data_digest(r: Replica) -> str:
    out = sh(sys.executable, "-m", "blockrepl.cli", "show-md", "--backing", r.backing, "--json")
    left = int(json.loads(out.stdout)["data_size"])
    with open(r.backing, "rb") as f:
        return hashlib.sha256(f.read(left)).hexdigest()


def _prefill(r: Replica) -> str:
    with open(r.backing, "r+b") as f:
        f.write(os.urandom(1024 * 1024))
    return _data_digest(r)


def _pki(tmp: Path) -> tuple[TLSFiles, TLSFiles, TLSFiles]:
    """repl-a and repl-b from the cluster CA; a rogue repl-b from another CA that trusts
    the cluster CA (so only the chain check can refuse it)."""
    ca, ca_path = make_ca(tmp / "pki", "tls-test")
    other, other_path = make_ca(tmp / "other", "rogue")
    a = issue_replica(ca, ca_path, tmp / "pki", "repl-a")
    b = issue_replica(ca, ca_path, tmp / "pki", "repl-b")
    rogue = issue_replica(other, other_path, tmp / "other", "repl-b")
    return a, b, TLSFiles(rogue.cert, rogue.key, ca_path)


async def _write_pattern(sock: str, blocks: int) -> bytes:
    data = os.urandom(blocks * 65536)
    client = await NbdClient.connect(unix=sock)
    try:
        await asyncio.gather(
            *(client.write(i * 65536, data[i * 65536 : (i + 1) * 65536]) for i in range(blocks))
        )
        await client.flush()
        assert await client.read(0, len(data)) == data
    finally:
        await client.close()
    return data


def test_tls_replicas_connect_and_replicate(tmp_path: Path) -> None:
    tls_a, tls_b, _ = _pki(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    with net_pair() as net:
        a = Replica("a", net.ns[0], net.ip[0], net.ip[1], tmp_path, SIZE)
        b = Replica("b", net.ns[1], net.ip[1], net.ip[0], tmp_path, SIZE)
        try:
            a.create()
            b.create()
            a.start("primary", str(secret), "--force", *tls_a.args("repl-b"))
            b.start("secondary", str(secret), *tls_b.args("repl-a"))
            wait_for(lambda: synced(a) and synced(b), 60, "initial full sync over TLS")
            st_a, st_b = a.status(), b.status()
            assert st_a["tls"]["version"] == "TLSv1.3" and st_a["tls"]["peer"] == "repl-b"
            assert st_b["tls"]["version"] == "TLSv1.3" and st_b["tls"]["peer"] == "repl-a"
            asyncio.run(_write_pattern(a.sock, 64))  # 4 MiB, protocol C: on B when acked
            assert a.status()["out_of_sync_bytes"] == 0
            assert b.status()["connection"] == "Connected"
            a.stop()
            b.stop()
            assert _data_digest(a) == _data_digest(b)
        finally:
            a.stop()
            b.stop()


def _link_error(r: Replica) -> str:
    """The last error, unless it is only "B was not listening yet"."""
    err = str(r.status()["last_error"])
    return "" if err.startswith("connect ") else err


def _refused(tmp_path: Path, args_a: list[str], args_b: list[str]) -> tuple[str, str]:
    """Start A (Primary, dials: lower address) and B; both must report an error and stay
    unconnected; B's data must be untouched. Returns (A's error, B's error)."""
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    with net_pair() as net:
        a = Replica("a", net.ns[0], net.ip[0], net.ip[1], tmp_path, SIZE)
        b = Replica("b", net.ns[1], net.ip[1], net.ip[0], tmp_path, SIZE)
        try:
            a.create()
            b.create()
            digest_b = _prefill(b)
            a.start("primary", str(secret), "--force", *args_a)
            b.start("secondary", str(secret), *args_b)
            err_a = wait_for(lambda: _link_error(a), 15, "A's error")
            err_b = wait_for(lambda: _link_error(b), 15, "B's error")
            for r in (a, b):
                st = r.status()
                assert st["connection"] != "Connected" and st["last_sync"] is None
                assert st["tls"] is None
            b.stop()
            assert _data_digest(b) == digest_b, "a refused peer must not touch data"
            return err_a, err_b
        finally:
            a.stop()
            b.stop()


def test_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    tls_a, _, rogue_b = _pki(tmp_path)
    err_a, err_b = _refused(tmp_path, tls_a.args(), rogue_b.args())
    assert "peer certificate rejected" in err_a and "--tls-ca" in err_a, err_a
    assert "the peer closed the connection" in err_b and rogue_b.cert in err_b, err_b


def test_peer_name_mismatch_is_refused(tmp_path: Path) -> None:
    tls_a, tls_b, _ = _pki(tmp_path)
    err_a, err_b = _refused(tmp_path, tls_a.args("repl-c"), tls_b.args())
    assert "not --tls-peer-name 'repl-c'" in err_a, err_a
    assert "peer refused" in err_b and "not --tls-peer-name 'repl-c'" in err_b, err_b


@pytest.mark.parametrize("tls_side", ["dialer", "acceptor"])
def test_tls_on_one_side_only_is_refused(tmp_path: Path, tls_side: str) -> None:
    tls_a, tls_b, _ = _pki(tmp_path)
    if tls_side == "dialer":  # A dials (lower address)
        err_tls, err_plain = _refused(tmp_path, tls_a.args(), [])
    else:
        err_plain, err_tls = _refused(tmp_path, [], tls_b.args())
    assert "peer speaks plain TCP?" in err_tls and "--tls-" in err_tls, err_tls
    assert "speak" in err_plain and "TLS" in err_plain and "--tls-" in err_plain, err_plain
