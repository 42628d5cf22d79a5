"""Heartbeat 1's haresources: one ResourceGroup per line, started left to right on the
node named first."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from controller.api.group import NETWORK_FS_TYPES, is_network_device
from controller.importers.hacf import HaCf
from controller.importers.names import to_name, unique
from controller.importers.result import (
    Document,
    ImportFailed,
    ImportResult,
    Note,
    Where,
    new_document,
)
from controller.importers.sources import logical_lines

# resource.d scripts that only report or wait; Vigil has a counterpart or no need.
_NOTIFIERS = {
    "MailTo": "Vigil records every start, stop and failover as an event: `ha events`, "
    "or alert on the agent's metrics",
    "AudibleAlarm": "Vigil does not beep: watch `ha events`",
    "Delay": "Vigil starts the next resource when the previous one runs; give a service "
    "a probe with initialDelay instead of a fixed delay",
    "SendArp": "the ip resource sends gratuitous ARPs itself on takeover (arp.count)",
}
# resource.d wrappers around OCF agents, whose positional arguments have no Vigil spelling.
_OCF_WRAPPERS = (
    "apache",
    "db2",
    "ids",
    "IPsrcaddr",
    "LinuxSCSI",
    "LVM",
    "portblock",
    "Raid1",
    "ServeRAID",
    "WAS",
    "WinPopup",
    "Xinetd",
    "ICP",
    "OCF",
)
# The wrappers whose positional arguments are known: resource.d/NAME passes them to
# ocf:heartbeat:NAME as these parameters, in this order.
_OCF_PARAMS: dict[str, tuple[str, ...]] = {
    "apache": ("configfile",),
    "IPsrcaddr": ("ipaddress",),
    "LVM": ("volgrpname",),
    "portblock": ("protocol", "portno", "action"),
    "Xinetd": ("service",),
    "Raid1": ("raidconf", "raiddev"),
    "db2": ("instance",),
}
_IFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _ip(arg: str, where: Where, token: str) -> tuple[dict[str, Any], Note | None]:
    """IPaddr's `ip[/prefix[/interface[/broadcast]]]`."""
    parts = arg.split("/")
    address = parts[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise where.fail(f"{token}: {address!r} is not an IP address") from None
    if len(parts) < 2 or not parts[1]:
        raise where.fail(
            f"{token}: {address} has no prefix length; Heartbeat took the netmask of the "
            f"interface already in that subnet, which these files do not say: write "
            f"{address}/PREFIX (e.g. {address}/24) in haresources and import again"
        )
    try:
        cidr = str(ipaddress.ip_interface(f"{address}/{parts[1]}"))
    except ValueError:
        raise where.fail(f"{token}: {parts[1]!r} is not a prefix length or netmask") from None
    ip: dict[str, Any] = {"address": cidr}
    note = None
    if len(parts) >= 3 and parts[2]:
        interface, _, label = parts[2].partition(":")
        if not _IFACE.match(interface):
            raise where.fail(f"{token}: {parts[2]!r} is not an interface name")
        ip["interface"] = interface
        if label:
            note = Note(
                "approximated",
                where,
                f"interface label {parts[2]}",
                f"Vigil adds the address to {interface} without an alias label "
                "(ifconfig shows it only with `ip addr`)",
            )
    if len(parts) >= 4 and parts[3]:
        note = Note(
            "approximated",
            where,
            f"broadcast {parts[3]}",
            "Vigil sets the subnet's own broadcast address",
        )
    return ip, note


def _is_ip(token: str) -> bool:
    try:
        ipaddress.ip_address(token.split("/", 1)[0])
    except ValueError:
        return bool(re.match(r"^\d+\.\d+\.\d+\.\d+(/|$)", token))
    return True


class _Line:
    """One haresources line being turned into a group."""

    def __init__(self, where: Where, volumes: Mapping[str, str], out: ImportResult) -> None:
        self.where = where
        self.volumes = volumes  # /dev/drbdN -> volume name, from drbd.conf if given
        self.out = out
        self.resources: list[dict[str, Any]] = []
        self.notes: list[tuple[int | None, Note]] = []
        self.group_volumes: list[str] = []
        self.service_name: str | None = None

    def add(self, resource: dict[str, Any], note: Note | None = None) -> None:
        self.resources.append(resource)
        if note is None:
            self.out.ok()
        else:
            self.notes.append((len(self.resources) - 1, note))

    def drop(self, note: Note) -> None:
        self.notes.append((None, note))

    def token(self, token: str) -> None:
        where = self.where
        if _is_ip(token):
            ip, note = _ip(token, where, token)
            self.add({"ip": ip}, note)
            return
        if token.startswith("::") or token.endswith("::"):
            raise where.fail(
                f"resource {token!r} has an empty name or argument: write NAME::ARG with no "
                "space around '::'"
            )
        name, *args = token.split("::")
        if name in ("IPaddr", "IPaddr2", "IPv6addr"):
            if len(args) != 1:
                raise where.fail(f"{token}: {name} takes one argument, ip/prefix[/interface]")
            ip, note = _ip(args[0], where, token)
            self.add({"ip": ip}, note)
        elif name in ("drbddisk", "drbdupper"):
            if len(args) != 1:
                raise where.fail(
                    f"{token}: name the DRBD resource, e.g. {name}::r0 (without it Heartbeat "
                    "promoted every resource, which Vigil does one volume at a time)"
                )
            volume = to_name(args[0])
            if volume is None:
                raise where.fail(f"{token}: {args[0]!r} cannot be a volume name")
            self.group_volumes.append(volume)
            note = None
            if volume != args[0]:
                note = Note(
                    "approximated", where, token, f"DRBD resource {args[0]} is volume {volume}"
                )
            self.add({"volume": {"name": volume}}, note)
        elif name == "Filesystem":
            self.filesystem(token, args)
        elif name in _NOTIFIERS:
            self.drop(Note("dropped", where, token, _NOTIFIERS[name]))
        elif name in _OCF_PARAMS and len(args) <= len(_OCF_PARAMS[name]):
            # resource.d/NAME hands its arguments, in order, to ocf:heartbeat:NAME.
            params = dict(zip(_OCF_PARAMS[name], args, strict=False))
            ocf: dict[str, Any] = {"agent": f"heartbeat:{name}"}
            if params:
                ocf["params"] = params
            self.service_name = self.service_name or name
            self.add({"service": {"ocf": ocf}})
        elif name in _OCF_WRAPPERS and args:
            self.drop(
                Note(
                    "dropped",
                    where,
                    token,
                    f"resource.d/{name} passes positional arguments to the OCF agent "
                    f"heartbeat:{name}: write it as service: {{ocf: {{agent: heartbeat:{name}, "
                    "params: {...}}}} with the agent's parameter names",
                )
            )
        else:
            if not re.match(r"^[A-Za-z0-9_.@+-]+$", name):
                raise where.fail(f"{token!r} is not a script name in /etc/init.d")
            self.service_name = self.service_name or name
            note = None
            if args:
                note = Note(
                    "approximated",
                    where,
                    token,
                    f"Vigil runs the init script `{name} start|stop|status` without the "
                    f"arguments {' '.join(args)}: put them in the script or a wrapper",
                )
            self.add({"service": {"lsb": name}}, note)

    def filesystem(self, token: str, args: list[str]) -> None:
        where = self.where
        if len(args) < 3:
            raise where.fail(
                f"{token}: Filesystem takes device::mountpoint::fstype[::options]; Vigil "
                "does not guess the filesystem type"
            )
        device, mount_point, fs_type, *rest = args
        note = None
        if device in self.volumes:
            device = f"volume:{self.volumes[device]}"
        elif re.match(r"^/dev/drbd(\d+|/by-res/.+)$", device):
            if len(self.group_volumes) != 1:
                raise where.fail(
                    f"{token}: which DRBD resource is {device} cannot be told: import "
                    "drbd.conf with it (ha import heartbeat DIR drbd.conf), or put one "
                    "drbddisk before the Filesystem"
                )
            note = Note(
                "approximated",
                where,
                device,
                f"taken as the volume of this group's drbddisk ({self.group_volumes[0]}); "
                "import drbd.conf with haresources to check it",
            )
            device = f"volume:{self.group_volumes[0]}"
        elif device.startswith(("LABEL=", "UUID=", "-L", "-U")):
            kind = "label" if device.startswith(("LABEL=", "-L")) else "uuid"
            value = device.split("=", 1)[1] if "=" in device else device[2:]
            device = f"/dev/disk/by-{kind}/{value}"
            note = Note("approximated", where, args[0], f"mounted as {device}")
        elif fs_type in NETWORK_FS_TYPES:
            if not is_network_device(device):
                raise where.fail(
                    f"{token}: a {fs_type} filesystem mounts host:/export or //host/share, "
                    f"not {device!r}"
                )
        elif not device.startswith("/") or device.startswith("//"):
            raise where.fail(f"{token}: device {device!r} is not a path")
        if not mount_point.startswith("/"):
            raise where.fail(f"{token}: mount point {mount_point!r} is not an absolute path")
        if not re.match(r"^[a-z0-9.]+$", fs_type):
            raise where.fail(f"{token}: {fs_type!r} is not a filesystem type")
        fs: dict[str, Any] = {"device": device, "mountPoint": mount_point, "fsType": fs_type}
        if rest:
            options = [o for o in "::".join(rest).split(",") if o]
            if options:
                fs["options"] = options
        self.add({"filesystem": fs}, note)


def import_haresources(
    text: str, file: str, hacf: HaCf, volumes: Mapping[str, str], out: ImportResult
) -> None:
    taken = {d.name for d in out.documents if d.kind == "ResourceGroup"}
    nodes = list(hacf.nodes.values())
    for line in logical_lines(text, file):
        first, *tokens = line.text.split()
        if first not in hacf.nodes:
            raise line.where.fail(
                f"{first!r} is not a node of ha.cf (its nodes: {', '.join(hacf.nodes)}): the "
                "first word of a haresources line is the node that normally runs it"
            )
        if not tokens:
            raise line.where.fail(f"the line names node {first} but no resource")
        builder = _Line(line.where, volumes, out)
        for token in tokens:
            builder.token(token)
        if not builder.resources:
            raise line.where.fail(
                "no resource on this line can run in Vigil (see the notes): nothing to import"
            )
        preferred = hacf.nodes[first]
        base = to_name(builder.service_name or "") or f"{preferred}-group"
        name = unique(base, taken)
        spec: dict[str, Any] = {
            "placement": {
                "nodes": [{"name": n, "score": 100 if n == preferred else 50} for n in nodes],
                "restricted": True,
                "stickiness": hacf.stickiness,
            },
            "resources": builder.resources,
        }
        doc: Document = new_document("ResourceGroup", name, spec, line.where)
        out.documents.append(doc)
        out.ok()  # the line's node and order
        if hacf.stickiness_note is not None:
            doc.comment(("spec", "placement", "stickiness"), hacf.stickiness_note)
        for index, note in builder.notes:
            path = ("spec", "resources", index) if index is not None else ("spec", "resources")
            doc.comment(path, note)
    if not out.find_kind("ResourceGroup"):
        raise ImportFailed(f"{file}: no resource line: nothing to import")
