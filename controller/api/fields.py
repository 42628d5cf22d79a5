"""Scalar field types shared by the API kinds: names, addresses, ports, paths.

Each type validates a string and keeps it as a string in its canonical form, so
specs round-trip through the store and the CRD schemas stay plain strings.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)
_LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
_LABEL_VALUE_RE = re.compile(LABEL_VALUE_PATTERN)
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")


def check_name(value: str) -> str:
    if len(value) > 63:
        raise ValueError(f"name {value!r} is {len(value)} characters long; at most 63 are allowed")
    if not _NAME_RE.match(value):
        raise ValueError(
            f"invalid name {value!r}: use lower-case letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. host-m, pg-data)"
        )
    return value


def check_label_key(value: str) -> str:
    if len(value) > 253 or not _LABEL_KEY_RE.match(value):
        raise ValueError(
            f"invalid label key {value!r}: use [prefix/]name with letters, digits, '-', '_', '.'"
        )
    return value


def check_label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE_RE.match(value):
        raise ValueError(
            f"invalid label value {value!r}: at most 63 letters, digits, '-', '_', '.', "
            "starting and ending with a letter or digit"
        )
    return value


def check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(
            f"invalid IP address {value!r}: expected e.g. 192.168.1.11 or fd00::11"
        ) from None


def check_cidr(value: str) -> str:
    """An address with its prefix length, as ``ip addr add`` wants it."""
    if "/" not in value:
        raise ValueError(
            f"{value!r} has no prefix length: write the address with its network, "
            "e.g. 192.168.1.10/24 or fd00::10/64"
        )
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError:
        raise ValueError(
            f"invalid address/prefix {value!r}: expected e.g. 192.168.1.10/24 or fd00::10/64"
        ) from None


def split_host_port(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; returns the host as written and the port."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"invalid address {value!r}: expected host:port, e.g. 192.168.2.11:7789 "
            "or [fd00::11]:7789"
        )
    number = int(port)
    if not 1 <= number <= 65535:
        raise ValueError(f"invalid port {number} in {value!r}: ports are 1 to 65535")
    return host, number


def check_host_port(value: str) -> str:
    host, port = split_host_port(value)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME_RE.match(host):
            raise ValueError(f"invalid host {host!r} in {value!r}") from None
        return f"{host}:{port}"
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def check_host(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        if not _HOSTNAME_RE.match(value) or len(value) > 253:
            raise ValueError(
                f"invalid host {value!r}: expected an IP address or a DNS name"
            ) from None
        return value


def check_abs_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path: it must start with '/'")
    if "\0" in value:
        raise ValueError("a path cannot contain a NUL byte")
    return value


def check_interface(value: str) -> str:
    if not 1 <= len(value) <= 15 or "/" in value or any(c.isspace() for c in value):
        raise ValueError(
            f"invalid interface name {value!r}: 1 to 15 characters, no '/' or spaces (e.g. eth0)"
        )
    return value


Name = Annotated[
    str,
    AfterValidator(check_name),
    WithJsonSchema({"type": "string", "pattern": NAME_PATTERN, "maxLength": 63}),
]
IPAddress = Annotated[str, AfterValidator(check_ip), WithJsonSchema({"type": "string"})]
CIDR = Annotated[str, AfterValidator(check_cidr), WithJsonSchema({"type": "string"})]
HostPort = Annotated[str, AfterValidator(check_host_port), WithJsonSchema({"type": "string"})]
Host = Annotated[str, AfterValidator(check_host), WithJsonSchema({"type": "string"})]
AbsPath = Annotated[
    str, AfterValidator(check_abs_path), WithJsonSchema({"type": "string", "pattern": "^/"})
]
InterfaceName = Annotated[
    str,
    AfterValidator(check_interface),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 15}),
]
Port = Annotated[int, Field(ge=1, le=65535)]
LabelKey = Annotated[str, AfterValidator(check_label_key)]
LabelValue = Annotated[
    str,
    AfterValidator(check_label_value),
    WithJsonSchema({"type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN}),
]
