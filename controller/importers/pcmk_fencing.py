"""Pacemaker stonith resources and fencing levels to FenceDevices; passwords go to
root-only credential files, never into the YAML."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.api.fields import check_host
from controller.importers.names import to_name
from controller.importers.pcmk_model import Pacemaker, Primitive
from controller.importers.result import Document, ImportResult, Note, new_document

SECRETS_DIR = "/etc/vigil/secrets"
_PASSWORDS = ("passwd", "password", "pass")
_USERS = ("userid", "login", "username", "user")
_ADDRESSES = ("ipaddr", "ip", "hostname_or_ip", "address")
_IPMI = ("external/ipmi", "fence_ipmilan", "fence_ipmilanplus", "ipmilan")
_LANPLUS = {("interface", "lanplus"), ("lanplus", "1"), ("lanplus", "true"), ("lanplus", "on")}
_PCMK = (
    "pcmk_host_list",
    "pcmk_host_map",
    "pcmk_host_check",
    "pcmk_delay_max",
    "pcmk_delay_base",
    "pcmk_reboot_action",
    "pcmk_monitor_action",
)


def _targets(p: Primitive, nodes: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    host_map: dict[str, str] = {}
    names: list[str] = []
    if p.params.get("pcmk_host_map"):
        for pair in p.params["pcmk_host_map"].replace(";", " ").split():
            host, _, plug = pair.partition(":")
            names.append(host)
            if plug:
                host_map[host] = plug
    names += p.params.get("pcmk_host_list", "").replace(",", " ").split()
    if p.type == "external/ipmi" and p.params.get("hostname"):
        names.append(p.params["hostname"])
    targets = []
    for name in names:
        if name not in nodes:
            raise p.where.fail(
                f"stonith {p.id} targets {name!r}, which is not a node of the cluster"
            )
        if nodes[name] not in targets:
            targets.append(nodes[name])
    return targets, {nodes[k]: v for k, v in host_map.items()}


def import_fencing(model: Pacemaker, nodes: Mapping[str, str], out: ImportResult) -> None:
    level: dict[str, int] = {}
    for fl in model.levels:
        for device in fl.devices:
            level[device] = min(level.get(device, fl.index), fl.index)
    for p in model.primitives.values():
        if p.cls != "stonith":
            continue
        name = to_name(p.id) or "fence"
        targets, host_map = _targets(p, nodes)
        if not targets:
            out.note(
                Note(
                    "dropped",
                    p.where,
                    f"stonith {p.id} ({p.type})",
                    "it names no node (pcmk_host_list or pcmk_host_map): Vigil needs the "
                    "nodes a device fences",
                )
            )
            continue
        spec: dict[str, Any] = {"targets": targets}
        notes: list[Note] = []
        if p.type in _IPMI:
            spec["agent"] = "ipmi"
        elif p.type.startswith("fence_"):
            spec["agent"] = "fence-agent"
            spec["fenceAgent"] = p.type
        else:
            out.note(
                Note(
                    "dropped",
                    p.where,
                    f"stonith {p.id} ({p.type})",
                    "a cluster-glue stonith plugin: write a FenceDevice with the "
                    "fence_* agent for this hardware",
                )
            )
            continue
        address = next((p.params[k] for k in _ADDRESSES if p.params.get(k)), None)
        if address:
            try:
                check_host(address)
            except ValueError as exc:
                raise p.where.fail(f"stonith {p.id}: {exc}") from None
            spec["address"] = address
        user = next((p.params[k] for k in _USERS if p.params.get(k)), None)
        if user:
            spec["username"] = user
        password = next((p.params[k] for k in _PASSWORDS if p.params.get(k)), None)
        if password is not None:
            spec["credentialsFile"] = f"{SECRETS_DIR}/{name}"
            out.secrets[f"fence-{name}.credentials"] = f"password={password}\n".encode()
            notes.append(
                Note(
                    "approximated",
                    p.where,
                    f"{p.id} password",
                    f"kept in fence-{name}.credentials (mode 0600), never in the "
                    f"YAML: copy it to {SECRETS_DIR}/{name} on every node",
                )
            )
        if host_map:
            spec["hostMap"] = host_map
        if p.id in level:
            spec["level"] = min(level[p.id], 9)
        used = {*_ADDRESSES, *_USERS, *_PASSWORDS, *_PCMK, "hostname"}
        options = {k: v for k, v in p.params.items() if k not in used}
        if spec["agent"] == "fence-agent" and options:
            spec["options"] = options
        elif options:
            for key, value in options.items():
                if (key, value.lower()) in _LANPLUS:
                    out.ok()
                    continue
                notes.append(
                    Note(
                        "dropped",
                        p.where,
                        f"{p.id} {key}={value}",
                        "Vigil's ipmi device speaks IPMI 2.0 lanplus only",
                    )
                )
        doc: Document = new_document("FenceDevice", name, spec, p.where)
        for note in notes:
            doc.comment(("spec",), note)
        out.documents.append(doc)
        out.ok()
