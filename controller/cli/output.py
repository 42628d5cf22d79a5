"""Printing objects: tables that fit a terminal, YAML/JSON for programs, names for pipes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

from controller.api.cluster import Cluster
from controller.api.fencing import FenceDevice
from controller.api.group import ResourceGroup
from controller.api.meta import API_VERSION, Object
from controller.api.node import Node
from controller.api.units import format_size
from controller.api.volume import ReplicatedVolume

# NONE is defined beside the volume words, which output uses (an import the other way
# would be a cycle); re-exported here, where every other command takes it from.
from controller.status.volume_text import NONE as NONE
from controller.status.volume_text import replica_columns

FORMATS = ("table", "wide", "yaml", "json", "name")

Column = tuple[str, Callable[[Object], str]]


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """kubectl-style age: 42s, 5m, 3h, 12d."""
    if moment is None:
        return NONE
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _age(obj: Object) -> str:
    return age(obj.metadata.creation_timestamp)


def _cluster_columns(wide: bool) -> list[Column]:
    def c(obj: Object) -> Cluster:
        assert isinstance(obj, Cluster)
        return obj

    cols: list[Column] = [
        ("NAME", lambda o: o.name),
        ("NODES", lambda o: str(len(c(o).spec.nodes))),
        ("QUORUM", lambda o: c(o).spec.quorum.mode),
        # Requested in the spec, but no fence device is called yet (status/protection.py).
        ("FENCING", lambda o: "on" if c(o).spec.fencing.enabled else "OFF"),
        ("LEADER", lambda o: c(o).status.leader or NONE),
        ("AGE", _age),
    ]
    if wide:
        cols.insert(2, ("MEMBERS", lambda o: ",".join(n.name for n in c(o).spec.nodes)))
    return cols


def _node_columns(wide: bool) -> list[Column]:
    def n(obj: Object) -> Node:
        assert isinstance(obj, Node)
        return obj

    cols: list[Column] = [
        ("NAME", lambda o: o.name),
        ("STATUS", lambda o: n(o).status.phase),
        ("STANDBY", lambda o: "yes" if n(o).spec.standby else "no"),
        ("AGE", _age),
    ]
    if wide:
        cols.insert(3, ("AGENT", lambda o: n(o).status.agent_version or NONE))
    return cols


def _fence_columns(wide: bool) -> list[Column]:
    def f(obj: Object) -> FenceDevice:
        assert isinstance(obj, FenceDevice)
        return obj

    cols: list[Column] = [
        ("NAME", lambda o: o.name),
        ("AGENT", lambda o: f(o).spec.agent),
        ("TARGETS", lambda o: ",".join(f(o).spec.targets)),
        ("ADDRESS", lambda o: f(o).spec.address or NONE),
        ("AGE", _age),
    ]
    if wide:
        cols.insert(4, ("LEVEL", lambda o: str(f(o).spec.level)))
    return cols


def _size(value: int | None) -> str:
    return format_size(value) if value else "auto"


def _volume_columns(wide: bool) -> list[Column]:
    def v(obj: Object) -> ReplicatedVolume:
        assert isinstance(obj, ReplicatedVolume)
        return obj

    def state(column: str) -> Callable[[Object], str]:
        def cell(obj: Object) -> str:
            volume = v(obj)
            entries = {s.node: s for s in volume.status.replicas}
            return replica_columns(entries, [r.node for r in volume.spec.replicas])[column]

        return cell

    cols: list[Column] = [
        ("NAME", lambda o: o.name),
        ("REPLICAS", lambda o: ",".join(r.node for r in v(o).spec.replicas)),
        ("ROLE", state("ROLE")),
        ("DISK", state("DISK")),
        ("CONNECTION", state("CONNECTION")),
        ("SYNC", state("SYNC")),
        ("AGE", _age),
    ]
    if wide:
        cols[6:6] = [
            ("PROTOCOL", lambda o: v(o).spec.protocol),
            ("SIZE", lambda o: _size(v(o).spec.size)),
            ("ADDRESSES", lambda o: ",".join(r.address for r in v(o).spec.replicas)),
        ]
    return cols


def _group_columns(wide: bool) -> list[Column]:
    def g(obj: Object) -> ResourceGroup:
        assert isinstance(obj, ResourceGroup)
        return obj

    def preferred(obj: Object) -> str:
        nodes = g(obj).spec.placement.nodes
        return max(nodes, key=lambda n: n.score).name if nodes else "any"

    def addresses(obj: Object) -> str:
        ips = [r.ip.address for r in g(obj).spec.resources if r.ip]
        return ",".join(ips) or NONE

    cols: list[Column] = [
        ("NAME", lambda o: o.name),
        ("NODE", lambda o: g(o).status.node or NONE),
        ("PHASE", lambda o: g(o).status.phase if g(o).spec.enabled else "Disabled"),
        ("RESOURCES", lambda o: str(len(g(o).spec.resources))),
        ("AGE", _age),
    ]
    if wide:
        cols[4:4] = [
            ("PREFERRED", preferred),
            ("STICKINESS", lambda o: str(g(o).spec.placement.stickiness)),
            ("ADDRESSES", addresses),
        ]
    return cols


_COLUMNS: dict[str, Callable[[bool], list[Column]]] = {
    "Cluster": _cluster_columns,
    "Node": _node_columns,
    "FenceDevice": _fence_columns,
    "ReplicatedVolume": _volume_columns,
    "ResourceGroup": _group_columns,
}

_GOOD = {"Running", "Ready", "on", "yes"}
_BAD = {"Failed", "StopFailed", "Lost", "Blocked", "OFF", "NotReady", "Fenced"}


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _paint(text: str, colour: bool) -> str:
    if not colour:
        return text
    if text in _GOOD:
        return f"\033[32m{text}\033[0m"
    if text in _BAD:
        return f"\033[31m{text}\033[0m"
    return text


def table(rows: Sequence[Sequence[str]], header: Sequence[str], colour: bool = False) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = []
    for i, row in enumerate([list(header), *rows]):
        cells = []
        for j, cell in enumerate(row):
            padded = cell.ljust(widths[j]) if j < len(row) - 1 else cell
            cells.append(padded if i == 0 else padded.replace(cell, _paint(cell, colour), 1))
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def object_rows(objects: Sequence[Object], wide: bool) -> tuple[list[str], list[list[str]]]:
    if not objects:
        return [], []
    columns = _COLUMNS[objects[0].KIND](wide)
    return [h for h, _ in columns], [[fn(o) for _, fn in columns] for o in objects]


def as_list_document(objects: Sequence[Object]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "List", "items": [o.to_dict() for o in objects]}


def render(objects: Sequence[Object], fmt: str, stream: TextIO, *, single: bool = False) -> None:
    """Print objects; ``single`` prints one object bare instead of a List."""
    if fmt in ("yaml", "json"):
        data = objects[0].to_dict() if single and len(objects) == 1 else as_list_document(objects)
        if fmt == "yaml":
            stream.write(to_yaml(data))
        else:
            stream.write(json.dumps(data, indent=2) + "\n")
        return
    if fmt == "name":
        for obj in objects:
            stream.write(f"{obj.KIND.lower()}/{obj.name}\n")
        return
    colour = use_colour(stream)
    kinds: list[str] = []
    for obj in objects:
        if obj.KIND not in kinds:
            kinds.append(obj.KIND)
    for i, kind in enumerate(kinds):
        group = [o for o in objects if kind == o.KIND]
        header, rows = object_rows(group, fmt == "wide")
        if len(kinds) > 1:
            stream.write(("\n" if i else "") + f"{kind}:\n")
        stream.write(table(rows, header, colour))


def err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
