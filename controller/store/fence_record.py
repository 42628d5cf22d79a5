"""``fencing/<node>``: the fencing of one node, requested, attempted, done. Pure.

Written with a compare-and-swap by the leader (which fences) and by ``ha fence`` (which
asks). One record per node, overwritten by each new fencing of it: the events keep the
history. A record is about one incarnation of the node (docs/safety.md, "Incarnations"):
a fence of incarnation X says nothing about the node's next life.

Each record reads what an older or newer version wrote without failing: a missing field
takes its default, an unknown one is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from controller.api.fencing import FenceOutcome

FenceState = Literal["requested", "fencing", "failed", "fenced", "confirm", "refused", "rejoined"]
# requested: wanted (a lost node, or `ha fence`); fencing: a leader runs an attempt;
# failed: the last attempt failed, the next one is due at retry_at; fenced: done and
# verified (or confirmed by an operator); confirm: `ha fence --confirm` asks the leader to
# record a manual power-off; refused: that request or an `ha fence` could not be honoured;
# rejoined: the node was heard again after it was fenced (a new incarnation).
_STATES = ("requested", "fencing", "failed", "fenced", "confirm", "refused", "rejoined")
OPEN_STATES = ("requested", "fencing", "failed")
MANUAL = "manual confirmation"


@dataclass(frozen=True)
class FenceRecord:
    node: str
    state: FenceState
    incarnation: str | None = None  # the incarnation being fenced; None: never heard
    reason: str = ""  # why it is fenced, for `ha status` and events
    requested_by: str = ""  # "controller on node-a", "ha fence (root on node-a)"
    requested_at: float = 0.0  # wall-clock seconds
    attempts: int = 0
    leader: str = ""  # the node whose controller made the last attempt
    message: str = ""  # what the last attempt did, or why it failed
    retry_at: float = 0.0  # failed: the next attempt is not due before this time
    fenced_at: float = 0.0
    fenced_by: tuple[str, ...] = ()  # the devices that fenced it, or (MANUAL,)
    outcomes: tuple[FenceOutcome, ...] = field(default=())  # of the last attempt

    @property
    def open(self) -> bool:
        """A fencing is wanted and not done."""
        return self.state in OPEN_STATES

    def covers(self, incarnation: str | None) -> bool:
        """Whether this record proves that incarnation of the node powered off."""
        return self.state == "fenced" and self.incarnation == incarnation

    def but(self, **changes: Any) -> FenceRecord:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "state": self.state,
            "incarnation": self.incarnation,
            "reason": self.reason,
            "requestedBy": self.requested_by,
            "requestedAt": self.requested_at,
            "attempts": self.attempts,
            "leader": self.leader,
            "message": self.message,
            "retryAt": self.retry_at,
            "fencedAt": self.fenced_at,
            "fencedBy": list(self.fenced_by),
            "outcomes": [_outcome_to_dict(o) for o in self.outcomes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FenceRecord:
        state = str(data.get("state", "requested"))
        incarnation = data.get("incarnation")
        return cls(
            node=str(data.get("node", "")),
            state=cast(FenceState, state if state in _STATES else "requested"),
            incarnation=str(incarnation) if incarnation else None,
            reason=str(data.get("reason", "")),
            requested_by=str(data.get("requestedBy", "")),
            requested_at=float(data.get("requestedAt", 0.0)),
            attempts=int(data.get("attempts", 0)),
            leader=str(data.get("leader", "")),
            message=str(data.get("message", "")),
            retry_at=float(data.get("retryAt", 0.0)),
            fenced_at=float(data.get("fencedAt", 0.0)),
            fenced_by=tuple(str(d) for d in data.get("fencedBy") or ()),
            outcomes=tuple(_outcome_from_dict(dict(o)) for o in data.get("outcomes") or ()),
        )


def _outcome_to_dict(outcome: FenceOutcome) -> dict[str, Any]:
    return {
        "device": outcome.device,
        "target": outcome.target,
        "action": outcome.action,
        "ok": outcome.ok,
        "verified": outcome.verified,
        "power": outcome.power,
        "message": outcome.message,
        "seconds": round(outcome.seconds, 3),
    }


def _outcome_from_dict(data: dict[str, Any]) -> FenceOutcome:
    action = str(data.get("action", "off"))
    power = str(data.get("power", "unknown"))
    return FenceOutcome(
        device=str(data.get("device", "")),
        target=str(data.get("target", "")),
        action=cast(Any, action if action in ("off", "on", "reboot", "status") else "off"),
        ok=bool(data.get("ok", False)),
        verified=bool(data.get("verified", False)),
        power=cast(Any, power if power in ("on", "off") else "unknown"),
        message=str(data.get("message", "")),
        seconds=float(data.get("seconds", 0.0)),
    )
