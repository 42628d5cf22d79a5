"""What the leader's fencing must do now, as pure functions of the view and its heartbeat
view.

With fencing on (``Cluster.spec.fencing.enabled``), a lost node's groups are recovered
only once a record proves that incarnation of it powered off: fenced through its devices
and verified, or confirmed by an operator (``ha fence --confirm``). Until then they stay
where they were: stopped is better than doubled. This module says which nodes wait, which
need a fencing attempt now, and which records an operator's request or a returning node
changes; ``controller/leader/fencer.py`` does the I/O.

A node that fences itself (a FenceDevice with agent: watchdog targeting it, armed and
petted by that node's liveness process, nodeagent/selffence.py) is fenced by waiting: once
`self_fence_wait` has elapsed on this leader's monotonic clock since this leader first
saw that incarnation lost, it has certainly reset (docs/safety.md, "Self-fencing").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from controller.api.cluster import Cluster
from controller.api.fencing import FenceDevice, self_fence_device, watchdog_timeout
from controller.api.group import ResourceGroupStatus
from controller.api.liveness import Liveness
from controller.store.fence_record import MANUAL, FenceRecord
from controller.store.view import ClusterView

# Back-off between failed attempts: 1, 2, 4 ... seconds, at most RETRY_MAX. A device that
# failed once (a BMC that rebooted, a switch port that flapped) is tried again soon; one
# that keeps failing is not hammered, and the operator is told at each failure.
RETRY_FIRST = 1.0
RETRY_MAX = 30.0

# How fast one node's clock may run against another's: nodeagent/heartbeat/timing.py RHO
# (the control plane does not import the node side; a unit test keeps them equal).
RHO = 1.01
# Pets per watchdog timeout: nodeagent/selffence.py PETS_PER_TIMEOUT (a test keeps them
# equal).
PETS_PER_TIMEOUT = 4

# Per node: the incarnation this leader saw lost and when it first saw it so, on its
# monotonic clock.
LostSince = Mapping[str, tuple[str | None, float]]


def fencing_on(view: ClusterView) -> bool:
    return view.cluster is not None and view.cluster.spec.fencing.enabled


def awaiting_fence(view: ClusterView, liveness: Mapping[str, Liveness]) -> frozenset[str]:
    """Lost members whose groups must wait: fencing is on and no record proves the lost
    incarnation powered off."""
    if view.cluster is None or not fencing_on(view):
        return frozenset()
    waiting = set()
    for member in view.cluster.spec.nodes:
        seen = liveness.get(member.name)
        if member.role != "server" or seen is None or not seen.lost:
            continue  # a witness runs nothing that could run twice
        record = view.fencing.get(member.name)
        if record is None or not record.covers(seen.incarnation):
            waiting.add(member.name)
    return frozenset(waiting)


@dataclass(frozen=True)
class FenceNeed:
    """A fencing attempt due now: the record to write before the attempt starts."""

    node: str
    record: FenceRecord


def retry_delay(attempts: int) -> float:
    return float(min(RETRY_MAX, RETRY_FIRST * 2 ** max(0, attempts - 1)))


def needs(
    view: ClusterView,
    liveness: Mapping[str, Liveness],
    now: float,
    leader: str,
    running: frozenset[str] = frozenset(),
) -> list[FenceNeed]:
    """The fencing attempts due now, each with the record that starts it; `running`: the
    nodes this leader is fencing already. An attempt another controller (or this node's
    previous agent) left `fencing` is made again: that controller may be gone, and a second
    power-off is harmless; the compare-and-swap keeps only one result."""
    out: list[FenceNeed] = []
    if view.cluster is None:
        return out
    lost_waiting = awaiting_fence(view, liveness)
    deadtime = view.cluster.spec.timing.deadtime.total_seconds()
    stuck = stop_failures(view.group_status) if fencing_on(view) else {}
    for member in view.cluster.spec.nodes:
        name = member.name
        if name in running or name == leader:
            continue
        seen = liveness.get(name)
        why = stuck.get(name)
        if name in lost_waiting:
            if view.cluster.spec.quorum.mode == "two-node":
                continue  # the survivor fences it itself (nodeagent/two_node.py)
            if not device_levels(view.fences, name) and self_fence_device(
                view.fences.values(), name
            ):
                continue  # it fences itself: `self_fenced` waits for its watchdog
            why = f"lost: not heard for {deadtime:g} s by a majority"
        record = _wanted(view, name, seen, why, now, leader)
        if record is None:
            continue  # alive, or fenced already, and nobody asked
        if record.state == "failed" and now < record.retry_at:
            continue
        incarnation = record.incarnation
        if incarnation is None and seen is not None and seen.alive:
            incarnation = seen.incarnation  # `ha fence` of a live node: the life it ends
        out.append(FenceNeed(name, record.but(incarnation=incarnation)))
    return out


def _wanted(
    view: ClusterView,
    name: str,
    seen: Liveness | None,
    why: str | None,
    now: float,
    leader: str,
) -> FenceRecord | None:
    """The open record for `name`: the stored one, or a new one when the controller wants
    the node fenced (`why`: lost and not fenced, or a stop it could not do)."""
    record = view.fencing.get(name)
    if why is None or seen is None:
        # An operator's `ha fence` of a node not lost: one attempt, reported to them; a
        # failure is not retried on a node that may well be running everything fine.
        if record is None or not record.open or record.state == "failed":
            return None
        return record
    if record is not None and record.incarnation == seen.incarnation:
        if record.open:
            return record
        if record.covers(seen.incarnation):
            return None  # fenced already; it has not gone silent yet
    return FenceRecord(
        name,
        "requested",
        incarnation=seen.incarnation,
        reason=why,
        requested_by=f"controller on {leader}",
        requested_at=now,
    )


def stop_failures(group_status: Mapping[str, ResourceGroupStatus]) -> dict[str, str]:
    """Nodes whose agent reports a group it could not stop, with the first such group and
    why: a stuck umount or a stop that timed out. With fencing on they are fenced, as
    Pacemaker does on a failed stop: the group cannot move while it may still run there."""
    out: dict[str, str] = {}
    for group, status in sorted(group_status.items()):
        if status.phase == "StopFailed" and status.reporter and status.reporter not in out:
            out[status.reporter] = f"could not stop {group}: {status.last_action or 'stop failed'}"
    return out


def must_not_lead(
    cluster: Cluster | None,
    group_status: Callable[[], Mapping[str, ResourceGroupStatus]],
    node: str,
) -> str | None:
    """Why `node` may not lead now: with fencing on, its own stop failed, so it must be
    fenced, and the controller does not fence its own node; another node leads and does
    (Pacemaker's DC is fenced by a peer the same way). None: it may lead. The statuses are
    read only when fencing is on: the election asks on every store change."""
    if cluster is None or not cluster.spec.fencing.enabled:
        return None
    why = stop_failures(group_status()).get(node)
    if why is None:
        return None
    return f"{node} must be fenced ({why}): leaving the lead to a node that can fence it"


def next_retry(view: ClusterView) -> float | None:
    """When the earliest failed fencing is due again (wall-clock seconds), if any."""
    due = [r.retry_at for r in view.fencing.values() if r.state == "failed"]
    return min(due, default=None)


def answers(
    view: ClusterView, liveness: Mapping[str, Liveness], now: float, leader: str
) -> list[FenceRecord]:
    """Records to write without fencing anything: an operator's confirmation honoured or
    refused, and fenced nodes that came back (a fence proves nothing about a new life)."""
    out: list[FenceRecord] = []
    for name, record in sorted(view.fencing.items()):
        seen = liveness.get(name)
        if record.state == "requested" and name == leader:
            out.append(
                record.but(
                    state="refused",
                    leader=leader,
                    message=(
                        f"{name} leads the controller, which does not fence its own node: "
                        f"stop its agent (another node then leads and can fence it), or "
                        f"power it off yourself and run `ha fence --confirm {name}`"
                    ),
                )
            )
        elif record.state == "confirm":
            if seen is not None and seen.alive:
                out.append(
                    record.but(
                        state="refused",
                        leader=leader,
                        message=(
                            f"not confirmed: {leader} hears {name} now, so it is not powered "
                            f"off; power it off first, or run `ha fence {name}` to fence it"
                        ),
                    )
                )
            else:
                out.append(
                    record.but(
                        state="fenced",
                        incarnation=seen.incarnation if seen is not None else None,
                        leader=leader,
                        fenced_at=now,
                        fenced_by=(MANUAL,),
                        message=f"{record.requested_by} confirmed {name} powered off",
                    )
                )
        elif (
            record.state == "fenced"
            and seen is not None
            and seen.alive
            and seen.incarnation != record.incarnation
        ):
            out.append(record.but(state="rejoined", message=f"{name} is heard again"))
    return out


def device_levels(devices: Mapping[str, FenceDevice], target: str) -> list[list[FenceDevice]]:
    """The devices that fence `target`, by topology level, lowest first; within a level,
    by name. A level succeeds only if all its devices do (two power supplies, two
    switches), and the next level is tried when one fails. A watchdog is not among them:
    nothing can be run against it, it is a level of its own that succeeds by waiting
    (`self_fenced`), alongside these."""
    by_level: dict[int, list[FenceDevice]] = {}
    for name in sorted(devices):
        device = devices[name]
        if target in device.spec.targets and device.spec.agent != "watchdog":
            by_level.setdefault(device.spec.level, []).append(device)
    return [by_level[level] for level in sorted(by_level)]


def self_fence_wait(device: FenceDevice) -> float:
    """How long after a node is seen lost its watchdog has certainly reset it (seconds on
    the leader's clock). The node pets only while it serves, and it serves only under a
    lease that ends before a majority can declare it lost; so its last pet came before
    this leader saw it lost, and the watchdog fires at most `timeout` after that pet, on
    the node's clock. RHO covers that clock running slow against the leader's; one pet
    interval covers a pet that the check before it allowed but that landed late (a stall
    between the two). Argued in docs/safety.md, "Self-fencing"."""
    timeout = watchdog_timeout(device)
    return timeout * RHO + timeout / PETS_PER_TIMEOUT


def lost_clock(
    previous: LostSince, liveness: Mapping[str, Liveness], now: float
) -> dict[str, tuple[str | None, float]]:
    """When this leader first saw each lost node lost (`now`: its monotonic clock): kept
    while the same incarnation stays lost, started afresh otherwise. A new leader starts
    from an empty clock, so its wait begins when it first sees the node lost, never
    before: it can only be longer than the first leader's, never shorter."""
    out: dict[str, tuple[str | None, float]] = {}
    for name, seen in liveness.items():
        if not seen.lost:
            continue
        before = previous.get(name)
        if before is not None and before[0] == seen.incarnation:
            out[name] = before
        else:
            out[name] = (seen.incarnation, now)
    return out


def self_fenced(
    view: ClusterView,
    liveness: Mapping[str, Liveness],
    lost_since: LostSince,
    monotonic_now: float,
    now: float,
    leader: str,
) -> list[FenceRecord]:
    """Records of lost nodes whose watchdog has certainly reset them: `self_fence_wait`
    elapsed since this leader saw them lost (`lost_since`, `monotonic_now`: its monotonic
    clock; `now`: wall clock, for the record). Such a node's watchdog is a level of its
    own, passive: it counts whatever the other levels are doing (an attempt still running
    finds its record changed and drops its result)."""
    out: list[FenceRecord] = []
    if view.cluster is None or view.cluster.spec.quorum.mode == "two-node":
        return out  # two-node: the survivor fences its peer itself (nodeagent/two_node.py)
    for name in sorted(awaiting_fence(view, liveness)):
        device = self_fence_device(view.fences.values(), name)
        since = lost_since.get(name)
        seen = liveness[name]
        if device is None or since is None or since[0] != seen.incarnation:
            continue
        waited = monotonic_now - since[1]
        if waited < self_fence_wait(device):
            continue
        record = view.fencing.get(name)
        if record is None or record.incarnation != seen.incarnation or not record.open:
            record = FenceRecord(
                name,
                "requested",
                incarnation=seen.incarnation,
                reason="lost: its watchdog resets it",
                requested_by=f"controller on {leader}",
                requested_at=now,
            )
        timeout = watchdog_timeout(device)
        out.append(
            record.but(
                state="fenced",
                leader=leader,
                fenced_at=now,
                fenced_by=(device.name,),
                outcomes=(),
                message=(
                    f"self-fenced: watchdog timeout {timeout} s elapsed ({device.name}: "
                    f"{waited:.1f} s since {leader} saw {name} lost, at least "
                    f"{self_fence_wait(device):.2f} s needed)"
                ),
            )
        )
    return out


def self_fence_waits(
    view: ClusterView,
    liveness: Mapping[str, Liveness],
    lost_since: LostSince,
    now: float,
    leader: str,
) -> list[FenceRecord]:
    """Records that say a wait began, for `ha status` and the events: lost nodes fenced
    by their watchdog alone (no other device to try), whose record does not yet say so
    for this incarnation. Written once; the record then stays `fencing` until
    `self_fenced` closes it (a new leader keeps it and waits its own wait)."""
    out: list[FenceRecord] = []
    if view.cluster is None or view.cluster.spec.quorum.mode == "two-node":
        return out
    for name in sorted(awaiting_fence(view, liveness)):
        device = self_fence_device(view.fences.values(), name)
        seen = liveness[name]
        since = lost_since.get(name)
        if device is None or device_levels(view.fences, name) or since is None:
            continue
        record = view.fencing.get(name)
        if record is not None and record.open and record.incarnation == seen.incarnation:
            continue
        out.append(
            FenceRecord(
                name,
                "fencing",
                incarnation=seen.incarnation,
                reason="lost: its watchdog resets it",
                requested_by=f"controller on {leader}",
                requested_at=now,
                leader=leader,
                message=(
                    f"waiting {self_fence_wait(device):.1f} s for {device.name} (watchdog "
                    f"timeout {watchdog_timeout(device)} s) to have reset {name}"
                ),
            )
        )
    return out


def self_fence_due(
    view: ClusterView, liveness: Mapping[str, Liveness], lost_since: LostSince
) -> float | None:
    """When the earliest watchdog wait still running ends (the leader's monotonic clock),
    so that the leader's loop wakes then rather than at its next idle recheck."""
    if view.cluster is None or view.cluster.spec.quorum.mode == "two-node":
        return None
    due = []
    for name in awaiting_fence(view, liveness):
        device = self_fence_device(view.fences.values(), name)
        since = lost_since.get(name)
        if device is not None and since is not None:
            due.append(since[1] + self_fence_wait(device))
    return min(due, default=None)
