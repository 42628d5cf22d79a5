"""How a node's embedded etcd member is configured: its settings, its command line, and
the checks that turn etcd's log complaints into errors that name the fix.

Shared by ``ha cluster init|join|leave`` (which write and read these settings) and the
node agent's supervisor (nodeagent/etcd_member.py, which runs etcd with them).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

DEFAULT_DATA_DIR = Path("/var/lib/vigil/etcd")
DEFAULT_BINARY = "etcd"


class EtcdStartError(Exception):
    """etcd cannot be started; the message names the cause and the fix."""


@dataclass(frozen=True)
class EtcdTLS:
    ca_cert: str
    server_cert: str  # server and peer certificate of this member
    server_key: str
    client_cert: str  # used for health checks (the node's client certificate)
    client_key: str


@dataclass(frozen=True)
class EtcdMemberConfig:
    name: str
    client_urls: tuple[str, ...]
    peer_url: str
    tls: EtcdTLS
    initial_cluster: str
    initial_cluster_token: str
    initial_cluster_state: Literal["new", "existing"] = "new"
    data_dir: Path = DEFAULT_DATA_DIR
    heartbeat_ms: int = 50
    election_ms: int = 250
    max_txn_ops: int = 20000
    max_request_bytes: int = 16 * 1024 * 1024
    log_file: Path | None = None  # default: <data_dir>.log, beside the data dir
    binary: str = DEFAULT_BINARY
    extra_args: tuple[str, ...] = ()

    @property
    def log_path(self) -> Path:
        return self.log_file or self.data_dir.with_name(self.data_dir.name + ".log")


def etcd_args(cfg: EtcdMemberConfig, binary: str, *, force_new_cluster: bool = False) -> list[str]:
    """The etcd command line. With an existing data dir etcd ignores the initial-* flags."""
    clients = ",".join(cfg.client_urls)
    args = [
        binary,
        "--name", cfg.name,
        "--data-dir", str(cfg.data_dir),
        "--listen-client-urls", clients,
        "--advertise-client-urls", clients,
        "--listen-peer-urls", cfg.peer_url,
        "--initial-advertise-peer-urls", cfg.peer_url,
        "--heartbeat-interval", str(cfg.heartbeat_ms),
        "--election-timeout", str(cfg.election_ms),
        "--max-txn-ops", str(cfg.max_txn_ops),
        "--max-request-bytes", str(cfg.max_request_bytes),
        "--cert-file", cfg.tls.server_cert,
        "--key-file", cfg.tls.server_key,
        "--trusted-ca-file", cfg.tls.ca_cert,
        "--client-cert-auth",
        "--peer-cert-file", cfg.tls.server_cert,
        "--peer-key-file", cfg.tls.server_key,
        "--peer-trusted-ca-file", cfg.tls.ca_cert,
        "--peer-client-cert-auth",
        "--logger", "zap",
    ]  # fmt: skip
    if force_new_cluster:
        args.append("--force-new-cluster")
    else:
        args += [
            "--initial-cluster", cfg.initial_cluster,
            "--initial-cluster-token", cfg.initial_cluster_token,
            "--initial-cluster-state", cfg.initial_cluster_state,
        ]  # fmt: skip
    return args + list(cfg.extra_args)


# etcd's election timeout, from the Cluster's deadtime (ms). After a power loss every
# decision is a store write: etcd should have elected a new leader by the time the
# heartbeats declare its old one lost, or the failover waits for etcd's election (measured
# at tuned timings, deadtime 250 ms with etcd at 250 ms: 0.5-0.75 s instead of 0.3 s).
ELECTION_MAX_MS = 250  # what the shipped timings use (etcd's own default is 1000)
ELECTION_MIN_MS = 100  # below this, a busy machine would hold elections for nothing


def etcd_timing(deadtime: timedelta) -> tuple[int, int]:
    """etcd's heartbeat interval and election timeout in ms for a cluster's deadtime: the
    election timeout half the deadtime (etcd waits up to twice it before a vote), within
    ELECTION_MIN_MS..ELECTION_MAX_MS, and the heartbeat a fifth of it."""
    election = int(min(ELECTION_MAX_MS, max(ELECTION_MIN_MS, deadtime.total_seconds() * 500)))
    return election // 5, election


def check_config(cfg: EtcdMemberConfig) -> None:
    """Reject settings etcd would only complain about in its log."""
    if cfg.heartbeat_ms <= 0 or cfg.election_ms < 5 * cfg.heartbeat_ms:
        raise EtcdStartError(
            f"etcd timing heartbeat={cfg.heartbeat_ms}ms election={cfg.election_ms}ms: the "
            "election timeout must be at least 5x the heartbeat interval (e.g. 50/250)"
        )
    if not cfg.client_urls:
        raise EtcdStartError("etcd needs at least one client URL, e.g. https://10.0.0.1:2379")
    for url in (*cfg.client_urls, cfg.peer_url):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or not parts.port:
            raise EtcdStartError(
                f"etcd URL {url!r} must look like https://HOST:PORT (Vigil runs etcd with TLS only)"
            )
    if f"{cfg.name}=" not in cfg.initial_cluster:
        raise EtcdStartError(
            f"initial cluster {cfg.initial_cluster!r} does not name this member {cfg.name!r}"
        )


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 0


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            if e.errno == errno.EADDRNOTAVAIL:
                raise EtcdStartError(
                    f"cannot listen on {host}:{port}: the address is not on any interface of "
                    "this machine; fix the node's address in the Cluster spec / node config"
                ) from None
            raise
    return False
