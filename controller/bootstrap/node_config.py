"""/etc/vigil/node.yaml: what one node's agent needs to run its etcd member.

Written by ``ha cluster init`` / ``ha cluster join``, read by ``vigil-agent``. Also
writes the client config ``ha`` reads (/etc/vigil/client.yaml) with the admin cert.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller.api.settings_file import read_settings
from controller.bootstrap.etcd_config import DEFAULT_DATA_DIR, EtcdMemberConfig, EtcdTLS
from controller.bootstrap.pki import DEFAULT_PKI_DIR, PKIPaths
from controller.store.etcd_channel import TLSFiles

DEFAULT_NODE_CONFIG = Path("/etc/vigil/node.yaml")
DEFAULT_CLIENT_CONFIG = Path("/etc/vigil/client.yaml")
CLIENT_PORT = 2379
PEER_PORT = 2380
JOIN_PORT = 2378
METRICS_PORT = 9464


class EtcdSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_urls: list[str] = Field(min_length=1)
    peer_url: str
    initial_cluster: str
    initial_cluster_state: Literal["new", "existing"]
    initial_cluster_token: str
    heartbeat_ms: int = 50
    election_ms: int = 250


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` with HOST an IP address (``[v6]`` in brackets); ValueError otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} must be HOST:PORT, e.g. 127.0.0.1:{METRICS_PORT}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (a name is not accepted)") from None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {port_text!r} must be a number from 1 to 65535")
    return host, int(port_text)


class MetricsSettings(BaseModel):
    """The agent's Prometheus endpoint (docs/metrics.md)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="Serve /metrics.")
    listen: str = Field(
        default=f"127.0.0.1:{METRICS_PORT}",
        description="HOST:PORT of /metrics; loopback unless the node's address is given.",
    )
    web_config_file: str | None = Field(
        default=None,
        description="A Prometheus exporter-toolkit web config file: tls_server_config "
        "(cert_file, key_file) and basic_auth_users (bcrypt hashes).",
    )
    status_page: bool = Field(
        default=True,
        description="Serve the read-only status page (/, /status, /status.json) on the same "
        "listener, TLS and users as /metrics.",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node: str = Field(description="This node's name, as in the Cluster spec.")
    cluster: str = Field(description="Cluster name: the store prefix /vigil/<cluster>/.")
    address: str = Field(description="This node's cluster address (Cluster spec nodes[].address).")
    data_dir: str = str(DEFAULT_DATA_DIR)
    pki_dir: str = str(DEFAULT_PKI_DIR)
    etcd: EtcdSettings
    join_listen: str | None = Field(
        default=None,
        description="HOST:PORT of the join endpoint; served by the agent where ca.key exists.",
    )
    client_config: str | None = Field(
        default=None,
        description="The client config `ha` reads on this node; the agent keeps its "
        "endpoints equal to the etcd members'.",
    )
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    state: Literal["member", "left"] = "member"
    seed_cluster: dict[str, Any] | None = Field(
        default=None,
        description="The Cluster document `ha cluster init` was given; put into the store "
        "by the first member once it is up, unless a Cluster is already there.",
    )

    @property
    def pki(self) -> PKIPaths:
        return PKIPaths(Path(self.pki_dir))

    def client_tls(self) -> TLSFiles:
        """The node's own client identity towards etcd (CN=node:<name>)."""
        p = self.pki
        return TLSFiles(p.ca_cert, p.client_key, p.client_cert)

    def etcd_tls(self) -> EtcdTLS:
        p = self.pki
        return EtcdTLS(p.ca_cert, p.server_cert, p.server_key, p.client_cert, p.client_key)

    def member_config(self, **overrides: Any) -> EtcdMemberConfig:
        """What EtcdMember needs; overrides (log_file, binary, ...) are passed through."""
        e = self.etcd
        return EtcdMemberConfig(
            name=self.node,
            client_urls=tuple(e.client_urls),
            peer_url=e.peer_url,
            tls=self.etcd_tls(),
            initial_cluster=e.initial_cluster,
            initial_cluster_token=e.initial_cluster_token,
            initial_cluster_state=e.initial_cluster_state,
            data_dir=Path(self.data_dir),
            heartbeat_ms=e.heartbeat_ms,
            election_ms=e.election_ms,
            **overrides,
        )


def url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def load_node_config(path: Path = DEFAULT_NODE_CONFIG) -> NodeConfig:
    return read_settings(
        path,
        NodeConfig,
        "node config",
        "run `ha cluster init` (first node) or `ha cluster join` on this node first",
    )


def _write(path: Path, data: dict[str, Any], mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def save_node_config(cfg: NodeConfig, path: Path = DEFAULT_NODE_CONFIG) -> None:
    _write(path, cfg.model_dump(exclude_none=True), 0o600)


def save_client_config(cfg: NodeConfig, endpoints: list[str], path: Path) -> None:
    """The file ``ha`` reads (controller/store/client_config.py): every member's endpoint and
    the admin certificate."""
    p = cfg.pki
    _write(
        path,
        {
            "endpoints": endpoints,
            "cluster": cfg.cluster,
            "tls": {"ca": p.ca_cert, "cert": p.admin_cert, "key": p.admin_key},
        },
        0o600,
    )


def update_client_endpoints(path: Path, endpoints: list[str]) -> bool:
    """Make the client config at ``path`` list ``endpoints``, keeping the rest of it; True if
    the file changed. A missing or unreadable file is left alone: the administrator owns it."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(data, dict) or data.get("endpoints") == endpoints:
        return False
    data["endpoints"] = endpoints
    _write(path, data, 0o600)
    return True


def parse_initial_cluster(text: str) -> dict[str, str]:
    """``a=https://h:2380,b=...`` -> {name: peer url}."""
    out: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        name, sep, peer = part.partition("=")
        if not sep or not name or not peer:
            raise ValueError(f"initial cluster entry {part!r} must be NAME=PEER_URL")
        out[name] = peer
    return out


def format_initial_cluster(members: dict[str, str]) -> str:
    return ",".join(f"{name}={peer}" for name, peer in sorted(members.items()))
