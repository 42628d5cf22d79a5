"""The cluster's certificate authority and the certificates it issues (EC P-256).

One CA per cluster signs: each node's etcd server+peer certificate, each node's
client certificate (CN=node:<name>, used by its agent) and admin client certificates
(CN=admin, used by ``ha``). Joining nodes send CSRs, so their private keys never
leave them; the CA key stays on the node(s) that serve joins.

Files under the PKI dir (default /etc/vigil/pki) are named by PKIPaths; keys are 0600.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_PKI_DIR = Path("/etc/vigil/pki")
CA_DAYS = 3650
LEAF_DAYS = 3650
# Certificates are valid from a little before "now" so a peer with a slow clock accepts them.
_BACKDATE = datetime.timedelta(minutes=5)


class PKIError(Exception):
    """A PKI file is missing, unreadable or not what it should be."""


@dataclass(frozen=True)
class PKIPaths:
    """Where one node keeps its certificates and keys."""

    directory: Path

    def _p(self, name: str) -> str:
        return str(self.directory / name)

    @property
    def ca_cert(self) -> str:
        return self._p("ca.crt")

    @property
    def ca_key(self) -> str:
        return self._p("ca.key")

    @property
    def heartbeat_key(self) -> str:
        """The cluster key that authenticates heartbeats (Heartbeat's authkeys)."""
        return self._p("heartbeat.key")

    @property
    def server_cert(self) -> str:
        """etcd server and peer certificate of this node (also serves the join endpoint)."""
        return self._p("etcd-server.crt")

    @property
    def server_key(self) -> str:
        return self._p("etcd-server.key")

    @property
    def client_cert(self) -> str:
        """This node's agent's client certificate, CN=node:<name>."""
        return self._p("node-client.crt")

    @property
    def client_key(self) -> str:
        return self._p("node-client.key")

    @property
    def admin_cert(self) -> str:
        """Client certificate for ``ha`` on this node, CN=admin."""
        return self._p("admin.crt")

    @property
    def admin_key(self) -> str:
        return self._p("admin.key")

    def has_ca_key(self) -> bool:
        return Path(self.ca_key).is_file()


@dataclass(frozen=True)
class CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_ca(cluster: str, *, days: int = CA_DAYS) -> CA:
    key = new_key()
    now = datetime.datetime.now(datetime.UTC)
    subject = _name(f"vigil-ca:{cluster}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(cert, key)


def fingerprint(cert: x509.Certificate) -> str:
    """sha256 of the certificate's DER, lowercase hex: what a join token pins."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def fingerprint_pem(pem: bytes) -> str:
    return fingerprint(x509.load_pem_x509_certificate(pem))


def _sans(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    seen: set[str] = set()
    for n in names:
        if n in seen:
            continue
        seen.add(n)
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _usage(*, server: bool, client: bool) -> list[x509.ExtensionType]:
    ekus = []
    if server:
        ekus.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        ekus.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    return [
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=True,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        x509.ExtendedKeyUsage(ekus),
    ]


def issue(
    ca: CA,
    public_key: ec.EllipticCurvePublicKey,
    common_name: str,
    *,
    server: bool,
    client: bool,
    sans: Sequence[str] = (),
    days: int = LEAF_DAYS,
) -> x509.Certificate:
    """Sign a leaf certificate. The subject and SANs are the CA's choice, never a CSR's."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise PKIError("only EC keys are accepted (generate them with P-256)")
    now = datetime.datetime.now(datetime.UTC)
    not_after = min(now + datetime.timedelta(days=days), ca.cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    key_usage, eku = _usage(server=server, client=client)
    builder = builder.add_extension(key_usage, critical=True).add_extension(eku, critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(sans)), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def node_server_sans(node: str, addresses: Sequence[str]) -> list[str]:
    """SANs of a node's etcd server+peer certificate: its addresses, loopback, its name."""
    return [*addresses, "127.0.0.1", "localhost", node]


def issue_node_server(ca: CA, public_key: ec.EllipticCurvePublicKey, node: str,
                      addresses: Sequence[str]) -> x509.Certificate:  # fmt: skip
    # Peer traffic is mutual TLS, so the same certificate is a client too.
    return issue(ca, public_key, f"etcd:{node}", server=True, client=True,
                 sans=node_server_sans(node, addresses))  # fmt: skip


def issue_node_client(ca: CA, public_key: ec.EllipticCurvePublicKey, node: str) -> x509.Certificate:
    return issue(ca, public_key, f"node:{node}", server=False, client=True)


def issue_admin(ca: CA, public_key: ec.EllipticCurvePublicKey) -> x509.Certificate:
    return issue(ca, public_key, "admin", server=False, client=True)


# -- CSRs: how a joining node gets certificates without sending its keys ------------------


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(common_name))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_public_key(pem: bytes, what: str) -> ec.EllipticCurvePublicKey:
    """The public key of a PEM CSR whose self-signature checks out."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as e:
        raise PKIError(f"{what}: not a PEM certificate signing request ({e})") from None
    if not csr.is_signature_valid:
        raise PKIError(f"{what}: the CSR's signature does not match its key")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise PKIError(f"{what}: the CSR must carry an EC P-256 key")
    return key


# -- files ---------------------------------------------------------------------------------


def write_private(path: str | Path, data: bytes) -> None:
    """Write a secret with mode 0600 from the start (never world-readable, even briefly)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, p)


def write_public(path: str | Path, data: bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, p)


def write_pair(cert_path: str, key_path: str, cert: x509.Certificate,
               key: ec.EllipticCurvePrivateKey) -> None:  # fmt: skip
    write_private(key_path, key_pem(key))
    write_public(cert_path, cert_pem(cert))


def load_cert(path: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except OSError as e:
        raise PKIError(f"cannot read certificate {path}: {e.strerror}") from None
    except ValueError as e:
        raise PKIError(f"{path} is not a PEM certificate: {e}") from None


def load_ca(paths: PKIPaths) -> CA:
    cert = load_cert(paths.ca_cert)
    try:
        key = serialization.load_pem_private_key(Path(paths.ca_key).read_bytes(), password=None)
    except OSError as e:
        raise PKIError(
            f"cannot read the CA key {paths.ca_key}: {e.strerror}; joins and certificates "
            "can only be issued on a node holding the CA key (the one `ha cluster init` ran on)"
        ) from None
    except ValueError as e:
        raise PKIError(f"{paths.ca_key} is not a PEM private key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{paths.ca_key}: the CA key must be an EC key")
    return CA(cert, key)


def init_pki(paths: PKIPaths, cluster: str, node: str, addresses: Sequence[str]) -> CA:
    """Create the CA and this (first) node's certificates. Refuses to overwrite a CA."""
    if Path(paths.ca_cert).exists() or Path(paths.ca_key).exists():
        raise PKIError(
            f"{paths.ca_cert} already exists: this node already has a cluster CA. Remove "
            f"{paths.directory} to start over (this discards the cluster's identity)"
        )
    ca = create_ca(cluster)
    write_pair(paths.ca_cert, paths.ca_key, ca.cert, ca.key)
    write_private(paths.heartbeat_key, secrets.token_hex(32).encode())
    issue_local(ca, paths, node, addresses)
    return ca


def read_heartbeat_key(paths: PKIPaths) -> bytes:
    try:
        key = Path(paths.heartbeat_key).read_bytes().strip()
    except OSError as exc:
        raise PKIError(
            f"{paths.heartbeat_key}: cannot read the cluster's heartbeat key ({exc.strerror}); "
            "it is made by `ha cluster init` and handed out by `ha cluster join`"
        ) from None
    if len(key) < 32:
        raise PKIError(f"{paths.heartbeat_key}: too short to be a cluster key (< 32 bytes)")
    return key


def issue_local(ca: CA, paths: PKIPaths, node: str, addresses: Sequence[str]) -> None:
    """Write a node's server, client and admin certificates with keys made here."""
    server, client, admin = new_key(), new_key(), new_key()
    write_pair(paths.server_cert, paths.server_key,
               issue_node_server(ca, server.public_key(), node, addresses), server)  # fmt: skip
    write_pair(paths.client_cert, paths.client_key,
               issue_node_client(ca, client.public_key(), node), client)  # fmt: skip
    write_pair(paths.admin_cert, paths.admin_key, issue_admin(ca, admin.public_key()), admin)
