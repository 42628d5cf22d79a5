"""Optional TLS for the replication link: mutual TLS 1.3 against one CA.

Replicas are addressed by IP, so hostname checking is off: the peer's chain is verified
against ``--tls-ca`` and, with ``--tls-peer-name``, its certificate's CN or a DNS SAN must
equal that name. The HMAC challenge still runs inside TLS: the CA says "a replica of this
cluster", the shared secret says "a replica of this volume".

A TLS side and a plaintext side cannot talk; each names the likely cause (``explain``).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

from blockrepl.errors import BlockReplError
from blockrepl.replication import wire

HINT = "check --tls-cert/--tls-key/--tls-ca on both replicas"
# A TLS record starts with its content type (0x16 handshake, 0x15 alert) and major version 3.
_TLS_RECORD_REPRS = ("b'\\x16\\x03", "b'\\x15\\x03")
# OpenSSL reasons for "the bytes from the peer are not TLS".
_NOT_TLS = {
    "WRONG_VERSION_NUMBER",
    "HTTP_REQUEST",
    "PACKET_LENGTH_TOO_LONG",
    "RECORD_LAYER_FAILURE",
}
# Alerts the peer sends when it rejects our certificate.
_REJECTED = {
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "TLSV1_ALERT_DECRYPT_ERROR",
}


@dataclass(frozen=True)
class ReplTLS:
    cert: str
    key: str
    ca: str
    peer_name: str | None = None


class TLSConfigError(BlockReplError):
    """A --tls-* option is incomplete, or names a file that cannot be used."""


class TLSPeerError(BlockReplError):
    """The TLS handshake failed, or the peer's certificate is not --tls-peer-name."""


def from_options(
    cert: str | None, key: str | None, ca: str | None, peer_name: str | None = None
) -> ReplTLS | None:
    given = {"--tls-cert": cert, "--tls-key": key, "--tls-ca": ca}
    missing = [opt for opt, value in given.items() if not value]
    if len(missing) == len(given):
        if peer_name:
            raise TLSConfigError("--tls-peer-name needs --tls-cert, --tls-key and --tls-ca")
        return None
    if missing:
        raise TLSConfigError(
            f"TLS needs --tls-cert, --tls-key and --tls-ca together: {', '.join(missing)} "
            "missing (give all three, or none for plain TCP)"
        )
    assert cert and key and ca
    return ReplTLS(cert, key, ca, peer_name or None)


def add_serve_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--tls-cert", metavar="FILE", help="TLS on the replication link: PEM cert")
    group.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert (PEM)")
    group.add_argument("--tls-ca", metavar="FILE", help="CA that issued both replicas' certs")
    group.add_argument(
        "--tls-peer-name",
        metavar="NAME",
        help="also require the peer certificate's CN or a DNS SAN to be NAME",
    )


def config_from_args(args: argparse.Namespace) -> ReplTLS | None:
    """ReplConfig's tls field; the files are checked now, before anything starts."""
    cfg = from_options(args.tls_cert, args.tls_key, args.tls_ca, args.tls_peer_name)
    if cfg is not None:
        contexts(cfg)
    return cfg


def _check_readable(option: str, path: str, marker: str) -> None:
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise TLSConfigError(f"{option} {path}: {exc.strerror}") from None
    if marker.encode() not in text:
        raise TLSConfigError(f"{option} {path}: no PEM '{marker}' block in the file")


def _context(purpose: int, tls: ReplTLS) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # replicas are addressed by IP; see check_peer
    ctx.verify_mode = ssl.CERT_REQUIRED  # for the server: require a client certificate
    try:
        ctx.load_verify_locations(cafile=tls.ca)
    except ssl.SSLError as exc:
        raise TLSConfigError(f"--tls-ca {tls.ca}: not a usable CA certificate ({exc})") from None
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
    except ssl.SSLError as exc:
        raise _chain_error(tls, exc) from None
    return ctx


def _chain_error(tls: ReplTLS, exc: ssl.SSLError) -> TLSConfigError:
    if exc.reason == "KEY_VALUES_MISMATCH":
        return TLSConfigError(
            f"--tls-key {tls.key} is not the private key of --tls-cert {tls.cert} "
            "(key values mismatch): give the key the certificate was issued for"
        )
    try:  # which of the two files is unusable?
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=tls.cert)
    except ssl.SSLError:
        return TLSConfigError(f"--tls-cert {tls.cert}: not a usable PEM certificate ({exc})")
    return TLSConfigError(f"--tls-key {tls.key}: not a usable PEM private key ({exc})")


def contexts(tls: ReplTLS) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context for accepted peers, client context for dialing)."""
    _check_readable("--tls-ca", tls.ca, "CERTIFICATE-----")
    _check_readable("--tls-cert", tls.cert, "CERTIFICATE-----")
    _check_readable("--tls-key", tls.key, "PRIVATE KEY-----")
    return _context(ssl.PROTOCOL_TLS_SERVER, tls), _context(ssl.PROTOCOL_TLS_CLIENT, tls)


def common_name(cert: dict[str, Any]) -> str:
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


def check_peer(cert: dict[str, Any], peer_name: str | None) -> str:
    """The peer certificate's CN, after checking it against --tls-peer-name."""
    cn = common_name(cert)
    if peer_name is None:
        return cn
    dns = [str(v) for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    if peer_name != cn and peer_name not in dns:
        raise TLSPeerError(
            f"peer certificate is for CN={cn!r} DNS={dns}, not --tls-peer-name {peer_name!r}"
        )
    return cn


def session_info(writer: asyncio.StreamWriter, peer_name: str | None) -> dict[str, Any]:
    """What status shows about an established TLS connection (raises TLSPeerError)."""
    obj = writer.get_extra_info("ssl_object")
    if not isinstance(obj, ssl.SSLObject):
        raise TLSPeerError("the connection is not TLS although --tls-* is configured")
    cert = obj.getpeercert()
    cn = check_peer(cert or {}, peer_name)
    cipher = obj.cipher()
    return {"version": obj.version(), "peer": cn, "cipher": cipher[0] if cipher else None}


def handshake_error(exc: BaseException, tls: ReplTLS) -> str:
    """A failed TLS handshake (or a TLS alert right after it) in terms of the options."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS: peer certificate rejected ({exc.verify_message}): it must be issued by "
            f"the CA in --tls-ca {tls.ca}"
        )
    reason = getattr(exc, "reason", None)
    if reason in _REJECTED:
        return (
            f"TLS: the peer rejected this replica's certificate ({reason}): --tls-cert "
            f"{tls.cert} must be issued by the CA in the peer's --tls-ca"
        )
    if reason in _NOT_TLS:
        return f"TLS handshake failed ({reason}): peer speaks plain TCP? {HINT}"
    if isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)):
        # asyncio drops the connection without sending OpenSSL's alert: all we see is EOF.
        return (
            f"TLS handshake failed: the peer closed the connection ({type(exc).__name__}): "
            f"does its --tls-ca hold the CA that issued --tls-cert {tls.cert}? {HINT}"
        )
    if isinstance(exc, TimeoutError):
        return f"TLS handshake timed out: {HINT}"
    return f"TLS handshake failed: {exc}: {HINT}"


def plaintext_error(exc: BaseException, authenticated: bool) -> str | None:
    """On a side without TLS: a better message if the failure looks like a TLS peer."""
    if isinstance(exc, wire.BadMagic) and any(r in str(exc) for r in _TLS_RECORD_REPRS):
        return f"peer speaks TLS (it sent a TLS record, not a blockrepl frame)? {HINT}"
    if not authenticated and isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)):
        return f"peer closed the connection before authenticating: does it speak TLS? {HINT}"
    return None


def explain(exc: BaseException, tls: ReplTLS | None, authenticated: bool) -> str | None:
    """A clearer message for a session failure that TLS (on one side or both) explains."""
    if tls is None:
        return plaintext_error(exc, authenticated)
    if isinstance(exc, ssl.SSLError):
        return handshake_error(exc, tls)
    if not authenticated and isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)):
        # TLS 1.3: the client's handshake is done before the server checks its certificate.
        return f"connection closed during authentication: the peer may reject our TLS; {HINT}"
    return None


def dial_error(exc: OSError, tls: ReplTLS | None) -> str | None:
    """A failed dial that is the TLS handshake's fault (None: the TCP connect failed)."""
    if tls is not None and isinstance(exc, (ssl.SSLError, ConnectionResetError)):
        return handshake_error(exc, tls)
    return None


async def accept(
    writer: asyncio.StreamWriter, ctx: ssl.SSLContext, tls: ReplTLS, timeout: float
) -> None:
    """Server side of the handshake on an accepted connection. Done here, not by
    start_server(ssl=...), so that a failed handshake is reported instead of dropped."""
    try:
        await writer.start_tls(ctx, ssl_handshake_timeout=timeout)
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
        raise TLSPeerError(handshake_error(exc, tls)) from None
