"""One Pacemaker primitive to one Vigil resource (ip, filesystem, service)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from controller.api.group import NETWORK_FS_TYPES, is_network_device
from controller.importers.pcmk_durations import duration, to_ms
from controller.importers.pcmk_model import Primitive
from controller.importers.result import Note

_CLASSES = ("ocf", "lsb", "systemd", "service", "stonith", "heartbeat", "upstart", "nagios")
_AGENT_PART = re.compile(r"^[A-Za-z0-9_.@-]+$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Noter = Callable[[Note], None]


def check_class(p: Primitive) -> None:
    if p.cls not in _CLASSES:
        raise p.where.fail(
            f"primitive {p.id}: unknown agent class {p.cls!r}: expected one of "
            f"{', '.join(_CLASSES)}"
        )
    if p.cls == "ocf" and not p.provider:
        raise p.where.fail(f"primitive {p.id}: an ocf agent needs a provider (ocf:heartbeat:...)")
    for part in (p.provider or "x", p.type):
        if not _AGENT_PART.match(part):
            raise p.where.fail(f"primitive {p.id}: {p.agent!r} is not a valid agent name")


def _ip(p: Primitive) -> dict[str, Any]:
    address = p.params.get("ip") or p.params.get("ipv6addr", "")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise p.where.fail(f"primitive {p.id}: ip {address!r} is not an IP address") from None
    prefix = p.params.get("cidr_netmask")
    if not prefix:
        raise p.where.fail(
            f"primitive {p.id}: {address} has no cidr_netmask; the agent took the netmask of "
            "the interface already in that subnet, which the CIB does not say: add "
            "cidr_netmask=PREFIX and import again"
        )
    try:
        cidr = str(ipaddress.ip_interface(f"{address}/{prefix}"))
    except ValueError:
        raise p.where.fail(f"primitive {p.id}: cidr_netmask {prefix!r} is not a prefix") from None
    ip: dict[str, Any] = {"address": cidr}
    if p.params.get("nic"):
        nic = p.params["nic"].split(":", 1)[0]
        if not re.match(r"^[A-Za-z0-9_.-]{1,15}$", nic):
            raise p.where.fail(f"primitive {p.id}: nic {p.params['nic']!r} is not an interface")
        ip["interface"] = nic
    return ip


def to_resource(
    p: Primitive, volume: str | None, devices: dict[str, str], note: Noter
) -> dict[str, Any] | None:
    """The Vigil resource for ``p``, or None when it has none (a note says why)."""
    resource: dict[str, Any]
    used = set()
    if p.cls == "ocf" and p.type in ("IPaddr2", "IPaddr", "IPv6addr"):
        resource = {"ip": _ip(p)}
        used = {"ip", "ipv6addr", "cidr_netmask", "nic"}
    elif p.cls == "ocf" and p.type == "Filesystem":
        device = p.params.get("device", "")
        mount = p.params.get("directory", "")
        fs_type = p.params.get("fstype", "")
        if not device or not mount or not fs_type:
            raise p.where.fail(
                f"primitive {p.id}: Filesystem needs device, directory and fstype; Vigil does "
                "not guess the filesystem type"
            )
        if device in devices:
            device = f"volume:{devices[device]}"
        elif re.match(r"^/dev/drbd(\d+|/by-res/.+)$", device):
            if volume is None:
                raise p.where.fail(
                    f"primitive {p.id}: which DRBD resource is {device} cannot be told: import "
                    "drbd.conf with the CIB, or colocate it with the DRBD master"
                )
            device = f"volume:{volume}"
        elif fs_type in NETWORK_FS_TYPES:
            if not is_network_device(device):
                raise p.where.fail(
                    f"primitive {p.id}: a {fs_type} filesystem mounts host:/export or "
                    f"//host/share, not {device!r}"
                )
        elif not device.startswith("/") or device.startswith("//"):
            raise p.where.fail(f"primitive {p.id}: device {device!r} is not a path")
        if not mount.startswith("/"):
            raise p.where.fail(f"primitive {p.id}: directory {mount!r} is not an absolute path")
        if not re.match(r"^[a-z0-9.]+$", fs_type):
            raise p.where.fail(f"primitive {p.id}: {fs_type!r} is not a filesystem type")
        fs: dict[str, Any] = {"device": device, "mountPoint": mount, "fsType": fs_type}
        if p.params.get("options"):
            fs["options"] = [o for o in p.params["options"].split(",") if o]
        resource = {"filesystem": fs}
        used = {"device", "directory", "fstype", "options"}
    elif p.cls == "lsb" or p.cls == "heartbeat":
        resource = {"service": {"lsb": p.type}}
        if p.cls == "heartbeat":
            note(
                Note(
                    "approximated",
                    p.where,
                    f"primitive {p.id} ({p.agent})",
                    "a Heartbeat 1 script, run as an init script of that name",
                )
            )
    elif p.cls in ("systemd", "service", "upstart"):
        resource = {"service": {"systemd": p.type}}
        if p.cls != "systemd":
            note(
                Note(
                    "approximated",
                    p.where,
                    f"primitive {p.id} ({p.agent})",
                    f"run as the systemd unit {p.type}",
                )
            )
    elif p.cls == "ocf":
        for name in p.params:
            if not _PARAM.match(name):
                raise p.where.fail(f"primitive {p.id}: parameter {name!r} is not a shell name")
        ocf: dict[str, Any] = {"agent": f"{p.provider}:{p.type}"}
        if p.params:
            ocf["params"] = dict(p.params)
        resource = {"service": {"ocf": ocf}}
        used = set(p.params)
    else:
        note(
            Note(
                "dropped",
                p.where,
                f"primitive {p.id} ({p.agent})",
                "Vigil runs no agents of this class",
            )
        )
        return None
    for name in sorted(set(p.params) - used):
        note(
            Note(
                "dropped",
                p.where,
                f"{p.id} parameter {name}={p.params[name]}",
                f"Vigil's {next(iter(resource))} resource has no such setting",
            )
        )
    _ops(p, resource, note)
    return resource


def _ops(p: Primitive, resource: dict[str, Any], note: Noter) -> None:
    timeouts: dict[str, str] = {}
    for op in p.ops:
        if op.name in ("start", "stop", "monitor") and op.timeout and not op.role:
            timeouts[op.name] = duration(to_ms(op.timeout, op.where, "timeout"))
        if op.name == "monitor" and to_ms(op.interval, op.where, "interval") > 0:
            note(
                Note(
                    "approximated",
                    op.where,
                    f"{p.id} monitor every {op.interval}",
                    "Vigil's node agent checks the resource on its own period; give it a "
                    "probe (tcp, http, exec) to check the service itself",
                )
            )
        elif op.name not in ("start", "stop", "monitor") or op.role:
            note(
                Note(
                    "dropped",
                    op.where,
                    f"{p.id} op {op.name}" + (f" role={op.role}" if op.role else ""),
                    "not an operation Vigil runs",
                )
            )
    if timeouts:
        resource["timeouts"] = timeouts
