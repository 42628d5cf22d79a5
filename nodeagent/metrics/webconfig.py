"""The Prometheus exporter-toolkit "web config file", the subset the agent implements:

    tls_server_config:
      cert_file: /etc/vigil/metrics.crt     # relative paths: from the file's directory
      key_file: /etc/vigil/metrics.key
    basic_auth_users:
      prometheus: $2y$10$...                # bcrypt hashes (htpasswd -B, or python bcrypt)

Any other setting of the toolkit (client certificates, cipher suites, HTTP headers) is
refused by name rather than ignored: a scrape that looks protected but is not would be
worse than an agent that does not start.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from controller.api.errors import InputError
from controller.api.settings_file import read_settings

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


class TLSServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert_file: str
    key_file: str


class WebConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] | None = None

    @field_validator("basic_auth_users")
    @classmethod
    def _hashes(cls, users: dict[str, str] | None) -> dict[str, str] | None:
        for user, hashed in (users or {}).items():
            if not user or ":" in user:
                raise ValueError(f"user name {user!r} must be non-empty and without ':'")
            if not hashed.startswith(BCRYPT_PREFIXES):
                raise ValueError(f"{user}: the password must be a bcrypt hash ($2y$...)")
        return users


@dataclass(frozen=True)
class WebConfig:
    ssl_context: ssl.SSLContext | None
    users: dict[str, bytes]
    """User name to bcrypt hash; empty: no authentication."""


def load_web_config(path: Path) -> WebConfig:
    """The file, checked: certificates loaded, bcrypt present if users are given.
    InputError naming the file and the setting otherwise."""
    what = "metrics web config"
    data = read_settings(path, WebConfigFile, what)
    context = None
    if data.tls_server_config is not None:
        tls = data.tls_server_config
        cert, key = (path.parent / tls.cert_file), (path.parent / tls.key_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise InputError(
                f"{what} {path}: tls_server_config.cert_file/key_file ({cert}, {key}): "
                f"cannot load: {exc}"
            ) from None
    users = {u: h.encode() for u, h in (data.basic_auth_users or {}).items()}
    if users:
        try:
            import bcrypt  # noqa: F401
        except ImportError:
            raise InputError(
                f"{what} {path}: basic_auth_users needs the Python package bcrypt, which is "
                "not installed: install it, or remove basic_auth_users"
            ) from None
    return WebConfig(context, users)
