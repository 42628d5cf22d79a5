"""The cluster CA and the certificates it issues."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.bootstrap import pki


def cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def ekus(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_ca_is_p256_for_ten_years() -> None:
    ca = pki.create_ca("c1")
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey) and ca.key.curve.name == "secp256r1"
    life = ca.cert.not_valid_after_utc - ca.cert.not_valid_before_utc
    assert datetime.timedelta(days=3649) < life < datetime.timedelta(days=3651)
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_init_pki_writes_files_keys_0600_and_refuses_overwrite(tmp_path: Path) -> None:
    paths = pki.PKIPaths(tmp_path / "pki")
    ca = pki.init_pki(paths, "c1", "host-m", ["10.0.0.11"])
    for key in (paths.ca_key, paths.server_key, paths.client_key, paths.admin_key):
        assert Path(key).stat().st_mode & 0o777 == 0o600
    assert Path(paths.ca_cert).stat().st_mode & 0o777 == 0o644
    server = pki.load_cert(paths.server_cert)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.0.0.11"),
        ipaddress.ip_address("127.0.0.1"),
    }
    assert set(sans.get_values_for_type(x509.DNSName)) == {"host-m", "localhost"}
    assert ekus(server) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    client = pki.load_cert(paths.client_cert)
    assert cn(client) == "node:host-m" and ekus(client) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cn(pki.load_cert(paths.admin_cert)) == "admin"
    for cert in (server, client):
        cert.verify_directly_issued_by(ca.cert)
    with pytest.raises(pki.PKIError, match="already has a cluster CA"):
        pki.init_pki(paths, "c1", "host-m", ["10.0.0.11"])


def test_csr_signing_ignores_requested_subject(tmp_path: Path) -> None:
    ca = pki.create_ca("c1")
    key = pki.new_key()
    public = pki.csr_public_key(pki.make_csr(key, "admin-please"), "client CSR")
    cert = pki.issue_node_client(ca, public, "host-s")
    assert cn(cert) == "node:host-s"
    assert cert.public_key() == key.public_key()


def test_bad_csrs_are_refused() -> None:
    with pytest.raises(pki.PKIError, match="server CSR: not a PEM"):
        pki.csr_public_key(b"hello", "server CSR")
    rsa_free = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    )
    from cryptography.hazmat.primitives import hashes

    p384 = rsa_free.sign(ec.generate_private_key(ec.SECP384R1()), hashes.SHA256())
    from cryptography.hazmat.primitives.serialization import Encoding

    with pytest.raises(pki.PKIError, match="P-256"):
        pki.csr_public_key(p384.public_bytes(Encoding.PEM), "client CSR")


def test_fingerprint_is_sha256_of_der() -> None:
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    ca = pki.create_ca("c1")
    want = hashlib.sha256(ca.cert.public_bytes(Encoding.DER)).hexdigest()
    assert pki.fingerprint(ca.cert) == want == pki.fingerprint_pem(pki.cert_pem(ca.cert))


def test_missing_ca_key_names_the_fix(tmp_path: Path) -> None:
    paths = pki.PKIPaths(tmp_path)
    ca = pki.create_ca("c1")
    pki.write_public(paths.ca_cert, pki.cert_pem(ca.cert))
    with pytest.raises(pki.PKIError, match="node holding the CA key"):
        pki.load_ca(paths)
