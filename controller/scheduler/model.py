"""The scheduler's own input and output types: small frozen dataclasses, no I/O.

They mirror the ``ResourceGroup`` spec on purpose but do not import the API models, so the
scheduler stays a pure function that tests can drive with plain values. Field checks raise
``SchedulerInputError`` naming the spec field (YAML spelling) and the fix.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class SchedulerInputError(ValueError):
    """The scheduler was given input it cannot place from (a spec bug, not a cluster state)."""


def _check_name(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise SchedulerInputError(f"{what} must be a non-empty string, got {value!r}")


def _check_names(group: str, field_name: str, names: tuple[str, ...]) -> None:
    for name in names:
        _check_name(name, f"group {group!r}: {field_name} entry")
    if group in names:
        raise SchedulerInputError(
            f"group {group!r}: {field_name} lists the group itself; remove {group!r} from it"
        )
    if len(set(names)) != len(names):
        raise SchedulerInputError(f"group {group!r}: {field_name} lists a group twice")


@dataclass(frozen=True)
class Move:
    """An operator's ``ha move``: prefer ``node`` until ``until`` (epoch seconds; None = no end)."""

    node: str
    until: float | None = None

    def __post_init__(self) -> None:
        _check_name(self.node, "placement.moveTo.node")
        if self.until is not None and not math.isfinite(self.until):
            raise SchedulerInputError(
                f"placement.moveTo.until must be a finite timestamp, got {self.until!r}"
            )

    def active(self, now: float) -> bool:
        """True while the move still applies; an expired move is simply ignored."""
        return self.until is None or now < self.until


@dataclass(frozen=True)
class Group:
    """What the scheduler needs from one ``ResourceGroup`` spec.

    ``nodes`` holds (node, score) pairs from ``placement.nodes``. Defaults follow the API
    model: stickiness 100, migrationThreshold 3, failureTimeout 600 s.
    """

    name: str
    nodes: tuple[tuple[str, int], ...] = ()
    restricted: bool = False
    stickiness: int = 100
    migration_threshold: int = 3
    failure_timeout: float | None = 600.0
    depends_on: tuple[str, ...] = ()
    colocate: tuple[str, ...] = ()
    anti_colocate: tuple[str, ...] = ()
    enabled: bool = True
    move_to: Move | None = None
    # ReplicatedVolumes the group promotes or mounts: it runs only where their data is.
    volumes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.name, "group name")
        for volume in self.volumes:
            _check_name(volume, f"group {self.name!r}: volume")
        seen: set[str] = set()
        for entry in self.nodes:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise SchedulerInputError(
                    f"group {self.name!r}: placement.nodes entry {entry!r} must be (node, score)"
                )
            node, score = entry
            _check_name(node, f"group {self.name!r}: placement.nodes name")
            if isinstance(score, bool) or not isinstance(score, int):
                raise SchedulerInputError(
                    f"group {self.name!r}: placement.nodes score for {node!r} must be an integer,"
                    f" got {score!r}"
                )
            if node in seen:
                raise SchedulerInputError(
                    f"group {self.name!r}: placement.nodes lists {node!r} twice; keep one entry"
                )
            seen.add(node)
        if isinstance(self.stickiness, bool) or not isinstance(self.stickiness, int):
            raise SchedulerInputError(f"group {self.name!r}: placement.stickiness must be an int")
        if self.stickiness < 0:
            raise SchedulerInputError(
                f"group {self.name!r}: placement.stickiness is {self.stickiness}; use 0 or more"
            )
        if isinstance(self.migration_threshold, bool) or not isinstance(
            self.migration_threshold, int
        ):
            raise SchedulerInputError(f"group {self.name!r}: migrationThreshold must be an int")
        if self.migration_threshold < 1:
            raise SchedulerInputError(
                f"group {self.name!r}: migrationThreshold is {self.migration_threshold};"
                " use 1 or more"
            )
        if self.failure_timeout is not None and not (
            math.isfinite(self.failure_timeout) and self.failure_timeout > 0
        ):
            raise SchedulerInputError(
                f"group {self.name!r}: failureTimeout is {self.failure_timeout!r}; use a positive"
                " number of seconds, or None to never forget failures"
            )
        _check_names(self.name, "dependsOn", self.depends_on)
        _check_names(self.name, "colocate", self.colocate)
        _check_names(self.name, "antiColocate", self.anti_colocate)
        both = set(self.colocate) & set(self.anti_colocate)
        if both:
            raise SchedulerInputError(
                f"group {self.name!r}: {sorted(both)} are in both colocate and antiColocate;"
                " keep only one of the two constraints"
            )

    def score_on(self, node: str) -> int:
        """The configured preference for ``node``; unlisted nodes score 0."""
        for name, score in self.nodes:
            if name == node:
                return score
        return 0

    def lists(self, node: str) -> bool:
        return any(name == node for name, _ in self.nodes)


@dataclass(frozen=True)
class NodeState:
    """A cluster member as the controller sees it right now.

    ``fenced_pending``: the node is lost but not yet fenced, so whatever ran there may still
    be running; groups on it must wait rather than start elsewhere. ``waits_for``: what
    they wait for, in words ("declared lost", "fenced").
    """

    name: str
    alive: bool = True
    standby: bool = False
    fenced_pending: bool = False
    waits_for: str = "declared lost"

    def __post_init__(self) -> None:
        _check_name(self.name, "node name")
        if self.fenced_pending and self.alive:
            raise SchedulerInputError(
                f"node {self.name!r}: fenced_pending=True needs alive=False (only a lost node"
                " waits for fencing)"
            )


@dataclass(frozen=True)
class ReplicaReport:
    """A replica's last reported state (status/ReplicatedVolume/<name>), as plain words.

    ``role``: Primary, Secondary or Unknown; ``disk``: DRBD's disk states (UpToDate,
    Outdated, Inconsistent, Diskless, Consistent, Unknown); ``connection``: Connected,
    StandAlone, Connecting, SyncSource, SyncTarget, ...; ``syncing``: the direction of a
    resync under way (SyncSource or SyncTarget), else None.
    """

    node: str
    role: str = "Unknown"
    disk: str = "Unknown"
    connection: str = "Unknown"
    syncing: str | None = None
    split_brain: bool = False


@dataclass(frozen=True)
class VolumeFacts:
    """What the scheduler knows of one replicated volume (see ``scheduler.volumes``).

    ``replicas``: the nodes that hold one; ``reports``: each replica's last report (a
    replica that never reported has none); ``outdated``: the replicas blockrepl's outdate
    record names, and ``outdated_note`` its words ("Outdated since generation ...").
    """

    name: str
    replicas: tuple[str, ...]
    reports: tuple[ReplicaReport, ...] = ()
    outdated: tuple[str, ...] = ()
    outdated_note: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "volume name")

    def report(self, node: str) -> ReplicaReport:
        """The replica's last report; an unreported one is all Unknown."""
        for report in self.reports:
            if report.node == node:
                return report
        return ReplicaReport(node)

    def peer(self, node: str) -> str | None:
        others = [n for n in self.replicas if n != node]
        return others[0] if others else None


@dataclass(frozen=True)
class Failure:
    """``count`` failures of ``group`` on ``node``, the latest at ``last_failure_time``."""

    group: str
    node: str
    count: int
    last_failure_time: float

    def __post_init__(self) -> None:
        _check_name(self.group, "failure group")
        _check_name(self.node, "failure node")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise SchedulerInputError(
                f"failure of {self.group!r} on {self.node!r}: count must be an int >= 0,"
                f" got {self.count!r}"
            )


class DecisionStatus(enum.StrEnum):
    PLACED = "placed"
    UNPLACED = "unplaced"
    # Kept on a lost, unfenced node: it may still run there, so it must not start elsewhere.
    AWAITING_FENCING = "awaiting-fencing"


@dataclass(frozen=True)
class Decision:
    """The decision for one group: where it should run and, in one sentence, why.

    ``node`` is the node to run on when ``status`` is PLACED, the lost node when
    AWAITING_FENCING, and None when UNPLACED. Use ``runs_on`` for "where to start it".
    """

    group: str
    node: str | None
    status: DecisionStatus
    reason: str

    def __post_init__(self) -> None:
        if (self.node is None) != (self.status is DecisionStatus.UNPLACED):
            raise SchedulerInputError(
                f"placement of {self.group!r}: status {self.status.value} with node"
                f" {self.node!r} is inconsistent (only an unplaced group has no node)"
            )

    @property
    def runs_on(self) -> str | None:
        return self.node if self.status is DecisionStatus.PLACED else None
