"""tls.py: option checks, context building from files, peer checks, and error wording;
plus a TLS link over loopback (handshake, HMAC inside TLS, a big frame through the transport)."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blockrepl.replication import tls, wire
from blockrepl.replication.link import ReplicationLink
from blockrepl.replication.tls import ReplTLS, TLSConfigError, TLSPeerError
from blockrepl.replication.wire import MsgType
from tests.integration.blockrepl.tlscerts import TLSFiles, issue_replica, make_ca


@pytest.fixture
def pki_dir(tmp_path: Path) -> tuple[TLSFiles, TLSFiles, TLSFiles]:
    """Replicas a and b from one CA, and x from another CA."""
    ca, ca_path = make_ca(tmp_path / "ca1", "one")
    other, other_path = make_ca(tmp_path / "ca2", "two")
    a = issue_replica(ca, ca_path, tmp_path / "ca1", "a")
    b = issue_replica(ca, ca_path, tmp_path / "ca1", "b")
    x = issue_replica(other, other_path, tmp_path / "ca2", "x")
    return a, b, x


def _cfg(f: TLSFiles, peer_name: str | None = None) -> ReplTLS:
    return ReplTLS(f.cert, f.key, f.ca, peer_name)


# ---------------------------------------------------------------- options
def test_no_tls_options_means_plain_tcp() -> None:
    assert tls.from_options(None, None, None) is None


def test_all_three_options_give_a_config() -> None:
    assert tls.from_options("c", "k", "ca", "b") == ReplTLS("c", "k", "ca", "b")


@pytest.mark.parametrize(
    ("cert", "key", "ca", "missing"),
    [
        ("c", None, None, "--tls-key, --tls-ca missing"),
        (None, "k", "ca", "--tls-cert missing"),
        ("c", "k", None, "--tls-ca missing"),
    ],
)
def test_partial_tls_options_name_the_missing_one(
    cert: str | None, key: str | None, ca: str | None, missing: str
) -> None:
    with pytest.raises(TLSConfigError, match=missing):
        tls.from_options(cert, key, ca)


def test_peer_name_without_tls_is_an_error() -> None:
    with pytest.raises(TLSConfigError, match="--tls-peer-name needs"):
        tls.from_options(None, None, None, "b")


# ---------------------------------------------------------------- files
def test_contexts_are_mutual_tls13(pki_dir: tuple[TLSFiles, ...]) -> None:
    server, client = tls.contexts(_cfg(pki_dir[0]))
    for ctx in (server, client):
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
        assert ctx.verify_mode is ssl.CERT_REQUIRED
        assert ctx.check_hostname is False
    assert server.get_ca_certs()[0]["subject"] == ((("commonName", "vigil-ca:one"),),)


@pytest.mark.parametrize("which", ["cert", "key", "ca"])
def test_missing_file_is_named(pki_dir: tuple[TLSFiles, ...], tmp_path: Path, which: str) -> None:
    a = pki_dir[0]
    gone = str(tmp_path / "nope.pem")
    files = {"cert": a.cert, "key": a.key, "ca": a.ca, which: gone}
    with pytest.raises(TLSConfigError, match=f"--tls-{which} {gone}: No such file"):
        tls.contexts(ReplTLS(files["cert"], files["key"], files["ca"]))


def test_unreadable_file_is_named(pki_dir: tuple[TLSFiles, ...], tmp_path: Path) -> None:
    a = pki_dir[0]
    # Tests run as root, which reads any mode: a directory is unreadable for everyone.
    with pytest.raises(TLSConfigError, match=f"--tls-key {tmp_path}: Is a directory"):
        tls.contexts(ReplTLS(a.cert, str(tmp_path), a.ca))


def test_file_without_pem_block_is_named(pki_dir: tuple[TLSFiles, ...], tmp_path: Path) -> None:
    a = pki_dir[0]
    junk = tmp_path / "junk"
    junk.write_text("hello\n")
    with pytest.raises(TLSConfigError, match=f"--tls-ca {junk}: no PEM 'CERTIFICATE-----'"):
        tls.contexts(ReplTLS(a.cert, a.key, str(junk)))


def test_key_of_another_certificate_is_a_mismatch(pki_dir: tuple[TLSFiles, ...]) -> None:
    a, b, _ = pki_dir
    with pytest.raises(TLSConfigError, match=f"--tls-key {b.key} is not the private key of"):
        tls.contexts(ReplTLS(a.cert, b.key, a.ca))


def _corrupt(src: str, dst: Path) -> str:
    """Same PEM markers, broken base64 body."""
    lines = Path(src).read_text().splitlines()
    dst.write_text("\n".join([lines[0], "!!!!not base64!!!!", lines[-1]]) + "\n")
    return str(dst)


def test_corrupt_certificate_is_named(pki_dir: tuple[TLSFiles, ...], tmp_path: Path) -> None:
    a = pki_dir[0]
    bad = _corrupt(a.cert, tmp_path / "bad.crt")
    with pytest.raises(TLSConfigError, match=f"--tls-cert {bad}: not a usable PEM certificate"):
        tls.contexts(ReplTLS(bad, a.key, a.ca))


def test_corrupt_key_is_named(pki_dir: tuple[TLSFiles, ...], tmp_path: Path) -> None:
    a = pki_dir[0]
    bad = _corrupt(a.key, tmp_path / "bad.key")
    with pytest.raises(TLSConfigError, match=f"--tls-key {bad}: not a usable PEM private key"):
        tls.contexts(ReplTLS(a.cert, bad, a.ca))


def test_corrupt_ca_is_named(pki_dir: tuple[TLSFiles, ...], tmp_path: Path) -> None:
    a = pki_dir[0]
    bad = _corrupt(a.ca, tmp_path / "bad-ca.crt")
    with pytest.raises(TLSConfigError, match=f"--tls-ca {bad}: not a usable CA certificate"):
        tls.contexts(ReplTLS(a.cert, a.key, bad))


# ---------------------------------------------------------------- peer name
CERT = {
    "subject": ((("commonName", "replica-b"),),),
    "subjectAltName": (("DNS", "b.example"), ("IP Address", "10.0.0.2")),
}


def test_peer_name_matches_cn_or_dns_san() -> None:
    assert tls.check_peer(CERT, None) == "replica-b"
    assert tls.check_peer(CERT, "replica-b") == "replica-b"
    assert tls.check_peer(CERT, "b.example") == "replica-b"


def test_peer_name_mismatch_is_refused() -> None:
    # An IP SAN is not a name: replicas are addressed by IP, the name is what is checked.
    with pytest.raises(TLSPeerError, match="not --tls-peer-name '10.0.0.2'"):
        tls.check_peer(CERT, "10.0.0.2")


# ---------------------------------------------------------------- error wording
def _client_hello() -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_plaintext_side_recognises_a_tls_client_hello() -> None:
    hello = _client_hello()
    with pytest.raises(wire.BadMagic) as err:
        wire.decode_header(hello[: wire.HEADER_SIZE], authenticated=False)
    why = tls.explain(err.value, None, authenticated=False)
    assert why is not None and "peer speaks TLS" in why and "--tls-" in why


def test_plaintext_side_other_bad_magic_is_not_blamed_on_tls() -> None:
    with pytest.raises(wire.BadMagic) as err:
        wire.decode_header(b"GET / HTTP/1.1\r\n"[: wire.HEADER_SIZE], authenticated=False)
    assert tls.explain(err.value, None, authenticated=False) is None


def test_plaintext_side_eof_before_auth_hints_tls() -> None:
    why = tls.explain(asyncio.IncompleteReadError(b"", 16), None, authenticated=False)
    assert why is not None and "speak TLS" in why
    assert tls.explain(asyncio.IncompleteReadError(b"", 16), None, authenticated=True) is None


# ---------------------------------------------------------------- over loopback
Server = tuple[asyncio.Server, "asyncio.Queue[ReplicationLink | BaseException]"]


@pytest.fixture
async def tls_server(pki_dir: tuple[TLSFiles, ...]) -> AsyncIterator[Server]:
    """A loopback listener for replica b; each accepted handshake's link (or error) queued."""
    b = _cfg(pki_dir[1])
    server_ctx, _ = tls.contexts(b)
    got: asyncio.Queue[ReplicationLink | BaseException] = asyncio.Queue()

    async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await tls.accept(writer, server_ctx, b, 5)
        except TLSPeerError as exc:
            writer.close()
            await got.put(exc)
            return
        await got.put(ReplicationLink(reader, writer))

    server = await asyncio.start_server(on_accept, "127.0.0.1", 0)
    try:
        yield server, got
    finally:
        server.close()
        await server.wait_closed()


async def test_tls_link_authenticates_and_carries_big_frames(
    pki_dir: tuple[TLSFiles, ...], tls_server: Server
) -> None:
    a = _cfg(pki_dir[0], peer_name="b")
    _, client_ctx = tls.contexts(a)
    server, got = tls_server
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname="b")
    dialer = ReplicationLink(r, w)
    acceptor = await asyncio.wait_for(got.get(), 5)
    assert isinstance(acceptor, ReplicationLink)
    assert tls.session_info(dialer.writer, "b")["peer"] == "b"
    info = tls.session_info(acceptor.writer, "a")
    assert info["version"] == "TLSv1.3" and info["peer"] == "a"
    secret = os.urandom(32)
    await asyncio.gather(
        dialer.authenticate(secret, True, 5), acceptor.authenticate(secret, False, 5)
    )
    payload = os.urandom(1024 * 1024)  # above CORK_MAX: the writev path must not bypass TLS
    dialer.send(MsgType.DATA, payload)
    await dialer.drain()
    assert await asyncio.wait_for(acceptor.recv(), 5) == (MsgType.DATA, payload)
    await dialer.close()
    await acceptor.close()


async def test_certificate_from_another_ca_is_refused_on_both_sides(
    pki_dir: tuple[TLSFiles, ...], tls_server: Server
) -> None:
    x = _cfg(pki_dir[2])
    _, client_ctx = tls.contexts(x)
    server, got = tls_server
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname="")
    assert "must be issued by the CA in --tls-ca" in tls.handshake_error(err.value, x)
    refused = await asyncio.wait_for(got.get(), 5)
    assert isinstance(refused, TLSPeerError)
    # the client drops the connection without an alert: the server names its own cert
    assert "the peer closed the connection" in str(refused), refused
    assert f"--tls-cert {pki_dir[1].cert}" in str(refused)


async def test_plaintext_client_is_refused_by_tls_server(tls_server: Server) -> None:
    server, got = tls_server
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    link = ReplicationLink(r, w)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError, TimeoutError)) as err:
        await link.authenticate(b"k" * 32, True, 5)
    refused = await asyncio.wait_for(got.get(), 5)
    assert isinstance(refused, TLSPeerError)
    assert "peer speaks plain TCP?" in str(refused), refused
    why = tls.explain(err.value, None, link.authenticated)
    assert why is not None and "speak TLS" in why
    await link.close()
