"""Records the controller and the agents exchange through the store, typed.

``placement/<group>``: where the leader wants a group (or nowhere), with an epoch that
increases at every change (docs/safety.md, "Placement changes").
``failures/<group>/<node>``: how often a group failed on a node, written by that node.
``nodes/<node>``: the node's agent is connected (on a lease) and how it hears its peers.
``leader``: which node's agent leads the controller (on the leader's lease).

Each record reads what an older or newer agent wrote without failing: a missing field
takes its default, an unknown one is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from controller.api.liveness import PeerState

_PEER_STATES = ("up", "warn", "dead", "unknown")


@dataclass(frozen=True)
class PlacementRecord:
    group: str
    node: str | None
    epoch: int
    reason: str
    # Set on a placement of no node that asks a live node to stop the group before it
    # moves: the next placement waits for that node to report the group stopped.
    stopping_from: str | None = None
    # Set when the group is recovered from a lost node: the new node checks on its own
    # heartbeat view that it no longer hears that node before starting.
    recovered_from: str | None = None
    leader: str = ""
    time: str = ""
    # The placed node's incarnation when placed: an agent that started again (a new
    # incarnation) keeps what runs but starts nothing until the leader confirms it.
    incarnation: str | None = None
    # The lost node's incarnation: the new node waits while it still hears that one.
    recovered_incarnation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "group": self.group,
            "node": self.node,
            "epoch": self.epoch,
            "reason": self.reason,
            "leader": self.leader,
            "time": self.time or datetime.now(UTC).isoformat(),
        }
        if self.stopping_from:
            data["stoppingFrom"] = self.stopping_from
        if self.recovered_from:
            data["recoveredFrom"] = self.recovered_from
        if self.incarnation:
            data["incarnation"] = self.incarnation
        if self.recovered_incarnation:
            data["recoveredIncarnation"] = self.recovered_incarnation
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlacementRecord:
        node = data.get("node")
        return cls(
            group=str(data["group"]),
            node=str(node) if node else None,
            epoch=int(data.get("epoch", 0)),
            reason=str(data.get("reason", "")),
            stopping_from=data.get("stoppingFrom") or None,
            recovered_from=data.get("recoveredFrom") or None,
            leader=str(data.get("leader", "")),
            time=str(data.get("time", "")),
            incarnation=data.get("incarnation") or None,
            recovered_incarnation=data.get("recoveredIncarnation") or None,
        )


@dataclass(frozen=True)
class FailureRecord:
    group: str
    node: str
    count: int
    last_failure: float  # wall-clock seconds: failure timeouts span agent restarts
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "node": self.node,
            "count": self.count,
            "lastFailure": self.last_failure,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FailureRecord:
        return cls(
            group=str(data["group"]),
            node=str(data["node"]),
            count=int(data.get("count", 0)),
            last_failure=float(data.get("lastFailure", 0.0)),
            message=str(data.get("message", "")),
        )


@dataclass(frozen=True)
class PeerView:
    """How a node hears one peer: its state, and per heartbeat link "up" or "down"."""

    state: PeerState
    links: dict[str, str] = field(default_factory=dict)
    last_heard: dict[str, float] = field(default_factory=dict)
    """Each "down" link: when it was last heard (Unix time on the node), fixed when it
    went silent so that the record does not change while it stays so."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "links": dict(self.links)}
        if self.last_heard:
            out["lastHeard"] = dict(self.last_heard)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeerView:
        state = str(data.get("state", "unknown"))
        links = {str(k): str(v) for k, v in dict(data.get("links") or {}).items()}
        heard = {str(k): float(v) for k, v in dict(data.get("lastHeard") or {}).items()}
        return cls(cast(PeerState, state if state in _PEER_STATES else "unknown"), links, heard)

    def degraded(self) -> list[str]:
        """The links that are down while another link to this peer is up: the peer is
        heard, with less redundancy than configured (LinkDegraded). With every link down
        the peer is silent, which is the peer's state, not a link's."""
        down = sorted(name for name, st in self.links.items() if st != "up")
        return down if len(down) < len(self.links) else []


@dataclass(frozen=True)
class NodeRecord:
    """``nodes/<node>``: written by the node's agent while it is connected to the store."""

    node: str
    pid: int
    version: str
    incarnation: str
    started: str
    serving: bool
    peers: dict[str, PeerView] = field(default_factory=dict)
    links: dict[str, dict[str, int]] = field(default_factory=dict)
    """Each heartbeat link's error counters: dropped bytes and bad frames (serial),
    refused packets and replays, send errors, reopens."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "node": self.node,
            "pid": self.pid,
            "version": self.version,
            "incarnation": self.incarnation,
            "started": self.started,
            "serving": self.serving,
            "peers": {name: peer.to_dict() for name, peer in self.peers.items()},
        }
        if self.links:
            out["links"] = {name: dict(c) for name, c in self.links.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeRecord:
        peers = dict(data.get("peers") or {})
        return cls(
            node=str(data.get("node", "")),
            pid=int(data.get("pid", 0)),
            version=str(data.get("version", "")),
            incarnation=str(data.get("incarnation", "")),
            started=str(data.get("started", "")),
            serving=bool(data.get("serving", False)),
            peers={str(name): PeerView.from_dict(dict(v)) for name, v in peers.items()},
            links={
                str(name): {str(k): int(n) for k, n in dict(c).items()}
                for name, c in dict(data.get("links") or {}).items()
            },
        )


@dataclass(frozen=True)
class LeaderRecord:
    """``leader``: the controller's leader, on the etcd lease it renews while it leads."""

    node: str
    lease: int
    pid: int = 0
    since: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "lease": self.lease, "pid": self.pid, "since": self.since}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeaderRecord:
        return cls(
            node=str(data.get("node", "")),
            lease=int(data.get("lease", 0)),
            pid=int(data.get("pid", 0)),
            since=str(data.get("since", "")),
        )
