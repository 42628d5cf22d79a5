"""Where `ha` finds the store: flags, then environment, then the client config file."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from controller.api.errors import InputError
from controller.api.settings_file import read_settings
from controller.api.units import parse_duration
from controller.store.base import Store
from controller.store.etcd import EtcdStore

DEFAULT_ENDPOINTS = ("http://127.0.0.1:2379",)
DEFAULT_CLUSTER = "default"
SEARCH_PATH = (Path("~/.config/vigil/config.yaml"), Path("/etc/vigil/client.yaml"))


class ClientTLS(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ca: str | None = Field(default=None, description="CA certificate that signed etcd's.")
    cert: str | None = Field(default=None, description="Client certificate.")
    key: str | None = Field(default=None, description="Client key.")


class ClientConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    endpoints: list[str] | None = None
    cluster: str | None = None
    timeout: str | None = None
    tls: ClientTLS | None = None


@dataclass(frozen=True)
class ClientConfig:
    endpoints: tuple[str, ...]
    cluster: str
    timeout: float
    tls: ClientTLS
    source: str  # which file, if any, was read
    # Told when the store refuses connections and the command waits for it (etcd starting).
    on_wait: Callable[[str], object] | None = None

    def open_store(self) -> Store:
        return EtcdStore(
            list(self.endpoints),
            self.cluster,
            timeout=self.timeout,
            ca_cert=self.tls.ca,
            cert_cert=self.tls.cert,
            cert_key=self.tls.key,
            on_wait=self.on_wait,
        )


def _read_file(path: Path) -> ClientConfigFile:
    return read_settings(path, ClientConfigFile, "client config")


def _timeout(text: str, origin: str) -> float:
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise InputError(f"{origin}: {exc}") from None
    if seconds <= 0:
        raise InputError(f"{origin}: the timeout must be above 0s")
    return seconds


def resolve(
    *,
    config_path: str | None = None,
    endpoints: str | None = None,
    cluster: str | None = None,
    timeout: str | None = None,
    environ: dict[str, str] | None = None,
) -> ClientConfig:
    """Flags beat the environment, which beats the config file, which beats the defaults."""
    env = os.environ if environ is None else environ
    file_cfg = ClientConfigFile()
    source = "defaults"
    explicit = config_path or env.get("VIGIL_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise InputError(f"client config {path}: no such file")
        file_cfg, source = _read_file(path), str(path)
    else:
        for candidate in SEARCH_PATH:
            path = candidate.expanduser()
            if path.exists():
                file_cfg, source = _read_file(path), str(path)
                break
    endpoint_text = endpoints or env.get("VIGIL_ENDPOINTS")
    if endpoint_text:
        chosen = tuple(e.strip() for e in endpoint_text.split(",") if e.strip())
    else:
        chosen = tuple(file_cfg.endpoints or DEFAULT_ENDPOINTS)
    if not chosen:
        raise InputError("no etcd endpoints given: use --endpoints http://HOST:2379")
    for endpoint in chosen:
        if not endpoint.startswith(("http://", "https://")):
            raise InputError(
                f"endpoint {endpoint!r} needs a scheme: http://{endpoint} or https://{endpoint}"
            )
    timeout_text = timeout or env.get("VIGIL_TIMEOUT") or file_cfg.timeout
    return ClientConfig(
        endpoints=chosen,
        cluster=cluster or env.get("VIGIL_CLUSTER") or file_cfg.cluster or DEFAULT_CLUSTER,
        timeout=_timeout(timeout_text, "timeout") if timeout_text else 5.0,
        tls=file_cfg.tls or ClientTLS(),
        source=source,
    )
