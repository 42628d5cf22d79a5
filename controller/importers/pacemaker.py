"""`ha import pacemaker`: cib.xml or crm syntax (with ha.cf, authkeys, drbd.conf beside it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from controller.importers.authkeys import import_authkeys
from controller.importers.cib import read_cib
from controller.importers.crm import read_crm
from controller.importers.drbd import import_drbd
from controller.importers.hacf import import_hacf, parse_addresses
from controller.importers.names import is_name, to_name
from controller.importers.pcmk_map import import_resources
from controller.importers.pcmk_model import Pacemaker
from controller.importers.result import (
    Document,
    ImportFailed,
    ImportResult,
    Note,
    Where,
    new_document,
)
from controller.importers.sources import read_text

# Properties Pacemaker writes itself: state, not configuration.
_STATE = (
    "dc-version",
    "cluster-infrastructure",
    "have-watchdog",
    "last-lrm-refresh",
    "cluster-name",
    "expected-quorum-votes",
)
_USED = ("stonith-enabled", "default-resource-stickiness")


def _node_names(model: Pacemaker) -> dict[str, str]:
    names: dict[str, str] = {}
    for node, where in model.nodes.items():
        vigil = node if is_name(node) else to_name(node)
        if vigil is None or vigil in names.values():
            raise where.fail(f"node {node!r} cannot be given a distinct Vigil name")
        names[node] = vigil
    return names


def _cluster(
    model: Pacemaker,
    names: Mapping[str, str],
    cluster_name: str,
    addresses: Mapping[str, list[str]],
    file: str,
    out: ImportResult,
) -> None:
    by_node = parse_addresses(addresses, names)
    missing = [n for n, v in names.items() if v not in by_node]
    if missing:
        raise model.nodes[missing[0]].fail(
            f"the CIB gives no address for node {missing[0]!r}: pass --address "
            f"{missing[0]}=IP for {', '.join(missing)}"
        )
    spec: dict[str, Any] = {
        "nodes": [{"name": v, "address": by_node[v][0]} for v in names.values()],
        "quorum": {"mode": "two-node" if len(names) == 2 else "majority"},
    }
    enabled = model.properties.get("stonith-enabled", ("true", Where(file)))[0]
    if enabled.lower() in ("false", "no", "0", "off"):
        spec["fencing"] = {"enabled": False}
    doc: Document = new_document("Cluster", cluster_name, spec, Where(file))
    doc.comment(
        ("spec",),
        Note(
            "approximated",
            Where(file),
            "heartbeat timings",
            "they are corosync's (totem token), not in the CIB: Vigil's defaults apply; "
            "import ha.cf with the CIB for a Heartbeat 2 cluster",
        ),
    )
    for source, vigil in names.items():
        if source != vigil:
            index = list(names.values()).index(vigil)
            doc.comment(
                ("spec", "nodes", index),
                Note("approximated", model.nodes[source], f"node {source}", f"renamed {vigil}"),
            )
        else:
            out.ok()
    out.documents.insert(0, doc)


def _properties(model: Pacemaker, out: ImportResult) -> None:
    for key, (value, where) in model.properties.items():
        if key in _USED:
            out.ok()
        elif key in _STATE:
            out.note(Note("dropped", where, f"property {key}={value}", "written by Pacemaker"))
        elif key == "no-quorum-policy":
            out.note(
                Note(
                    "dropped",
                    where,
                    f"property {key}={value}",
                    "Vigil's quorum mode decides (two-node or majority)",
                )
            )
        else:
            out.note(Note("dropped", where, f"property {key}={value}", "no Vigil counterpart"))
    for key, (value, where) in model.rsc_defaults.items():
        if key == "resource-stickiness":
            out.ok()
        else:
            out.note(
                Note(
                    "dropped", where, f"rsc_defaults {key}={value}", "set it on each ResourceGroup"
                )
            )
    for where, what, why in model.ignored:
        out.note(Note("dropped", where, what, why))


def import_pacemaker(
    paths: Sequence[Path], cluster_name: str, addresses: Mapping[str, list[str]]
) -> ImportResult:
    config = [
        p
        for p in paths
        if p.name not in ("ha.cf", "authkeys") and not p.name.endswith((".conf", ".res"))
    ]
    if len(config) != 1:
        raise ImportFailed(
            "give one cib.xml or crm configuration file (and optionally ha.cf, authkeys, "
            f"drbd.conf); got {', '.join(map(str, config)) or 'none'}"
        )
    source = config[0]
    text = read_text(source)
    is_xml = source.suffix == ".xml" or text.lstrip().startswith("<")
    model = read_cib(text, str(source)) if is_xml else read_crm(text, str(source))
    out = ImportResult()
    hacf_path = next((p for p in paths if p.name == "ha.cf"), None)
    if hacf_path is not None:
        hacf = import_hacf(read_text(hacf_path), str(hacf_path), cluster_name, addresses, out)
        names = hacf.nodes
        for node, where in model.nodes.items():
            if node not in names:
                raise where.fail(f"node {node!r} of the CIB is not a node of {hacf_path}")
    else:
        if not model.nodes:
            raise ImportFailed(f"{source}: names no node: add `node NAME` lines, or give ha.cf")
        names = _node_names(model)
        _cluster(model, names, cluster_name, addresses, str(source), out)
    devices: dict[str, str] = {}
    drbd_path = next((p for p in paths if p.name.endswith((".conf", ".res"))), None)
    if drbd_path is not None:
        drbd = import_drbd(drbd_path, names)
        devices = drbd.devices
        out.merge(drbd.result)
    auth = next((p for p in paths if p.name == "authkeys"), None)
    if auth is not None:
        import_authkeys(read_text(auth), str(auth), out)
    import_resources(model, names, devices, out)
    _properties(model, out)
    return out
