"""Heartbeat's ha.cf to a Cluster: nodes, heartbeat media, timings, auto_failback."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.importers.durations import heartbeat_time
from controller.importers.hb_stonith import import_stonith_hosts
from controller.importers.names import is_name, to_name
from controller.importers.result import (
    Document,
    ImportFailed,
    ImportResult,
    Note,
    Outcome,
    Where,
    new_document,
)
from controller.importers.sources import Line, logical_lines

_BAUDS = (9600, 19200, 38400, 57600, 115200)
_TIMINGS = ("keepalive", "warntime", "deadtime", "initdead")

# Directives Vigil has no counterpart for, with the reason given in the note.
_DROPPED = {
    "logfile": "Vigil's agent logs to the journal (journalctl -u vigil-agent)",
    "logfacility": "Vigil's agent logs to the journal (journalctl -u vigil-agent)",
    "debugfile": "Vigil's agent logs to the journal (journalctl -u vigil-agent)",
    "use_logd": "Vigil's agent logs to the journal (journalctl -u vigil-agent)",
    "debug": "Vigil's agent logs to the journal (journalctl -u vigil-agent)",
    "ping": "Vigil has no ping nodes: give the group a probe, or a witness node for quorum",
    "ping_group": "Vigil has no ping nodes: give the group a probe, or a witness node for quorum",
    "deadping": "Vigil has no ping nodes",
    "respawn": "Vigil runs no side processes (pingd, ipfail): run them as a service of a group",
    "apiauth": "Vigil has no Heartbeat API clients",
    "hopfudge": "Vigil heartbeats are not forwarded by other nodes",
    "realtime": "Vigil's heartbeat process always runs at real-time priority",
    "coredumps": "set core dumps in the agent's systemd unit",
    "compression": "Vigil's heartbeat packets are small and not compressed",
    "traditional_compression": "Vigil's heartbeat packets are small and not compressed",
    "compression_threshold": "Vigil's heartbeat packets are small and not compressed",
    "msgfmt": "Vigil's heartbeat packet format is its own",
    "conn_logd_time": "Vigil has no logd",
    "uuidfrom": "Vigil names nodes only",
    "autojoin": "Vigil nodes join with a token (ha cluster join)",
    "hbgenmethod": "Vigil counts agent incarnations itself",
    "watchdog": "Heartbeat's watchdog only rebooted a hung node; Vigil's self-fencing is a "
    "FenceDevice with agent watchdog per node (ha explain fd)",
    "stonith": "a stonith configuration file is not read: write a FenceDevice per node",
    "crm": "",  # handled below
    "pacemaker": "",
}


@dataclass
class HaCf:
    """What haresources needs from ha.cf."""

    nodes: dict[str, str] = field(default_factory=dict)  # source name -> Vigil name
    node_lines: dict[str, Where] = field(default_factory=dict)
    stickiness: int = 100
    stickiness_note: Note | None = None
    crm: bool = False
    cluster: Document | None = None


# Heartbeat's own defaults, written out: Vigil's are far shorter.
_HB_DEFAULTS = {"keepalive": "2s", "deadtime": "30s", "initdead": "30s"}


def _ms(value: str) -> int:
    return int(value[:-2]) if value.endswith("ms") else int(value[:-1]) * 1000


def _timing(given: Mapping[str, str]) -> dict[str, str]:
    timing = {**_HB_DEFAULTS, **given}
    if "warntime" not in timing:
        middle = (_ms(timing["keepalive"]) + _ms(timing["deadtime"])) // 2
        timing["warntime"] = f"{middle}ms" if middle % 1000 else f"{middle // 1000}s"
    return {key: timing[key] for key in ("keepalive", "warntime", "deadtime", "initdead")}


def parse_addresses(
    addresses: Mapping[str, list[str]], names: Mapping[str, str]
) -> dict[str, list[str]]:
    """--address values keyed by Vigil name (either spelling of the node is accepted)."""
    out: dict[str, list[str]] = {}
    for given, values in addresses.items():
        vigil = names.get(given) or (given if given in names.values() else None)
        if vigil is None:
            raise ImportFailed(
                f"--address {given}=...: ha.cf names no node {given!r}; "
                f"its nodes are {', '.join(names) or 'none'}"
            )
        for value in values:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ImportFailed(
                    f"--address {given}={value}: {value!r} is not an IP address"
                ) from None
        out[vigil] = list(values)
    return out


def import_hacf(
    text: str, file: str, cluster_name: str, addresses: Mapping[str, list[str]], out: ImportResult
) -> HaCf:
    lines = logical_lines(text, file)
    hacf = HaCf()
    timing: dict[str, str] = {}
    media: list[tuple[str, list[str], Where]] = []
    baud: tuple[int, Where] | None = None
    loose: list[tuple[Line, Outcome, str]] = []
    stonith: list[Line] = []
    for line in lines:
        directive, *args = line.text.split()
        directive = directive.lower()
        if directive == "node":
            if not args:
                raise line.where.fail("`node` names no node: write `node NAME` (uname -n)")
            for name in args:
                vigil = name if is_name(name) else to_name(name)
                if vigil is None:
                    raise line.where.fail(f"node name {name!r} has no letter or digit to keep")
                if vigil in hacf.nodes.values() and name not in hacf.nodes:
                    raise line.where.fail(
                        f"nodes {name!r} and another both become {vigil!r} in Vigil: rename one"
                    )
                hacf.nodes[name] = vigil
                hacf.node_lines[name] = line.where
        elif directive in _TIMINGS:
            if len(args) != 1:
                raise line.where.fail(f"{directive} takes one time, e.g. `{directive} 2`")
            timing[directive] = heartbeat_time(args[0], line.where, directive)
        elif directive in ("bcast", "mcast", "ucast", "serial", "mcast6"):
            if not args:
                raise line.where.fail(f"{directive} names no interface or device")
            media.append((directive, args, line.where))
        elif directive == "baud":
            if len(args) != 1 or not args[0].isdigit():
                raise line.where.fail("baud takes a line speed, e.g. `baud 19200`")
            baud = (int(args[0]), line.where)
        elif directive == "udpport":
            if len(args) != 1 or not args[0].isdigit() or not 0 < int(args[0]) < 65536:
                raise line.where.fail("udpport takes a port number, e.g. `udpport 694`")
            if int(args[0]) == 694:
                loose.append((line, "translated", ""))
            else:
                loose.append(
                    (
                        line,
                        "approximated",
                        "Vigil's heartbeats between cluster addresses use "
                        "its own port; extra links (--address NODE=IP,IP2) use 694",
                    )
                )
        elif directive == "auto_failback":
            value = (args or [""])[0].lower()
            if value in ("on", "yes", "true"):
                hacf.stickiness = 0
            elif value in ("off", "no", "false"):
                hacf.stickiness = 100
            elif value == "legacy":
                hacf.stickiness = 100
                hacf.stickiness_note = Note(
                    "approximated",
                    line.where,
                    "auto_failback legacy",
                    "Vigil has no legacy mode (fail back only when the peer also runs "
                    "Heartbeat 1): the group stays where it runs (auto_failback off)",
                )
            else:
                raise line.where.fail(f"auto_failback {value!r}: expected on, off or legacy")
        elif directive in ("crm", "pacemaker"):
            value = (args or [""])[0].lower()
            hacf.crm = value in ("on", "yes", "true", "respawn")
            loose.append(
                (
                    line,
                    "dropped",
                    "the resources of a CRM cluster are in cib.xml: import it with "
                    "`ha import pacemaker cib.xml`; haresources is ignored, as Heartbeat did"
                    if hacf.crm
                    else "Heartbeat 1 resources (haresources) are imported",
                )
            )
        elif directive == "stonith_host":
            stonith.append(line)
        elif directive in _DROPPED:
            loose.append((line, "dropped", _DROPPED[directive]))
        else:
            loose.append((line, "dropped", "not a directive Vigil knows (a typo?)"))
    if not hacf.nodes:
        raise ImportFailed(
            f"{file}: no `node` line: ha.cf must name the cluster's nodes (one `node NAME` each)"
        )
    by_node = parse_addresses(addresses, hacf.nodes)
    missing = [n for n in hacf.nodes if hacf.nodes[n] not in by_node]
    if missing:
        where = hacf.node_lines[missing[0]]
        raise where.fail(
            f"ha.cf gives no address for node {missing[0]!r} (Heartbeat needs none, Vigil "
            f"needs each node's cluster address): pass --address {missing[0]}=IP for "
            f"{', '.join(missing)}"
        )
    spec_nodes: list[dict[str, Any]] = [
        {"name": vigil, "address": by_node[vigil][0]} for vigil in hacf.nodes.values()
    ]
    spec: dict[str, Any] = {"nodes": spec_nodes, "timing": _timing(timing)}
    servers = len(spec_nodes)
    spec["quorum"] = {"mode": "two-node" if servers == 2 else "majority"}
    if not stonith:
        # Heartbeat without STONITH left a dead peer as it was; a fenced node that stays off
        # until someone looks at it is the nearest Vigil behaviour (reboot would bring it
        # back by itself). With stonith_host, Heartbeat reset the peer: reboot, the default.
        spec["fencing"] = {"action": "off"}
    doc = new_document("Cluster", cluster_name, spec, Where(file))
    hacf.cluster = doc
    out.documents.append(doc)
    for source, vigil in hacf.nodes.items():
        index = list(hacf.nodes.values()).index(vigil)
        if source != vigil:
            doc.comment(
                ("spec", "nodes", index),
                Note(
                    "approximated",
                    hacf.node_lines[source],
                    f"node {source}",
                    f"renamed {vigil}: Vigil names are lower-case letters, digits and '-'; "
                    f"run its agent with this name",
                ),
            )
        else:
            out.ok()
    out.ok(len(timing))
    if "warntime" not in timing:
        doc.comment(
            ("spec", "timing", "warntime"),
            Note(
                "approximated",
                Where(file),
                "no warntime",
                "Heartbeat warned at its own default; Vigil's must lie between keepalive and "
                "deadtime: set halfway",
            ),
        )
    _media(media, baud, hacf, by_node, doc, out)
    covered = import_stonith_hosts(stonith, hacf.nodes, out)
    if not stonith:
        doc.comment(
            ("spec", "fencing"),
            Note(
                "approximated",
                Where(file),
                "no fencing action",
                "Heartbeat never restarted a dead peer: Vigil powers it off and leaves it off "
                "(action off); set reboot to have a fenced node come back by itself",
            ),
        )
    if servers == 2 and covered != set(hacf.nodes.values()):
        doc.comment(
            ("spec", "quorum"),
            Note(
                "approximated",
                Where(file),
                "two nodes without STONITH",
                "Heartbeat took over when the peer went silent; Vigil's two-node mode "
                "first powers the lost peer off: add a FenceDevice for each node "
                "(ha explain fd), `ha apply` refuses the cluster until then",
            ),
        )
    for line, outcome, why in loose:
        if outcome == "translated":
            out.ok()
            continue
        out.note(Note(outcome, line.where, line.text, why), doc, ())
    return hacf


def _media(
    media: list[tuple[str, list[str], Where]],
    baud: tuple[int, Where] | None,
    hacf: HaCf,
    by_node: Mapping[str, list[str]],
    doc: Document,
    out: ImportResult,
) -> None:
    nodes: list[dict[str, Any]] = doc.data["spec"]["nodes"]
    owner = {ip: node for node, ips in by_node.items() for ip in ips}
    speed = 19200  # Heartbeat's default
    broadcast = False
    if baud is not None:
        if baud[0] in _BAUDS:
            speed = baud[0]
            out.ok()
        else:
            out.note(
                Note(
                    "approximated",
                    baud[1],
                    f"baud {baud[0]}",
                    f"Vigil's serial links run at one of {', '.join(map(str, _BAUDS))}: "
                    "19200 is used (both ends are Vigil's)",
                ),
                doc,
                ("spec", "nodes"),
            )
    for directive, args, where in media:
        if directive in ("bcast", "mcast", "mcast6"):
            out.note(
                Note(
                    "approximated",
                    where,
                    f"{directive} {' '.join(args)}",
                    "Vigil sends heartbeats by unicast UDP to each peer's address, always on "
                    "the cluster address: to keep this network as a second path, pass "
                    "--address NODE=CLUSTER_IP,IP_ON_THIS_NETWORK for each node",
                ),
                doc,
                ("spec", "nodes"),
            )
            broadcast = True
        elif directive == "ucast":
            if len(args) != 2:
                raise where.fail("ucast takes an interface and an address: `ucast eth1 10.0.0.2`")
            interface, ip = args
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise where.fail(f"ucast address {ip!r} is not an IP address") from None
            node = owner.get(ip)
            if node is None:
                out.note(
                    Note(
                        "dropped",
                        where,
                        f"ucast {interface} {ip}",
                        f"no node has the address {ip}: pass --address NODE=CLUSTER_IP,{ip} "
                        "for the node that has it",
                    ),
                    doc,
                    ("spec", "nodes"),
                )
                continue
            if by_node[node][0] == ip:
                out.ok()  # the cluster address, on which Vigil heartbeats anyway
                continue
            for entry in nodes:
                if entry["name"] != node:
                    link = {"udp": {"interface": interface, "peer": ip}}
                    if link not in entry.setdefault("heartbeat", []):
                        entry["heartbeat"].append(link)
            out.ok()
        else:  # serial
            for device in args:
                if not device.startswith("/"):
                    raise where.fail(f"serial device {device!r} is not a path like /dev/ttyS0")
                for entry in nodes:
                    entry.setdefault("heartbeat", []).append(
                        {"serial": {"device": device, "baud": speed}}
                    )
                out.ok()
    if broadcast:
        _extra_links(nodes, by_node)


def _extra_links(nodes: list[dict[str, Any]], by_node: Mapping[str, list[str]]) -> None:
    """The unicast links a broadcast network becomes when each node's address on it is known
    (the second and later --address values); the route to the address picks the interface."""
    for entry in nodes:
        links = entry.setdefault("heartbeat", [])
        peers = {link["udp"]["peer"] for link in links if "udp" in link}
        for peer, ips in by_node.items():
            if peer == entry["name"]:
                continue
            for ip in ips[1:]:
                if ip not in peers:
                    links.append({"udp": {"peer": ip}})
                    peers.add(ip)
        if not links:
            entry.pop("heartbeat")
