"""Which nodes a group may run on, and how much it wants each one.

A node is ineligible for a group when it is not a cluster member, dead, waiting for
fencing, in standby, excluded by a restricted placement, when it holds no replica (or no
promotable replica, ``volumes.py``) of a volume the group uses, or when the group failed
there ``migrationThreshold`` times within ``failureTimeout``. Each verdict carries the words used
in placement reasons.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.scheduler.model import Failure, Group, NodeState, VolumeFacts
from controller.scheduler.volumes import data_verdict


class Why(enum.Enum):
    NOT_MEMBER = "not a cluster member"
    # Silent, not yet declared lost: what ran there may still run (fencing, later, too).
    FENCING = "silent, not yet declared lost"
    LOST = "lost"
    STANDBY = "standby"
    EXCLUDED = "not in placement.nodes (restricted)"
    BANNED = "banned"
    NO_REPLICA = "holds no replica"
    NO_DATA = "holds no UpToDate replica"


@dataclass(frozen=True)
class Ineligible:
    """Why ``group`` may not run on ``node``."""

    node: str
    why: Why
    failures: int = 0
    threshold: int = 0
    volume: str = ""  # NO_REPLICA, NO_DATA: of which volume
    detail: str = ""  # NO_DATA: why its replica is not promotable

    @property
    def short(self) -> str:
        """Words for a list: ``host-s: failed 3 times, migration threshold 3``."""
        if self.why is Why.BANNED:
            return f"failed {self.failures} times, migration threshold {self.threshold}"
        if self.why is Why.NO_REPLICA:
            return f"no replica of {self.volume}" + (f" ({self.detail})" if self.detail else "")
        if self.why is Why.NO_DATA:
            return f"no UpToDate replica of {self.volume}: {self.detail}"
        return str(self.why.value)

    def sentence(self, group: str) -> str:
        """Words for a cause: ``host-m is lost (no majority hears it)``."""
        if self.why is Why.BANNED:
            return (
                f"{group} failed {self.failures} times on {self.node}"
                f" (migration threshold {self.threshold})"
            )
        if self.why is Why.EXCLUDED:
            return f"{self.node} is not in placement.nodes of restricted group {group}"
        if self.why is Why.FENCING:
            return f"{self.node} is silent and not yet declared lost"
        if self.why is Why.STANDBY:
            return f"{self.node} is in standby"
        if self.why is Why.LOST:
            return f"{self.node} is lost (no majority hears it)"
        if self.why in (Why.NO_REPLICA, Why.NO_DATA):
            return f"{self.node} holds {self.short}"
        return f"{self.node} is {self.why.value}"


def failure_counts(
    failures: Iterable[Failure], groups: Mapping[str, Group], now: float
) -> dict[tuple[str, str], int]:
    """Unexpired failures per (group, node); a record expires whole once its last failure is
    ``failureTimeout`` old (Pacemaker's failure-timeout), so no manual cleanup is needed."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for failure in failures:
        group = groups.get(failure.group)
        if group is None:
            continue
        timeout = group.failure_timeout
        if timeout is not None and now - failure.last_failure_time >= timeout:
            continue
        counts[(failure.group, failure.node)] += failure.count
    return dict(counts)


def verdict(
    group: Group,
    node: str,
    nodes: Mapping[str, NodeState],
    failures: Mapping[tuple[str, str], int],
    volumes: Mapping[str, VolumeFacts] | None = None,
    current: str | None = None,
) -> Ineligible | None:
    """None when ``group`` may run on ``node``, else the first reason it may not.
    ``current``: the node the group runs on now (its Primary may stay Primary)."""
    state = nodes.get(node)
    if state is None:
        return Ineligible(node, Why.NOT_MEMBER)
    if state.fenced_pending:
        return Ineligible(node, Why.FENCING)
    if not state.alive:
        return Ineligible(node, Why.LOST)
    if state.standby:
        return Ineligible(node, Why.STANDBY)
    if group.restricted and not group.lists(node):
        return Ineligible(node, Why.EXCLUDED)
    for name in group.volumes:
        facts = (volumes or {}).get(name)
        if facts is None:
            return Ineligible(node, Why.NO_REPLICA, volume=name, detail="it does not exist")
        if node not in facts.replicas:
            return Ineligible(node, Why.NO_REPLICA, volume=name)
        why = data_verdict(facts, node, current == node)
        if why is not None:
            return Ineligible(node, Why.NO_DATA, volume=name, detail=why)
    count = failures.get((group.name, node), 0)
    if count >= group.migration_threshold:
        return Ineligible(node, Why.BANNED, count, group.migration_threshold)
    return None


def describe_ineligible(verdicts: Iterable[Ineligible]) -> str:
    """``host-m: standby; host-s: failed 3 times, migration threshold 3``."""
    return "; ".join(f"{v.node}: {v.short}" for v in sorted(verdicts, key=lambda v: v.node))
