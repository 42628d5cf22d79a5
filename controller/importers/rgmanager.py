"""rgmanager's cluster.conf (RHEL 5/6 High Availability Add-On) to Vigil: nodes, two_node,
fence devices and methods, failover domains, services and their nested resources."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller.api.fields import check_host
from controller.importers.cib import Node, parse_xml
from controller.importers.hacf import parse_addresses
from controller.importers.names import is_name, to_name, unique
from controller.importers.pcmk_durations import duration
from controller.importers.result import (
    Document,
    ImportResult,
    Note,
    new_document,
)
from controller.importers.rgmanager_resources import Reader
from controller.importers.sources import read_text

_IPMI = (
    "fence_ipmilan",
    "fence_ipmilanplus",
    "fence_idrac",
    "fence_ilo3",
    "fence_ilo4",
    "fence_imm",
)
_SECRETS_DIR = "/etc/vigil/secrets"


def _fencing(root: Node, reader: Reader, names: Mapping[str, str], nodes: list[Node]) -> None:
    out = reader.out
    devices = {}
    container = root.find("fencedevices")
    for device in container.all("fencedevice") if container else []:
        name = reader.need(device, "name")
        if name in devices:
            raise reader.at(device).fail(f"fencedevice {name!r} is defined twice")
        devices[name] = device
    uses: dict[str, dict[str, Any]] = {}
    for clusternode in nodes:
        fence = clusternode.find("fence")
        methods = fence.all("method") if fence else []
        for level, method in enumerate(methods, start=1):
            for ref in method.all("device"):
                device_name = reader.need(ref, "name")
                if device_name not in devices:
                    raise reader.at(ref).fail(
                        f"fence device {device_name!r} is not defined in <fencedevices>"
                    )
                use = uses.setdefault(device_name, {"targets": [], "hostMap": {}, "level": level})
                node = names[clusternode.attrib["name"]]
                use["targets"].append(node)
                use["level"] = min(use["level"], level)
                plug = ref.attrib.get("port") or ref.attrib.get("plug")
                if plug:
                    use["hostMap"][node] = plug
    for device_name, device in devices.items():
        where = reader.at(device)
        if device_name not in uses:
            out.note(
                Note("dropped", where, f"fencedevice {device_name}", "no node's method uses it")
            )
            continue
        agent = reader.need(device, "agent")
        name = to_name(device_name) or "fence"
        spec: dict[str, Any] = {"targets": uses[device_name]["targets"]}
        if agent in _IPMI:
            spec["agent"] = "ipmi"
        elif re.match(r"^fence_[a-z0-9_]+$", agent):
            spec["agent"] = "fence-agent"
            spec["fenceAgent"] = agent
        else:
            raise where.fail(f"fencedevice {device_name}: unknown agent {agent!r}")
        notes: list[Note] = []
        attrs = dict(device.attrib)
        for key in ("name", "agent"):
            attrs.pop(key, None)
        if "ipaddr" in attrs:
            try:
                spec["address"] = check_host(attrs.pop("ipaddr"))
            except ValueError as exc:
                raise where.fail(f"fencedevice {device_name}: {exc}") from None
        if "login" in attrs:
            spec["username"] = attrs.pop("login")
        password = attrs.pop("passwd", None)
        if password is not None:
            spec["credentialsFile"] = f"{_SECRETS_DIR}/{name}"
            out.secrets[f"fence-{name}.credentials"] = f"password={password}\n".encode()
            notes.append(
                Note(
                    "approximated",
                    where,
                    f"{device_name} passwd",
                    f"kept in fence-{name}.credentials (mode 0600), never in the YAML: "
                    f"copy it to {_SECRETS_DIR}/{name} on every node",
                )
            )
        action = attrs.pop("option", None) or attrs.pop("action", None)
        if action:
            notes.append(
                Note(
                    "approximated",
                    where,
                    f"{device_name} option={action}",
                    "the action is the cluster's (spec.fencing.action, reboot by default)",
                )
            )
        if uses[device_name]["hostMap"]:
            spec["hostMap"] = uses[device_name]["hostMap"]
        if uses[device_name]["level"] > 1:
            spec["level"] = min(uses[device_name]["level"], 9)
        if attrs and spec["agent"] == "fence-agent":
            spec["options"] = attrs
        else:
            for key, value in attrs.items():
                notes.append(
                    Note(
                        "dropped",
                        where,
                        f"{device_name} {key}={value}",
                        "Vigil's ipmi device takes address, username and credentials",
                    )
                )
        doc: Document = new_document("FenceDevice", name, spec, where)
        for note in notes:
            doc.comment(("spec",), note)
        out.documents.append(doc)
        out.ok()


def _domains(rm: Node, reader: Reader, names: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    domains: dict[str, dict[str, Any]] = {}
    container = rm.find("failoverdomains")
    for domain in container.all("failoverdomain") if container else []:
        name = reader.need(domain, "name")
        ordered = domain.attrib.get("ordered", "0") == "1"
        members = []
        for member in domain.all("failoverdomainnode"):
            node = reader.need(member, "name")
            if node not in names:
                raise reader.at(member).fail(
                    f"failover domain {name}: {node!r} is not a clusternode"
                )
            raw = member.attrib.get("priority", "1")
            if not raw.isdigit():
                raise reader.at(member).fail(f"priority {raw!r} is not a number")
            priority = int(raw) if ordered else 1
            members.append(
                {"name": names[node], "score": max(0, 101 - priority) if ordered else 100}
            )
        domains[name] = {
            "placement": {
                "nodes": members,
                "restricted": domain.attrib.get("restricted", "0") == "1",
                # An ordered domain fails back to its best node unless nofailback is set.
                "stickiness": 0 if ordered and domain.attrib.get("nofailback", "0") != "1" else 100,
            },
            "where": reader.at(domain),
        }
        reader.out.ok()
    return domains


def import_rgmanager(
    path: Path,
    cluster_name: str | None,
    addresses: Mapping[str, list[str]],
    prefixes: Mapping[str, int],
) -> ImportResult:
    file = str(path)
    root = parse_xml(read_text(path), file)
    out = ImportResult()
    reader = Reader(file, out, prefixes)
    if root.tag != "cluster":
        raise reader.at(root).fail("not a cluster.conf: expected <cluster name=...>")
    container = root.find("clusternodes")
    nodes = container.all("clusternode") if container else []
    if not nodes:
        raise reader.at(root).fail("no <clusternode>: nothing to import")
    names: dict[str, str] = {}
    for clusternode in nodes:
        source = reader.need(clusternode, "name")
        vigil = source if is_name(source) else to_name(source.split(".")[0])
        if vigil is None or vigil in names.values():
            raise reader.at(clusternode).fail(f"node {source!r} cannot get a distinct Vigil name")
        names[source] = vigil
    by_node = parse_addresses(addresses, names)
    missing = [n for n, v in names.items() if v not in by_node]
    if missing:
        where = reader.at(next(c for c in nodes if c.attrib["name"] == missing[0]))
        raise where.fail(
            f"cluster.conf gives no address for node {missing[0]!r}: pass "
            f"--address {missing[0]}=IP for {', '.join(missing)}"
        )
    spec: dict[str, Any] = {
        "nodes": [{"name": v, "address": by_node[v][0]} for v in names.values()]
    }
    cman = root.find("cman")
    two_node = cman is not None and cman.attrib.get("two_node") == "1"
    spec["quorum"] = {"mode": "two-node" if two_node or len(names) == 2 else "majority"}
    cluster_notes: list[tuple[tuple[str | int, ...], Note]] = []
    totem = root.find("totem")
    if totem is not None and totem.attrib.get("token", "").isdigit():
        spec["timing"] = {"deadtime": duration(int(totem.attrib["token"]))}
        cluster_notes.append(
            (
                ("spec", "timing"),
                Note(
                    "approximated",
                    reader.at(totem),
                    f"totem token={totem.attrib['token']}",
                    "corosync's token timeout becomes deadtime; keepalive stays Vigil's",
                ),
            )
        )
    name = cluster_name or root.attrib.get("name", "legacy")
    vigil_name = name if is_name(name) else to_name(name) or "legacy"
    doc = new_document("Cluster", vigil_name, spec, reader.at(root))
    for source, vigil in names.items():
        if source != vigil:
            index = list(names.values()).index(vigil)
            cluster_notes.append(
                (
                    ("spec", "nodes", index),
                    Note(
                        "approximated",
                        reader.at(nodes[index]),
                        f"node {source}",
                        f"renamed {vigil}",
                    ),
                )
            )
        else:
            out.ok()
    for path_, note in cluster_notes:
        doc.comment(path_, note)
    out.documents.append(doc)
    _fencing(root, reader, names, nodes)
    rm = root.find("rm")
    if rm is None:
        return out
    shared = rm.find("resources")
    for resource in shared.children if shared else []:
        key = resource.attrib.get("name") or resource.attrib.get("address")
        if key is None:
            raise reader.at(resource).fail(f"<{resource.tag}> under <resources> needs a name")
        if f"{resource.tag}:{key}" in reader.shared:
            raise reader.at(resource).fail(f"resource {resource.tag} {key!r} is defined twice")
        reader.shared[f"{resource.tag}:{key}"] = resource
    domains = _domains(rm, reader, names)
    taken: set[str] = set()
    services = rm.all("service")
    for extra in rm.children:
        if extra.tag in ("vm",):
            out.note(
                Note(
                    "dropped",
                    reader.at(extra),
                    f"<vm name={extra.attrib.get('name', '')!r}>",
                    "Vigil does not run virtual machines as resources",
                )
            )
        elif extra.tag not in ("service", "failoverdomains", "resources"):
            out.note(Note("dropped", reader.at(extra), f"<{extra.tag}>", "not imported"))
    for service in services:
        _service(service, reader, names, domains, taken)
    return out


def _service(
    service: Node,
    reader: Reader,
    names: Mapping[str, str],
    domains: Mapping[str, dict[str, Any]],
    taken: set[str],
) -> None:
    out = reader.out
    where = reader.at(service)
    source = reader.need(service, "name")
    base = to_name(source) or "service"
    if base in taken:
        raise where.fail(f"service {source!r} is defined twice")
    name = unique(base, taken)
    resources: list[dict[str, Any]] = []
    notes: list[tuple[int | None, Note]] = []
    reader.resources(service, resources, notes)
    group_notes: list[Note] = []
    if not resources:
        out.note(Note("dropped", where, f"service {source}", "nothing in it runs in Vigil"))
        for _, note in notes:
            out.note(note)
        return
    spec: dict[str, Any] = {}
    domain_name = service.attrib.get("domain")
    if domain_name:
        if domain_name not in domains:
            raise where.fail(f"service {source}: failover domain {domain_name!r} is not defined")
        spec["placement"] = dict(domains[domain_name]["placement"])
    else:
        spec["placement"] = {"nodes": [{"name": v, "score": 0} for v in names.values()]}
    if service.attrib.get("autostart", "1") == "0":
        spec["enabled"] = False
        group_notes.append(
            Note(
                "approximated",
                where,
                "autostart=0",
                "the group is disabled: set enabled: true (or remove it) to "
                "start it, as clusvcadm -e did",
            )
        )
    recovery = service.attrib.get("recovery", "restart")
    if recovery == "relocate":
        spec["migrationThreshold"] = 1
    elif recovery == "disable":
        group_notes.append(
            Note(
                "approximated",
                where,
                "recovery=disable",
                "Vigil moves a group that failed migrationThreshold times; it never disables it",
            )
        )
    if service.attrib.get("max_restarts", "").isdigit() and recovery == "restart":
        spec["migrationThreshold"] = max(1, int(service.attrib["max_restarts"]) + 1)
    if service.attrib.get("restart_expire_time", "").isdigit():
        spec["failureTimeout"] = duration(int(service.attrib["restart_expire_time"]) * 1000)
    depend = service.attrib.get("depend", "")
    if depend:
        spec["dependsOn"] = [to_name(depend.removeprefix("service:")) or depend]
    if service.attrib.get("exclusive") == "1":
        group_notes.append(
            Note(
                "dropped",
                where,
                "exclusive=1",
                "name the groups it must not share a node with in antiColocate",
            )
        )
    spec["resources"] = resources
    for key in set(service.attrib) - {
        "name",
        "domain",
        "autostart",
        "recovery",
        "max_restarts",
        "restart_expire_time",
        "depend",
        "exclusive",
    }:
        group_notes.append(Note("dropped", where, f"{key}={service.attrib[key]}", "not imported"))
    doc: Document = new_document("ResourceGroup", name, spec, where)
    for note in group_notes:
        doc.comment(("spec",), note)
    for index, note in notes:
        doc.comment(
            ("spec", "resources", index) if index is not None else ("spec", "resources"), note
        )
    out.documents.append(doc)
    out.ok()
