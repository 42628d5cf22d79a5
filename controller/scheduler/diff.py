"""What would change between two placements: the plan ``ha apply --dry-run`` shows."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.scheduler.model import Decision, DecisionStatus


class PlacementChangeKind(enum.StrEnum):
    STOP = "stop"
    MOVE = "move"
    START = "start"


@dataclass(frozen=True)
class PlacementChange:
    group: str
    kind: PlacementChangeKind
    from_node: str | None
    to_node: str | None
    reason: str

    def __str__(self) -> str:
        if self.kind is PlacementChangeKind.MOVE:
            where = f"{self.from_node} -> {self.to_node}"
        elif self.kind is PlacementChangeKind.STOP:
            where = f"on {self.from_node}"
        else:
            where = f"on {self.to_node}"
        return f"{self.kind.value} {self.group} {where}: {self.reason}"


def _node(value: Decision | str | None) -> str | None:
    if isinstance(value, Decision):
        return value.node
    return value


def diff_placements(
    old: Mapping[str, Decision | str | None],
    new: Mapping[str, Decision],
    order: Sequence[str] = (),
) -> list[PlacementChange]:
    """Stops first (reverse start order; groups ``order`` does not name stop first), then
    moves and starts (start order).

    ``old`` is the current placement (group -> node, or Placements); ``new`` is what
    ``schedule`` returned. ``order`` is a start order (``start_order``); groups it does not
    name follow by name. A group held for fencing changes nothing: it is left where it was.
    Groups missing from ``new`` (deleted specs) are stopped.
    """
    rank = {name: index for index, name in enumerate(order)}

    def start_key(name: str) -> tuple[int, str]:
        return (rank.get(name, len(rank)), name)

    stops: list[PlacementChange] = []
    others: list[PlacementChange] = []
    for name in sorted(set(old) | set(new)):
        before = _node(old.get(name))
        after = new.get(name)
        if after is not None and after.status is DecisionStatus.AWAITING_FENCING:
            continue
        target = after.runs_on if after is not None else None
        reason = after.reason if after is not None else "the group no longer exists"
        if before == target:
            continue
        if target is None:
            stops.append(PlacementChange(name, PlacementChangeKind.STOP, before, None, reason))
        elif before is None:
            others.append(PlacementChange(name, PlacementChangeKind.START, None, target, reason))
        else:
            others.append(PlacementChange(name, PlacementChangeKind.MOVE, before, target, reason))
    stops.sort(key=lambda change: (-start_key(change.group)[0], change.group))
    others.sort(key=lambda change: start_key(change.group))
    return stops + others
