"""rgmanager resources (`<ip>`, `<fs>`, `<clusterfs>`, `<netfs>`, `<script>`, shared ones by
`ref`) to Vigil resources, flattened in service.sh's start order."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from controller.importers.cib import Node, XmlReader
from controller.importers.names import is_name
from controller.importers.result import ImportResult, Note

# service.sh's start order of a service's children, by type: siblings start in this order,
# then each child's own children.
_START_ORDER = {
    "lvm": 1,
    "fs": 2,
    "clusterfs": 3,
    "netfs": 4,
    "nfsexport": 5,
    "nfsclient": 6,
    "ip": 7,
    "smb": 8,
    "script": 9,
}
_APP_AGENTS = (
    "apache",
    "mysql",
    "postgres-8",
    "tomcat-5",
    "tomcat-6",
    "oracledb",
    "orainstance",
    "oralistener",
    "openldap",
    "samba",
    "named",
    "sybase",
    "SAPDatabase",
    "SAPInstance",
    "lvm",
    "nfsexport",
    "nfsclient",
    "nfsserver",
    "smb",
    "vm",
)


class Reader(XmlReader):
    def __init__(self, file: str, out: ImportResult, prefixes: Mapping[str, int]) -> None:
        super().__init__(file)
        self.out = out
        self.prefixes = prefixes
        self.shared: dict[str, Node] = {}

    def resolve(self, node: Node) -> Node:
        ref = node.attrib.get("ref")
        if ref is None:
            return node
        target = self.shared.get(f"{node.tag}:{ref}")
        if target is None:
            raise self.at(node).fail(
                f"<{node.tag} ref={ref!r}>: no such resource under <rm><resources>"
            )
        return Node(
            node.tag,
            {**target.attrib, **{k: v for k, v in node.attrib.items() if k != "ref"}},
            node.line,
            [*target.children, *node.children],
        )

    def ip(self, node: Node) -> dict[str, Any]:
        value = self.need(node, "address")
        address, _, prefix = value.partition("/")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise self.at(node).fail(f"<ip address={value!r}>: not an IP address") from None
        if not prefix:
            if address not in self.prefixes:
                raise self.at(node).fail(
                    f"<ip address={value!r}> has no prefix length; rgmanager took the netmask "
                    "of the interface already in that subnet, which cluster.conf does not say: "
                    f"pass --prefix {address}/LEN (e.g. {address}/24), or write it in "
                    "cluster.conf"
                )
            prefix = str(self.prefixes[address])
        try:
            return {"address": str(ipaddress.ip_interface(f"{address}/{prefix}"))}
        except ValueError:
            raise self.at(node).fail(f"<ip address={value!r}>: bad prefix {prefix!r}") from None

    def resources(
        self, node: Node, out: list[dict[str, Any]], notes: list[tuple[int | None, Note]]
    ) -> None:
        children = sorted(
            (self.resolve(c) for c in node.children),
            key=lambda c: _START_ORDER.get(c.tag, 9),
        )
        for child in children:
            where = self.at(child)
            tag = child.tag
            extra: list[str] = []
            if tag == "ip":
                resource: dict[str, Any] | None = {"ip": self.ip(child)}
                extra = [k for k in child.attrib if k not in ("address", "ref")]
            elif tag in ("fs", "clusterfs", "netfs"):
                resource = {"filesystem": self.fs(child)}
                extra = [
                    k
                    for k in child.attrib
                    if k
                    not in (
                        "name",
                        "device",
                        "mountpoint",
                        "fstype",
                        "options",
                        "host",
                        "export",
                        "ref",
                    )
                ]
                if tag == "clusterfs":
                    notes.append(
                        (
                            len(out),
                            Note(
                                "approximated",
                                where,
                                f"clusterfs {child.attrib.get('name', '')}",
                                "mounted on the group's one node, not on every node",
                            ),
                        )
                    )
            elif tag == "script":
                file = self.need(child, "file")
                if not file.startswith("/"):
                    raise where.fail(f"<script file={file!r}>: not an absolute path")
                resource = {"service": {"lsb": file}}
                extra = [k for k in child.attrib if k not in ("file", "name", "ref")]
            elif tag in _APP_AGENTS:
                resource = None
                notes.append(
                    (
                        None,
                        Note(
                            "dropped",
                            where,
                            f"<{tag} name={child.attrib.get('name', '')!r}>",
                            "an rgmanager agent with no Vigil counterpart: run the "
                            "application as a service (systemd, lsb or ocf)",
                        ),
                    )
                )
            elif tag == "action":
                resource = None
                notes.append(
                    (
                        None,
                        Note(
                            "dropped",
                            where,
                            "<action>",
                            "Vigil's timeouts are per resource (timeouts)",
                        ),
                    )
                )
            else:
                raise where.fail(f"<{tag}> is not an rgmanager resource Vigil knows")
            if resource is not None:
                name = child.attrib.get("name")
                if name and is_name(name):
                    resource["name"] = name
                out.append(resource)
                self.out.ok()
                for key in extra:
                    notes.append(
                        (
                            len(out) - 1,
                            Note(
                                "dropped",
                                where,
                                f"{tag} {key}={child.attrib[key]}",
                                "no Vigil counterpart",
                            ),
                        )
                    )
            self.resources(child, out, notes)

    def fs(self, node: Node) -> dict[str, Any]:
        where = self.at(node)
        if node.tag == "netfs":
            device = f"{self.need(node, 'host')}:{self.need(node, 'export')}"
            fs_type = node.attrib.get("fstype", "nfs")
        else:
            device = self.need(node, "device")
            fs_type = node.attrib.get("fstype", "")
            if not fs_type:
                raise where.fail(f"<{node.tag}>: no fstype; Vigil does not guess it")
            if device.startswith(("LABEL=", "UUID=")):
                kind, _, value = device.partition("=")
                device = f"/dev/disk/by-{kind.lower()}/{value}"
            elif not device.startswith("/"):
                raise where.fail(f"<{node.tag} device={device!r}>: not a device path")
        mount = self.need(node, "mountpoint")
        if not mount.startswith("/"):
            raise where.fail(f"<{node.tag} mountpoint={mount!r}>: not an absolute path")
        if not re.match(r"^[a-z0-9.]+$", fs_type):
            raise where.fail(f"<{node.tag} fstype={fs_type!r}>: not a filesystem type")
        fs: dict[str, Any] = {"device": device, "mountPoint": mount, "fsType": fs_type}
        if node.attrib.get("options"):
            fs["options"] = [o for o in node.attrib["options"].split(",") if o]
        return fs
