"""A real etcd (Debian's /usr/bin/etcd) as a child process, for tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

ETCD_BINARY = "/usr/bin/etcd"


@dataclass(frozen=True)
class TestPKI:
    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_test_pki(directory: Path) -> TestPKI:
    """A throw-away CA, a server cert for 127.0.0.1 and a client cert (EC P-256)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("vigil-test-ca"))
        .issuer_name(name("vigil-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca_key, ca)
    for stem, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(f"vigil-test-{stem}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write(stem, key, cert)
    d = str(directory)
    return TestPKI(
        f"{d}/ca.crt", f"{d}/server.crt", f"{d}/server.key", f"{d}/client.crt", f"{d}/client.key"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """One-member etcd on free loopback ports, data on /dev/shm; stop() and restart()."""

    def __init__(
        self, *, binary: str = ETCD_BINARY, name: str = "vigil-test", tls: bool = False
    ) -> None:
        self.binary = binary
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.workdir = Path(tempfile.mkdtemp(prefix="vigil-etcd-", dir=base))
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "etcd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # With tls, clients must use https and a client certificate signed by pki.ca_cert.
        self.pki = make_test_pki(self.workdir) if tls else None
        self.initial_cluster = f"{name}=http://127.0.0.1:{self.peer_port}"  # see etcd_trio
        self.cluster_token = f"vigil-test-{uuid.uuid4().hex}"

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.pki else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    def _args(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-token", self.cluster_token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "50",
            "--election-timeout", "250",
            "--max-txn-ops", "20000",
            "--max-request-bytes", str(16 * 1024 * 1024),
            "--logger", "zap",
            *self._tls_args(),
        ]  # fmt: skip

    def _tls_args(self) -> list[str]:
        if self.pki is None:
            return []
        return [
            "--cert-file", self.pki.server_cert,
            "--key-file", self.pki.server_key,
            "--trusted-ca-file", self.pki.ca_cert,
            "--client-cert-auth",
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> None:
        self.launch()
        self.wait_healthy(timeout)

    def launch(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"etcd already running as pid {self.proc.pid}")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._args(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def wait_healthy(self, timeout: float = 10.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"etcd exited with status {self.proc.returncode} during startup")
            if self.healthy():
                return
            time.sleep(0.02)
        self.stop()
        self._fail(f"etcd not healthy within {timeout}s")

    def _fail(self, why: str) -> None:
        tail = self.log_tail()
        raise RuntimeError(f"{why} (ports {self.client_port}/{self.peer_port}); log tail:\n{tail}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def healthy(self) -> bool:
        ctx = None
        if self.pki is not None:
            ctx = ssl.create_default_context(cafile=self.pki.ca_cert)
            ctx.load_cert_chain(self.pki.client_cert, self.pki.client_key)
        try:
            with urllib.request.urlopen(f"{self.endpoint}/health", timeout=0.5, context=ctx) as r:
                return b'"true"' in r.read()
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop, then start again on the same ports with the same data."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def etcd_trio() -> list[EtcdServer]:
    """Three members of one etcd cluster on loopback (not started: launch each, then
    wait_healthy; cleanup each)."""
    trio = [EtcdServer(name=f"vigil-test-{i}") for i in range(3)]
    initial = ",".join(m.initial_cluster for m in trio)
    for m in trio:
        m.initial_cluster = initial
        m.cluster_token = trio[0].cluster_token
    return trio
