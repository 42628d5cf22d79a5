"""Replica status (``ReplicaNode.status()``) as Prometheus text exposition format 0.0.4.

Pure: a status dict in, text out. States are exposed kube-state-metrics style: one sample
per known state, 1 on the current one and 0 on the others, so a state change is a value
change on a stable series (``blockrepl_connection_state{state="Connected"} == 0`` alerts
without ``absent()``). A state this module does not know yet (another version, a new
feature) still gets its own sample rather than disappearing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "blockrepl_"

ROLES = ("Primary", "Secondary")
PEER_ROLES = ("Primary", "Secondary", "Unknown")
CONNECTION_STATES = (
    "StandAlone",
    "Connecting",
    "Connected",
    "SyncSource",
    "SyncTarget",
    "VerifySource",
    "VerifyTarget",
    "SplitBrain",
    "Refused",
)
DISK_STATES = (
    "Diskless",
    "Failed",
    "Inconsistent",
    "Outdated",
    "DUnknown",
    "Consistent",
    "UpToDate",
)

Labels = Sequence[tuple[str, str]]


@dataclass
class Family:
    name: str
    kind: str  # "gauge" or "counter"
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _num(value: Any) -> float:
    """A status number; None (not known / not applicable) becomes NaN, never a fake 0."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"status value {value!r}: expected a number or None")
    return float(value)


class _Builder:
    def __init__(self) -> None:
        self.families: dict[str, Family] = {}

    def add(self, name: str, kind: str, help: str, labels: Labels, value: float) -> None:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = Family(PREFIX + name, kind, help)
        fam.samples.append((labels, value))

    def states(
        self, name: str, help: str, volume: str, label: str, known: Iterable[str], current: str
    ) -> None:
        names = list(known)
        if current not in names:
            names.append(current)
        for state in names:
            self.add(name, "gauge", help, (("volume", volume), (label, state)), state == current)


def families(statuses: Iterable[Mapping[str, Any]]) -> list[Family]:
    b = _Builder()
    for st in statuses:
        _one(b, st)
    return list(b.families.values())


def _one(b: _Builder, st: Mapping[str, Any]) -> None:
    vol = str(st["volume"])
    v: Labels = (("volume", vol),)
    b.add("info", "gauge", "Replica settings.", (*v, ("protocol", str(st["protocol"]))), 1)
    b.states(
        "role", "Role of this replica (1 on the current role).", vol, "role", ROLES, st["role"]
    )
    b.states(
        "connection_state",
        "Replication connection state (1 on the current state).",
        vol,
        "state",
        CONNECTION_STATES,
        str(st["connection"]),
    )
    b.states(
        "disk_state",
        "Local disk state (1 on the current state).",
        vol,
        "state",
        DISK_STATES,
        st["disk"],
    )
    b.states(
        "peer_role",
        "Role of the connected peer; Unknown while not connected.",
        vol,
        "role",
        PEER_ROLES,
        st.get("peer_role") or "Unknown",
    )
    b.states(
        "peer_disk_state",
        "Disk state of the connected peer; DUnknown while not connected.",
        vol,
        "state",
        DISK_STATES,
        st.get("peer_disk") or "DUnknown",
    )
    b.add(
        "out_of_sync_bytes",
        "gauge",
        "Bytes marked out of sync with the peer in the local bitmap.",
        v,
        _num(st["out_of_sync_bytes"]),
    )
    sync = st.get("sync")
    b.add("sync_active", "gauge", "1 while a resync runs.", v, sync is not None)
    sync = sync or {}
    b.add(
        "sync_total_bytes",
        "gauge",
        "Bytes the running resync set out to move (0 when none runs).",
        v,
        _num(sync.get("total_bytes", 0)),
    )
    b.add(
        "sync_done_bytes",
        "gauge",
        "Bytes the running resync has moved (0 when none runs).",
        v,
        _num(sync.get("done_bytes", 0)),
    )
    b.add(
        "sync_rate_bytes_per_second",
        "gauge",
        "Resync speed over the last seconds (0 when none runs, NaN until measured).",
        v,
        _num(sync.get("rate_bytes_per_s", 0 if not sync else None)),
    )
    b.add(
        "sync_eta_seconds",
        "gauge",
        "Estimated seconds until the running resync ends (0 when none runs, NaN if unknown).",
        v,
        _num(sync.get("eta_seconds", 0 if not sync else None)),
    )
    wire = st.get("wire") or {}
    b.add(
        "wire_received_bytes_total",
        "counter",
        "Bytes received on replication connections.",
        v,
        _num(wire.get("bytes_in", 0)),
    )
    b.add(
        "wire_sent_bytes_total",
        "counter",
        "Bytes sent on replication connections.",
        v,
        _num(wire.get("bytes_out", 0)),
    )
    b.add(
        "connections_total",
        "counter",
        "Replication connections established since start.",
        v,
        _num(wire.get("connections", 0)),
    )
    last = st.get("last_sync") or {}
    b.add(
        "last_sync_payload_bytes",
        "gauge",
        "Block data moved by the last (finished or interrupted) resync; NaN before the first.",
        v,
        _num(last.get("payload_bytes", last.get("done_bytes"))),
    )
    wire_bytes = None
    if last.get("wire_bytes_out") is not None:
        wire_bytes = last["wire_bytes_out"] + (last.get("wire_bytes_in") or 0)
    b.add(
        "last_sync_wire_bytes",
        "gauge",
        "Bytes on the wire, both directions, of the connection of the last finished resync.",
        v,
        _num(wire_bytes),
    )
    b.add(
        "last_sync_duration_seconds",
        "gauge",
        "Duration of the last finished resync (NaN before the first).",
        v,
        _num(last.get("seconds")),
    )
    b.add(
        "resync_rate_limit_bytes_per_second",
        "gauge",
        "Resync speed limit (0 = unlimited).",
        v,
        _num(st.get("resync_rate", 0)),
    )


def render_families(fams: Iterable[Family]) -> str:
    out: list[str] = []
    for fam in fams:
        out.append(f"# HELP {fam.name} {escape_help(fam.help)}")
        out.append(f"# TYPE {fam.name} {fam.kind}")
        for labels, value in fam.samples:
            text = ",".join(f'{k}="{escape_label(val)}"' for k, val in labels)
            out.append(f"{fam.name}{{{text}}} {format_value(float(value))}")
    return "\n".join(out) + "\n"


def render(*statuses: Mapping[str, Any]) -> str:
    """The exposition text for one or more replicas (one family block per metric)."""
    return render_families(families(statuses))
