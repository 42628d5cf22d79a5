"""Checks that span fields or objects, run on the whole state an apply would leave behind.

Pure functions over typed objects: no store, no I/O. Each finding names the
object, the field path and the fix, so that ``ha apply`` can refuse the change
with a message that needs no further digging.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

from controller.api.cluster import Cluster
from controller.api.decode import Loc, Problem
from controller.api.fencing import WATCHDOG_MAX_TIMEOUT, WATCHDOG_MIN_TIMEOUT, FenceDevice
from controller.api.group import VOLUME_DEVICE_PREFIX, ResourceGroup
from controller.api.meta import Object
from controller.api.node import Node
from controller.api.splitbrain import DISCARD_NODE
from controller.api.units import format_duration
from controller.api.volume import ReplicatedVolume

ObjectKey = tuple[str, str]
T = TypeVar("T", bound=Object)


class _NodeCheck(Protocol):
    def __call__(self, obj: Object, path: Loc, node: str, *, server_only: bool = True) -> None: ...


@dataclass(frozen=True)
class Finding:
    kind: str
    name: str
    problem: Problem

    @property
    def key(self) -> ObjectKey:
        return (self.kind, self.name)


class _Collector:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(self, obj: Object, path: Loc, message: str) -> None:
        self.findings.append(Finding(obj.KIND, obj.name, Problem(path, message)))


def _of_kind(objects: Iterable[Object], kind: type[T]) -> list[T]:
    return sorted((o for o in objects if isinstance(o, kind)), key=lambda o: o.name)


def validate_state(objects: Mapping[ObjectKey, Object]) -> list[Finding]:
    """Every cross-field and cross-object problem of the state, in a stable order."""
    out = _Collector()
    values = list(objects.values())
    clusters = _of_kind(values, Cluster)
    volumes = {v.name: v for v in _of_kind(values, ReplicatedVolume)}
    groups = {g.name: g for g in _of_kind(values, ResourceGroup)}
    fences = _of_kind(values, FenceDevice)

    if len(clusters) > 1:
        for extra in clusters[1:]:
            out.add(
                extra,
                ("metadata", "name"),
                f"a store holds one Cluster, and {clusters[0].name!r} exists; edit that one",
            )
    cluster = clusters[0] if clusters else None
    for c in clusters[:1]:
        _check_cluster(c, out)
    node_names = {n.name for n in cluster.spec.nodes} if cluster else set()
    servers = {n.name for n in cluster.spec.nodes if n.role == "server"} if cluster else set()

    def check_node(obj: Object, path: Loc, node: str, *, server_only: bool = True) -> None:
        if cluster is None:
            out.add(
                obj,
                path,
                f"node {node!r} is unknown: no Cluster object lists the nodes; "
                "apply the Cluster spec first or in the same apply",
            )
        elif node not in node_names:
            out.add(
                obj,
                path,
                f"node {node!r} is not in Cluster {cluster.name!r} "
                f"(nodes: {', '.join(sorted(node_names))})",
            )
        elif server_only and node not in servers:
            out.add(obj, path, f"node {node!r} is a witness and runs no resources")

    for node in _of_kind(values, Node):
        check_node(node, ("metadata", "name"), node.name, server_only=False)
    for fence in fences:
        _check_fence(fence, out, check_node)
    for volume in volumes.values():
        _check_volume(volume, out, check_node)
    for group in groups.values():
        _check_group(group, groups, volumes, out, check_node)
    _check_exclusive_claims(list(groups.values()), out)
    _check_volume_users(list(groups.values()), out)
    _check_dependency_cycles(groups, out)
    if cluster is not None and cluster.spec.fencing.enabled:
        _check_fence_coverage(cluster, fences, out)
    return out.findings


def _check_cluster(cluster: Cluster, out: _Collector) -> None:
    spec = cluster.spec
    for field in ("name", "address"):
        seen: dict[str, int] = {}
        for i, node in enumerate(spec.nodes):
            value = getattr(node, field)
            if value in seen:
                out.add(
                    cluster,
                    ("spec", "nodes", i, field),
                    f"{field} {value!r} is already used by spec.nodes[{seen[value]}]",
                )
            seen.setdefault(value, i)
    servers = [n for n in spec.nodes if n.role == "server"]
    if not servers:
        out.add(cluster, ("spec", "nodes"), "no node has role server: nothing could run")
    members = len(spec.nodes)
    if spec.quorum.mode == "two-node":
        if len(servers) != 2 or members != 2:
            out.add(
                cluster,
                ("spec", "quorum", "mode"),
                f"two-node mode needs exactly two server nodes and no witness; this cluster "
                f"has {len(servers)} server(s) and {members - len(servers)} witness(es): "
                "use mode majority",
            )
        if not spec.fencing.enabled:
            out.add(
                cluster,
                ("spec", "fencing", "enabled"),
                "two-node mode needs fencing: with two servers a cut cable looks like a dead "
                "peer, and only powering the peer off makes taking over safe. Set it to true "
                "and give each server a FenceDevice",
            )
    elif members == 2:
        out.add(
            cluster,
            ("spec", "quorum", "mode"),
            "two members with majority quorum stop everything when either fails: "
            "use mode two-node, or add a third member (a witness)",
        )
    t = spec.timing
    if t.deadtime <= 2 * t.keepalive:
        out.add(
            cluster,
            ("spec", "timing", "deadtime"),
            f"deadtime must exceed 2 x keepalive so that one lost packet is not a death; "
            f"raise deadtime above {_ms(2 * t.keepalive)} or lower keepalive",
        )
    if not t.keepalive < t.warntime < t.deadtime:
        out.add(
            cluster,
            ("spec", "timing", "warntime"),
            "warntime must be above keepalive and below deadtime "
            f"(keepalive {_ms(t.keepalive)}, deadtime {_ms(t.deadtime)})",
        )
    if t.initdead < t.deadtime:
        out.add(
            cluster,
            ("spec", "timing", "initdead"),
            f"initdead must be at least deadtime ({_ms(t.deadtime)}); Heartbeat advises twice",
        )
    for i, node in enumerate(spec.nodes):
        for j, link in enumerate(node.heartbeat):
            if link.udp and link.udp.peer == node.address:
                out.add(
                    cluster,
                    ("spec", "nodes", i, "heartbeat", j, "udp", "peer"),
                    "the peer of a heartbeat link cannot be the node's own address",
                )


def _ms(value: timedelta) -> str:
    return format_duration(value)


def _check_fence(fence: FenceDevice, out: _Collector, check_node: _NodeCheck) -> None:
    spec = fence.spec
    for i, target in enumerate(spec.targets):
        check_node(fence, ("spec", "targets", i), target, server_only=False)
    for node in spec.host_map:
        if node not in spec.targets:
            out.add(
                fence,
                ("spec", "hostMap", node),
                f"{node!r} is mapped but not in targets; add it to targets or drop the entry",
            )
    required = {
        "ipmi": ("address",),
        "redfish": ("address",),
        "fence-agent": ("fence_agent",),
        "exec": ("command",),
    }.get(spec.agent, ())
    aliases = {"address": "address", "fence_agent": "fenceAgent", "command": "command"}
    for field in required:
        if not getattr(spec, field):
            out.add(fence, ("spec", aliases[field]), f"agent {spec.agent} needs {aliases[field]}")
    if spec.agent == "watchdog" and len(spec.targets) != 1:
        out.add(
            fence,
            ("spec", "targets"),
            "a watchdog fences only the node it is in: give exactly one target",
        )
    if spec.agent == "watchdog":
        seconds = spec.timeout.total_seconds()
        if seconds != int(seconds) or not (WATCHDOG_MIN_TIMEOUT <= seconds <= WATCHDOG_MAX_TIMEOUT):
            out.add(
                fence,
                ("spec", "timeout"),
                f"a watchdog's timeout is whole seconds from {WATCHDOG_MIN_TIMEOUT} to "
                f"{WATCHDOG_MAX_TIMEOUT} (the kernel's WDIOC_SETTIMEOUT), got {seconds:g} s; "
                "give e.g. timeout: 10s (the node resets that long after it stops petting, "
                "and its groups are recovered a little later)",
            )


def _check_volume(volume: ReplicatedVolume, out: _Collector, check_node: _NodeCheck) -> None:
    replicas = volume.spec.replicas
    seen_nodes: dict[str, int] = {}
    seen_addresses: dict[str, int] = {}
    for i, replica in enumerate(replicas):
        check_node(volume, ("spec", "replicas", i, "node"), replica.node)
        if replica.node in seen_nodes:
            out.add(
                volume,
                ("spec", "replicas", i, "node"),
                f"replicas must be on distinct nodes; {replica.node!r} already holds "
                f"spec.replicas[{seen_nodes[replica.node]}]",
            )
        seen_nodes.setdefault(replica.node, i)
        if replica.address in seen_addresses:
            out.add(
                volume,
                ("spec", "replicas", i, "address"),
                f"address {replica.address} is already used by "
                f"spec.replicas[{seen_addresses[replica.address]}]",
            )
        seen_addresses.setdefault(replica.address, i)
    policy = volume.spec.split_brain.after_sb_0pri
    if policy.startswith(DISCARD_NODE):
        target = policy[len(DISCARD_NODE) :]
        if target not in seen_nodes:
            out.add(
                volume,
                ("spec", "splitBrain", "afterSB0Pri"),
                f"{policy}: {target!r} holds no replica of this volume "
                f"(replicas on {', '.join(r.node for r in replicas)})",
            )


def _check_group(
    group: ResourceGroup,
    groups: Mapping[str, ResourceGroup],
    volumes: Mapping[str, ReplicatedVolume],
    out: _Collector,
    check_node: _NodeCheck,
) -> None:
    spec = group.spec
    listed: dict[str, int] = {}
    for i, entry in enumerate(spec.placement.nodes):
        check_node(group, ("spec", "placement", "nodes", i, "name"), entry.name)
        if entry.name in listed:
            out.add(
                group,
                ("spec", "placement", "nodes", i, "name"),
                f"node {entry.name!r} is listed twice (spec.placement.nodes[{listed[entry.name]}])",
            )
        listed.setdefault(entry.name, i)
    if spec.placement.restricted and not listed:
        out.add(
            group,
            ("spec", "placement", "nodes"),
            "restricted placement with no nodes listed: the group could run nowhere",
        )
    move = spec.placement.move_to
    if move is not None:
        check_node(group, ("spec", "placement", "moveTo", "node"), move.node)
        if spec.placement.restricted and listed and move.node not in listed:
            out.add(
                group,
                ("spec", "placement", "moveTo", "node"),
                f"{move.node!r} is outside the group's restricted nodes",
            )
    for field, alias in (
        ("depends_on", "dependsOn"),
        ("colocate", "colocate"),
        ("anti_colocate", "antiColocate"),
    ):
        for i, other in enumerate(getattr(spec, field)):
            if other == group.name:
                out.add(group, ("spec", alias, i), f"a group cannot name itself in {alias}")
            elif other not in groups:
                out.add(group, ("spec", alias, i), f"ResourceGroup {other!r} does not exist")
    clash = set(spec.colocate) & set(spec.anti_colocate)
    for other in sorted(clash):
        out.add(group, ("spec", "antiColocate"), f"{other!r} is in both colocate and antiColocate")

    for i, resource in enumerate(spec.resources):
        probe = resource.probe
        if probe is not None and probe.timeout > probe.period:
            out.add(
                group,
                ("spec", "resources", i, "probe", "timeout"),
                f"probe timeout {_ms(probe.timeout)} is longer than its period "
                f"{_ms(probe.period)}: shorten the timeout or lengthen the period",
            )
    names: dict[str, int] = {}
    promoted: set[str] = set()
    for i, resource in enumerate(spec.resources):
        name = resource.resolved_name()
        if name in names:
            out.add(
                group,
                ("spec", "resources", i, "name"),
                f"resource name {name!r} is already used by spec.resources[{names[name]}]; "
                "give one of them a name",
            )
        names.setdefault(name, i)
        if resource.volume is not None:
            _check_volume_ref(
                group,
                (("spec", "resources", i, "volume", "name")),
                resource.volume.name,
                volumes,
                out,
            )
            promoted.add(resource.volume.name)
        if resource.filesystem is not None and resource.filesystem.device.startswith(
            VOLUME_DEVICE_PREFIX
        ):
            ref = resource.filesystem.device[len(VOLUME_DEVICE_PREFIX) :]
            path: Loc = ("spec", "resources", i, "filesystem", "device")
            if _check_volume_ref(group, path, ref, volumes, out) and ref not in promoted:
                out.add(
                    group,
                    path,
                    f"volume {ref!r} must be promoted before it is mounted: add "
                    f"`- volume: {{name: {ref}}}` earlier in spec.resources",
                )
    for ref in sorted(promoted):
        volume = volumes.get(ref)
        if volume is None:
            continue
        holders = {r.node for r in volume.spec.replicas}
        if spec.placement.restricted:
            outside = sorted(set(listed) - holders)
            if listed and not set(listed) & holders:
                # Said apart from the per-node message: the group could never start at all.
                out.add(
                    group,
                    ("spec", "placement", "nodes"),
                    f"the group can run on none of the replica nodes of volume {ref!r} "
                    f"({', '.join(sorted(holders))}): placement.nodes lists only "
                    f"{', '.join(outside)}; list the replica nodes instead",
                )
            elif outside:
                out.add(
                    group,
                    ("spec", "placement", "nodes"),
                    f"group may run on {', '.join(outside)} but volume {ref!r} has no "
                    f"replica there (replicas on {', '.join(sorted(holders))})",
                )
        else:
            out.add(
                group,
                ("spec", "placement", "restricted"),
                f"the group uses volume {ref!r}, which exists only on "
                f"{', '.join(sorted(holders))}: set restricted: true and list those nodes",
            )


def _check_volume_ref(
    group: ResourceGroup,
    path: Loc,
    ref: str,
    volumes: Mapping[str, ReplicatedVolume],
    out: _Collector,
) -> bool:
    if ref in volumes:
        return True
    known = ", ".join(sorted(volumes)) or "none"
    out.add(group, path, f"ReplicatedVolume {ref!r} does not exist (volumes: {known})")
    return False


def _check_exclusive_claims(groups: list[ResourceGroup], out: _Collector) -> None:
    """No two groups may bring up the same address or mount on the same directory. Each
    claimant is told of the other, so that whichever one an apply brings is the one named
    in its own file (not only the group already stored)."""
    ips: dict[object, list[tuple[ResourceGroup, int]]] = defaultdict(list)
    mounts: dict[object, list[tuple[ResourceGroup, int]]] = defaultdict(list)
    for group in groups:
        for i, entry in enumerate(group.spec.resources):
            if entry.ip is not None:
                ips[ipaddress.ip_interface(entry.ip.address).ip].append((group, i))
            if entry.filesystem is not None:
                mounts[entry.filesystem.mount_point.rstrip("/") or "/"].append((group, i))
    for claims, what, field in (
        (ips, "address", "ip.address"),
        (mounts, "mount point", "filesystem.mountPoint"),
    ):
        for value, claimants in claims.items():
            for group, i in claimants:
                others = [(g, j) for g, j in claimants if (g, j) != (group, i)]
                if not others:
                    continue
                named = ", ".join(
                    f"ResourceGroup {g.name!r} (spec.resources[{j}])" for g, j in others
                )
                out.add(
                    group,
                    ("spec", "resources", i, *field.split(".")),
                    f"{what} {value} is also claimed by {named}: one {what}, one group",
                )


def _check_volume_users(groups: list[ResourceGroup], out: _Collector) -> None:
    users: dict[str, str] = {}
    for group in groups:
        for i, entry in enumerate(group.spec.resources):
            if entry.volume is None:
                continue
            first = users.setdefault(entry.volume.name, group.name)
            if first != group.name:
                out.add(
                    group,
                    ("spec", "resources", i, "volume", "name"),
                    f"volume {entry.volume.name!r} is already used by ResourceGroup "
                    f"{first!r}; a volume is Primary on one node, for one group",
                )


def _check_dependency_cycles(groups: Mapping[str, ResourceGroup], out: _Collector) -> None:
    edges: dict[str, list[str]] = defaultdict(list)
    for group in groups.values():
        edges[group.name] = [d for d in group.spec.depends_on if d in groups]
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        stack.append(name)
        for nxt in edges[name]:
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    out.add(
                        groups[name],
                        ("spec", "dependsOn"),
                        f"dependency cycle: {' -> '.join(cycle)}; no group could start",
                    )
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [])


def _check_fence_coverage(cluster: Cluster, fences: list[FenceDevice], out: _Collector) -> None:
    covered = {t for f in fences for t in f.spec.targets}
    for i, node in enumerate(cluster.spec.nodes):
        if node.role == "server" and node.name not in covered:
            out.add(
                cluster,
                ("spec", "nodes", i, "name"),
                f"fencing is on but no FenceDevice targets node {node.name!r}: add one "
                "(ipmi, redfish, fence-agent, exec or watchdog), or set "
                "spec.fencing.enabled: false knowing a lost node's groups may then run twice",
            )
        elif node.role == "server" and cluster.spec.quorum.mode == "two-node":
            # The survivor of a two-node cluster powers its peer off before it carries the
            # store on alone (nodeagent/two_node.py); a watchdog cannot be run from there.
            active = {t for f in fences if f.spec.agent != "watchdog" for t in f.spec.targets}
            if node.name not in active:
                out.add(
                    cluster,
                    ("spec", "nodes", i, "name"),
                    f"two-node mode: only a watchdog targets node {node.name!r}, and the "
                    "survivor must power its peer off itself: add an ipmi, redfish, "
                    "fence-agent or exec FenceDevice targeting it",
                )
