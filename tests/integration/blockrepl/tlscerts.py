"""Test certificates for the replication link, issued by Vigil's cluster CA
(controller/bootstrap/pki.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.bootstrap import pki


@dataclass(frozen=True)
class TLSFiles:
    cert: str
    key: str
    ca: str

    def args(self, peer_name: str | None = None) -> list[str]:
        out = ["--tls-cert", self.cert, "--tls-key", self.key, "--tls-ca", self.ca]
        return out + (["--tls-peer-name", peer_name] if peer_name else [])


def make_ca(directory: Path, cluster: str) -> tuple[pki.CA, str]:
    """A fresh CA; its certificate is written to DIRECTORY/ca.crt."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = pki.create_ca(cluster)
    path = directory / "ca.crt"
    pki.write_public(path, pki.cert_pem(ca.cert))
    return ca, str(path)


def issue_replica(ca: pki.CA, ca_path: str, directory: Path, name: str) -> TLSFiles:
    """A server+client certificate for replica NAME (CN=NAME, DNS SAN NAME)."""
    key = pki.new_key()
    cert = pki.issue(ca, key.public_key(), name, server=True, client=True, sans=[name])
    files = TLSFiles(str(directory / f"{name}.crt"), str(directory / f"{name}.key"), ca_path)
    pki.write_pair(files.cert, files.key, cert, key)
    return files
