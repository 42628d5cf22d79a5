"""drbd.conf (DRBD 0.7, 8.3, 8.4, 9) to ReplicatedVolumes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.api.splitbrain import AFTER_SB_0PRI, AFTER_SB_1PRI, AFTER_SB_2PRI, DISCARD_NODE
from controller.importers.drbd_syntax import Statement, parse_drbd
from controller.importers.durations import tenths
from controller.importers.names import is_name, to_name
from controller.importers.result import (
    Document,
    ImportFailed,
    ImportResult,
    Note,
    Where,
    new_document,
)
from controller.importers.result import (
    Path as DocPath,
)

# Options with no blockrepl counterpart, and why (the note beside the volume says so).
_DROPPED = {
    "al-extents": "blockrepl keeps its own activity log",
    "al-updates": "blockrepl keeps its own activity log",
    "wfc-timeout": "the cluster, not a boot script, waits for the peer and promotes",
    "degr-wfc-timeout": "the cluster, not a boot script, waits for the peer and promotes",
    "outdated-wfc-timeout": "the cluster, not a boot script, waits for the peer and promotes",
    "become-primary-on": "the group's placement decides where the volume is Primary",
    "incon-degr-cmd": "blockrepl never promotes inconsistent data; there is no command to run",
    "allow-two-primaries": "a volume is Primary on one node only, always",
    "verify-alg": "blockrepl verify uses its own checksums",
    "data-integrity-alg": "the replication link is checksummed by TCP or TLS (network.tls)",
    "cram-hmac-alg": "replicas authenticate with a secret derived from the cluster key",
    "max-buffers": "blockrepl sizes its own buffers",
    "max-epoch-size": "blockrepl sizes its own buffers",
    "sndbuf-size": "blockrepl sizes its own buffers",
    "rcvbuf-size": "blockrepl sizes its own buffers",
    "unplug-watermark": "blockrepl sizes its own buffers",
    "ko-count": "the link timeout alone declares the peer gone",
    "connect-int": "blockrepl retries the connection by itself",
    "ping-timeout": "the link timeout alone declares the peer gone",
    "c-plan-ahead": "blockrepl's resync rate is a fixed limit (resyncRate)",
    "c-fill-target": "blockrepl's resync rate is a fixed limit (resyncRate)",
    "c-max-rate": "blockrepl's resync rate is a fixed limit (resyncRate)",
    "c-min-rate": "blockrepl's resync rate is a fixed limit (resyncRate)",
    "group": "volumes resync independently",
    "resync-after": "volumes resync independently",
    "after": "volumes resync independently",
    "use-bmbv": "not needed by blockrepl",
    "no-disk-flushes": "blockrepl always flushes: a lost write is never acceptable",
    "no-md-flushes": "blockrepl always flushes: a lost write is never acceptable",
    "disk-flushes": "blockrepl always flushes",
    "md-flushes": "blockrepl always flushes",
    "disk-barrier": "blockrepl always flushes",
    "disk-drain": "blockrepl always flushes",
    "rr-conflict": "a volume is Primary on one node only; the cluster decides",
    "quorum": "the cluster's quorum decides where a volume may be Primary",
    "on-no-quorum": "the cluster's quorum decides where a volume may be Primary",
    "auto-promote": "the group's volume resource promotes",
    "node-id": "",
}
_HANDLER_WHY = {
    "fence-peer": "blockrepl outdates its peer in the store (outdatePeer) instead of calling "
    "a fence-peer handler; node fencing is the cluster's FenceDevices",
    "outdate-peer": "blockrepl outdates its peer in the store (outdatePeer)",
    "unfence-peer": "the outdate record is removed by the resync itself",
    "split-brain": "a split brain is reported by `ha status` and `ha events`",
    "pri-lost-after-sb": "no handler runs: Vigil's policies choose which data to keep",
    "pri-on-incon-degr": "blockrepl never promotes inconsistent data",
    "local-io-error": "onIOError detaches the disk; no handler runs",
    "before-resync-target": "no handler runs around a resync (snapshots are the operator's)",
    "after-resync-target": "no handler runs around a resync",
    "initial-split-brain": "a split brain is reported by `ha status` and `ha events`",
}
_SB = {
    "after-sb-0pri": "afterSB0Pri",
    "after-sb-1pri": "afterSB1Pri",
    "after-sb-2pri": "afterSB2Pri",
}
_SB_CHOICES = {
    "after-sb-0pri": AFTER_SB_0PRI,
    "after-sb-1pri": AFTER_SB_1PRI,
    "after-sb-2pri": AFTER_SB_2PRI,
}
_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")


@dataclass
class DrbdImport:
    result: ImportResult
    devices: dict[str, str] = field(default_factory=dict)  # /dev/drbd0 -> volume name
    files: list[Path] = field(default_factory=list)


@dataclass
class _Volume:
    name: str
    where: Where
    spec: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[DocPath, Note]] = field(default_factory=list)
    translated: int = 0
    secret: str | None = None

    def note(self, outcome: str, where: Where, what: str, why: str, path: DocPath = ()) -> None:
        assert outcome in ("approximated", "dropped")
        self.notes.append((path, Note(outcome, where, what, why)))  # type: ignore[arg-type]


def _one(statement: Statement) -> str:
    if len(statement.args) != 1:
        raise statement.where.fail(
            f"{statement.keyword} takes one value; found {len(statement.args)} (a missing ';'?)"
        )
    return statement.args[0]


def _rate(statement: Statement) -> str:
    value = _one(statement)
    match = _SIZE.match(value)
    if not match:
        raise statement.where.fail(
            f"{statement.keyword} {value!r} is not a rate like 10M or 700000K"
        )
    number, unit = match.groups()
    # DRBD's rates are in KiB/s when no unit is given.
    return f"{number}{(unit or 'K').upper()}"


def _options(statement: Statement, volume: _Volume) -> None:
    """One option of a resource, common, disk, net, syncer or startup section."""
    key, spec, where = statement.keyword, volume.spec, statement.where
    if key == "protocol":
        value = _one(statement).upper()
        if value not in ("A", "B", "C"):
            raise where.fail(f"protocol {value!r}: expected A, B or C")
        spec["protocol"] = value
    elif key in ("rate", "resync-rate"):
        spec["resyncRate"] = _rate(statement)
    elif key == "csums-alg":
        spec["checksumResync"] = True
        volume.note(
            "approximated",
            where,
            f"csums-alg {_one(statement)}",
            "blockrepl compares blocks with its own checksum",
            ("spec", "checksumResync"),
        )
        return
    elif key == "on-io-error":
        value = _one(statement)
        if value in ("detach", "pass_on"):
            spec["onIOError"] = value
        elif value in ("panic", "call-local-io-error"):
            spec["onIOError"] = "detach"
            volume.note(
                "approximated",
                where,
                f"on-io-error {value}",
                "the replica detaches its disk and serves through the peer; the node "
                "neither panics nor runs a handler",
                ("spec", "onIOError"),
            )
            return
        else:
            raise where.fail(
                f"on-io-error {value!r}: expected detach, pass_on, call-local-io-error or panic"
            )
    elif key == "fencing":
        value = _one(statement)
        if value == "dont-care":
            spec["outdatePeer"] = "dont-care"
        elif value in ("resource-only", "resource-and-stonith"):
            spec["outdatePeer"] = "resource-only"
            if value == "resource-and-stonith":
                volume.note(
                    "approximated",
                    where,
                    "fencing resource-and-stonith",
                    "the peer is outdated in the store (resource-only); I/O is not frozen: "
                    "node fencing is the cluster's (FenceDevices)",
                    ("spec", "outdatePeer"),
                )
                return
        else:
            raise where.fail(
                f"fencing {value!r}: expected dont-care, resource-only or resource-and-stonith"
            )
    elif key in _SB:
        value = _one(statement)
        ok = value in _SB_CHOICES[key] or (
            key == "after-sb-0pri" and value.startswith(DISCARD_NODE)
        )
        if not ok:
            raise where.fail(f"{key} {value!r}: expected one of {', '.join(_SB_CHOICES[key])}")
        if value.startswith(DISCARD_NODE):
            node = value[len(DISCARD_NODE) :]
            value = DISCARD_NODE + (node if is_name(node) else to_name(node) or node)
        spec.setdefault("splitBrain", {})[_SB[key]] = value
    elif key == "timeout":
        spec.setdefault("network", {})["timeout"] = tenths(_one(statement), where, key)
    elif key == "ping-int":
        seconds = _one(statement)
        if not seconds.isdigit():
            raise where.fail(f"ping-int {seconds!r} is not a number of seconds")
        spec.setdefault("network", {})["keepalive"] = f"{seconds}s"
    elif key == "shared-secret":
        volume.secret = _one(statement)
        volume.note(
            "approximated",
            where,
            "shared-secret",
            "the replicas authenticate with a secret derived from the cluster key; this one "
            f"was kept in {volume.name}.shared-secret (mode 0600), never in the YAML",
        )
        return
    elif key in _DROPPED:
        if _DROPPED[key]:
            volume.note(
                "dropped", where, f"{key} {' '.join(statement.args)}".strip(), _DROPPED[key]
            )
        return
    else:
        volume.note(
            "dropped",
            where,
            f"{key} {' '.join(statement.args)}".strip(),
            "not a DRBD option Vigil knows",
        )
        return
    volume.translated += 1


def _section(section: Statement, volume: _Volume) -> None:
    for child in section.children or []:
        if child.children is not None:
            raise child.where.fail(f"{child.keyword} {{...}} cannot be inside {section.keyword}")
        _options(child, volume)


def _handlers(section: Statement, volume: _Volume) -> None:
    for child in section.children or []:
        why = _HANDLER_WHY.get(child.keyword, "Vigil runs no DRBD handlers")
        outcome = "approximated" if child.keyword in ("fence-peer", "outdate-peer") else "dropped"
        volume.note(outcome, child.where, f"handler {child.keyword}", why)


def _host(
    section: Statement, volume: _Volume, inherited: dict[str, str], nodes: Mapping[str, str]
) -> dict[str, Any]:
    if len(section.args) != 1:
        raise section.where.fail("`on` takes one host name: on host-m { ... }")
    host = section.args[0]
    node = nodes.get(host) or (host if is_name(host) else to_name(host))
    if node is None:
        raise section.where.fail(f"host name {host!r} cannot be a node name")
    if node != host and host not in nodes:
        volume.note("approximated", section.where, f"on {host}", f"node {node}")
    values = dict(inherited)
    for child in section.children or []:
        if child.children is not None and child.keyword == "volume":
            values.update(_volume_block(child))
            continue
        if child.keyword in ("device", "disk", "meta-disk", "flexible-meta-disk"):
            values[child.keyword] = _device_value(child)
        elif child.keyword == "address":
            values["address"] = _address(child, volume)
        elif child.keyword == "node-id":
            pass
        else:
            volume.note("dropped", child.where, child.keyword, "not a DRBD host option Vigil knows")
    for needed in ("disk", "address"):
        if needed not in values:
            raise section.where.fail(f"on {host}: no `{needed}`: DRBD needs it and so does Vigil")
    replica: dict[str, Any] = {"node": node, "disk": values["disk"], "address": values["address"]}
    meta = values.get("meta-disk") or values.get("flexible-meta-disk") or "internal"
    if meta != "internal":
        path, _, index = meta.partition("[")
        if not path.startswith("/"):
            raise section.where.fail(
                f"on {host}: meta-disk {meta!r}: expected internal or a device path"
            )
        replica["metaDisk"] = path
        if index:
            volume.note(
                "approximated",
                section.where,
                f"meta-disk {meta}",
                f"blockrepl keeps one volume's metadata per device: {path} as a whole",
            )
    if not replica["disk"].startswith("/"):
        raise section.where.fail(f"disk {replica['disk']!r} is not a device path")
    replica["_device"] = values.get("device", "")
    return replica


def _device_value(statement: Statement) -> str:
    args = statement.args
    # DRBD 8.4+: `device /dev/drbd0 minor 0;` or `device minor 0;`
    if len(args) >= 2 and args[-2] == "minor":
        return f"/dev/drbd{args[-1]}" if len(args) == 2 else args[0]
    if len(args) == 2 and statement.keyword.endswith("meta-disk"):
        return f"{args[0]}[{args[1]}]"
    return _one(statement)


def _address(statement: Statement, volume: _Volume) -> str:
    args = statement.args
    if len(args) == 2 and args[0] in ("ipv4", "ipv6", "ssocks", "sdp", "sci"):
        if args[0] not in ("ipv4", "ipv6"):
            volume.note("approximated", statement.where, f"address family {args[0]}", "plain TCP")
        value = args[1]
    else:
        value = _one(statement)
    if not re.match(r"^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d+$", value):
        raise statement.where.fail(
            f"address {value!r} is not ip:port (e.g. 192.168.2.11:7789 or [fd00::1]:7789)"
        )
    return value


def _volume_block(section: Statement) -> dict[str, str]:
    values: dict[str, str] = {}
    for child in section.children or []:
        if child.keyword in ("device", "disk", "meta-disk", "flexible-meta-disk"):
            values[child.keyword] = _device_value(child)
    return values


def _resource(
    section: Statement, common: list[Statement], nodes: Mapping[str, str], out: DrbdImport
) -> None:
    if len(section.args) != 1:
        raise section.where.fail("resource takes one name: resource r0 { ... }")
    source = section.args[0]
    name = to_name(source)
    if name is None:
        raise section.where.fail(f"resource name {source!r} cannot be a volume name")
    if out.result.find("ReplicatedVolume", name):
        raise section.where.fail(f"resource {source} is defined twice (as volume {name})")
    volume = _Volume(name, section.where, {"checksumResync": False})
    if name != source:
        volume.note("approximated", section.where, f"resource {source}", f"volume {name}")
    inherited: dict[str, str] = {}
    hosts: list[Statement] = []
    volumes = section.sections("volume")
    for block in [*common, *(section.children or [])]:
        if block.children is None:
            if block.keyword in ("device", "disk", "meta-disk", "flexible-meta-disk"):
                inherited[block.keyword] = _device_value(block)
            elif block.keyword == "floating":
                pass
            else:
                _options(block, volume)
        elif block.keyword in ("disk", "net", "syncer", "startup", "options"):
            _section(block, volume)
        elif block.keyword == "handlers":
            _handlers(block, volume)
        elif block.keyword == "on":
            hosts.append(block)
        elif block.keyword in ("connection", "connection-mesh", "skip", "volume"):
            for child in block.children:
                if child.children is not None and child.keyword in ("net", "disk"):
                    _section(child, volume)
        else:
            raise block.where.fail(
                f"`{' '.join([block.keyword, *block.args])} {{`: not a DRBD section (a ';' "
                "missing before it?)"
            )
    for reason, found in (
        ("a floating address", [s for s in section.children or [] if s.keyword == "floating"]),
        (
            "stacked-on-top-of",
            [s for s in section.children or [] if s.keyword == "stacked-on-top-of"],
        ),
        ("more than one volume", volumes[1:]),
    ):
        if found:
            _drop_resource(
                section,
                source,
                f"{reason}: blockrepl replicates one device between two named nodes",
                out,
            )
            return
    if volumes:
        inherited.update(_volume_block(volumes[0]))
    if len(hosts) != 2:
        _drop_resource(
            section,
            source,
            f"{len(hosts)} hosts: a ReplicatedVolume has exactly two replicas",
            out,
        )
        return
    replicas = [_host(h, volume, inherited, nodes) for h in hosts]
    for replica in replicas:
        device = replica.pop("_device")
        if device:
            out.devices.setdefault(device, name)
        out.devices.setdefault(f"/dev/drbd/by-res/{source}", name)
        out.devices.setdefault(f"/dev/drbd/by-res/{source}/0", name)
    volume.spec["replicas"] = replicas
    spec = {"protocol": volume.spec.pop("protocol", "C"), **volume.spec}
    doc: Document = new_document("ReplicatedVolume", name, spec, section.where)
    for path, note in volume.notes:
        doc.comment(path, note)
    out.result.documents.append(doc)
    out.result.ok(volume.translated + 1)
    if volume.secret is not None:
        out.result.secrets[f"{name}.shared-secret"] = volume.secret.encode() + b"\n"


def _drop_resource(section: Statement, source: str, why: str, out: DrbdImport) -> None:
    out.result.note(Note("dropped", section.where, f"DRBD resource {source}", why))


def import_drbd(path: Path, nodes: Mapping[str, str] | None = None) -> DrbdImport:
    """``nodes``: host names as the other files spell them -> Vigil node names."""
    statements, files = parse_drbd(path)
    out = DrbdImport(ImportResult(), files=files)
    common: list[Statement] = []
    for statement in statements:
        if statement.keyword == "common" and statement.children is not None:
            common.extend(statement.children)
    for statement in statements:
        if statement.keyword == "resource" and statement.children is not None:
            _resource(statement, common, nodes or {}, out)
        elif statement.keyword in ("global", "common"):
            if statement.keyword == "global":
                for child in statement.children or []:
                    out.result.note(
                        Note(
                            "dropped",
                            child.where,
                            f"global {child.keyword}",
                            "no Vigil counterpart",
                        )
                    )
        elif statement.keyword == "skip":
            continue
        else:
            raise statement.where.fail(
                f"{statement.keyword!r} at the top level: expected global, common, resource "
                "or include"
            )
    if not any(s.keyword == "resource" for s in statements):
        raise ImportFailed(f"{path}: no `resource` section: nothing to import")
    return out
