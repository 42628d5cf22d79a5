"""Membership as the controller and the reconciler need it, whatever computes it.

The node agent's heartbeat service provides it (nodeagent/liveness.py); unit tests provide
a table (tests/unit/static_liveness.py). Keeping the controller on this small interface
keeps it testable without sockets, and lets two-node mode or a witness change how
liveness is computed. Pure and standard library only: the heartbeat fast path imports it
before anything heavy is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import asyncio

PeerState = Literal["up", "warn", "dead", "unknown"]
NodePhase = Literal["Ready", "NotReady", "Lost", "Fenced", "Unknown"]


@dataclass(frozen=True)
class Liveness:
    """One member as a node's heartbeat view sees it."""

    state: PeerState
    lost: bool  # declared lost by the majority rule of docs/safety.md
    # The member's current incarnation (a new one at every agent start or rejoin).
    incarnation: str | None = None

    @property
    def alive(self) -> bool:
        return self.state in ("up", "warn")


UNKNOWN = Liveness("unknown", False)


class FencedCheck(Protocol):
    def covers(self, incarnation: str | None) -> bool:
        """Whether this incarnation of the member is known to be powered off."""


def node_phase(seen: Liveness | None, fencing: FencedCheck | None = None) -> NodePhase:
    """The Node status phase the leader publishes for a member it sees so; `fencing`: the
    member's fencing record, if any."""
    if seen is None or seen.state == "unknown":
        return "Unknown"
    if seen.lost:
        return "Fenced" if fencing is not None and fencing.covers(seen.incarnation) else "Lost"
    return "Ready" if seen.alive else "NotReady"


# The way back, for readers of the published phase (`ha apply --dry-run`).
_PHASE_LIVENESS = {
    "Ready": Liveness("up", False),
    "NotReady": Liveness("dead", False),
    "Lost": Liveness("dead", True),
    "Fenced": Liveness("dead", True),
}


def from_phase(phase: str) -> Liveness:
    return _PHASE_LIVENESS.get(phase, UNKNOWN)


class LivenessSource(Protocol):
    def serving(self) -> bool:
        """Whether this node holds its serving lease (docs/safety.md) right now."""

    def liveness(self) -> dict[str, Liveness]:
        """Every member (this node included) as this node's heartbeat view sees it."""

    def subscribe(self) -> asyncio.Event:
        """An event set whenever serving() or any member's liveness changes."""
