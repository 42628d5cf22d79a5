"""Simulated BMCs on loopback for the fence device tests: an OpenIPMI `ipmi_sim` whose
power is a file, and a sushy-emulator (Redfish) with its fake driver.

Each runs from its own temporary directory on a free 127.0.0.1 port, is started as our
child in its own session and is killed by PID.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt

from lab.bmc import EMU, Bmc, lan_conf

CHASSIS = """#!/bin/sh
# ipmi_sim's chassis_control protocol: get power -> power:0|1; set power 0|1.
state="$(dirname "$0")/power"
[ -f "$state" ] || echo 1 > "$state"
case "$1" in
  get) echo "power:$(cat "$state")" ;;
  set) [ "$2" = power ] && echo "$3" > "$state" ;;
esac
exit 0
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class IpmiSim:
    """ipmi_sim on 127.0.0.1:<free port>, user admin, power kept in `power` (1 = on)."""

    def __init__(self, directory: Path, username: str = "admin") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = secrets.token_hex(8)  # IPMI 1.5 passwords: at most 16 bytes
        self.port = free_port(socket.SOCK_DGRAM)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def power_file(self) -> Path:
        return self.dir / "power"

    @property
    def power(self) -> str:
        return "on" if self.power_file.read_text().strip() == "1" else "off"

    def set_power(self, on: bool) -> None:
        self.power_file.write_text("1\n" if on else "0\n")

    def credentials(self, path: Path) -> Path:
        _private(path, f"username={self.username}\npassword={self.password}\n")
        return path

    def start(self) -> IpmiSim:
        chassis = self.dir / "chassis.sh"
        chassis.write_text(CHASSIS)
        chassis.chmod(0o700)
        self.set_power(True)
        # The lab's BMC configuration (lab/bmc.py), on loopback with this port.
        bmc = Bmc("test", "127.0.0.1", self.port, self.username, self.password, self.dir)
        _private(self.dir / "lan.conf", lan_conf(bmc, [str(chassis)]))
        (self.dir / "sim.emu").write_text(EMU)
        (self.dir / "state").mkdir(exist_ok=True)
        with (self.dir / "sim.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["ipmi_sim", "-n", "-c", str(self.dir / "lan.conf"),
                 "-f", str(self.dir / "sim.emu"), "-s", str(self.dir / "state")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        needle = f":{self.port:04X}"
        while time.monotonic() < deadline:
            lines = Path("/proc/net/udp").read_text().splitlines()[1:]
            if any(ln.split()[1].endswith(needle) for ln in lines):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"ipmi_sim did not listen on port {self.port}: see {self.dir}/sim.log")

    def stop(self) -> None:
        _kill(self.proc)
        self.proc = None


SYSTEM_UUID = "9c1f3d52-2a4b-4c1e-9d0a-5b7e8f6a1c01"


class SushyEmulator:
    """sushy-emulator with its fake driver on http://127.0.0.1:<free port>, basic auth
    (bcrypt htpasswd), one system named `node-b`."""

    def __init__(self, directory: Path, username: str = "admin", tls: bool = False) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.tls = tls
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.uuid = SYSTEM_UUID
        self.name = "node-b"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def credentials(self, path: Path) -> Path:
        _private(path, f"username={self.username}\npassword={self.password}\n")
        return path

    def start(self) -> SushyEmulator:
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        _private(self.dir / "htpasswd", f"{self.username}:{hashed}\n")
        (self.dir / "state").mkdir(exist_ok=True)
        systems = [{"uuid": self.uuid, "name": self.name, "power_state": "On",
                    "external_notifier": False, "nics": []}]  # fmt: skip
        (self.dir / "emulator.conf").write_text(
            f"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n"
            f"SUSHY_EMULATOR_LISTEN_PORT = {self.port}\n"
            f"SUSHY_EMULATOR_AUTH_FILE = '{self.dir / 'htpasswd'}'\n"
            f"SUSHY_EMULATOR_STATE_DIR = '{self.dir / 'state'}'\n"
            "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
            f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}\n"
        )
        emulator = str(Path(sys.executable).parent / "sushy-emulator")
        argv = [emulator, "--config", str(self.dir / "emulator.conf"), "--fake"]
        if self.tls:
            cert, key = _self_signed(self.dir)
            argv += ["--ssl-certificate", str(cert), "--ssl-key", str(key)]
        with (self.dir / "emulator.log").open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(
                    f"{self.scheme}://127.0.0.1:{self.port}/redfish/v1/",
                    timeout=1,
                    context=ssl._create_unverified_context() if self.tls else None,
                )
                return self
            except urllib.error.HTTPError:
                return self  # it answers (401 without credentials)
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sushy-emulator did not answer: see {self.dir}/emulator.log")

    def stop(self) -> None:
        _kill(self.proc)
        self.proc = None


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as a BMC ships with."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmc")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _private(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode())  # fmt: skip
    return cert_path, key_path
