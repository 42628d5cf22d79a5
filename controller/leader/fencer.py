"""The leader's fencing: runs the attempts `fencing_plan.py` asks for and records them.

Each attempt is a task of its own, so that a slow BMC (a fence may take a minute) never
holds up the leader's turns: the groups of the node being fenced wait, every other group
is decided as usual. An attempt is written to `fencing/<node>` before it starts and after
it ends, each time with a compare-and-swap: if anyone else wrote the record meanwhile (an
operator's `ha fence --confirm`, a newer leader), this attempt's result is dropped and
the next turn decides again from what the store says. Fencing twice is harmless (a node
powered off is powered off again); recovering a group before its node is off is not, and
nothing here allows that: only a verified result becomes `fenced`.

The devices themselves are run by the node agent's code (`nodeagent/fencing/`), handed
in as a `FenceRunner`: the control plane never imports the node side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from controller.api.fencing import FenceAction, FenceDevice, FenceOutcome
from controller.api.liveness import Liveness
from controller.leader import fencing_plan
from controller.store import keys
from controller.store.base import Put, Store
from controller.store.errors import ConflictError, StoreError
from controller.store.fence_record import FenceRecord
from controller.store.informer import Informer
from controller.store.objects import Event, ObjectStore, make_event
from controller.store.view import ClusterView

log = logging.getLogger(__name__)

FenceRunner = Callable[[FenceDevice, str, FenceAction], Awaitable[FenceOutcome]]
WRITE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Result:
    ok: bool
    outcomes: tuple[FenceOutcome, ...]
    fenced_by: tuple[str, ...]
    message: str


async def fence_through_levels(
    levels: list[list[FenceDevice]], target: str, action: FenceAction, runner: FenceRunner
) -> Result:
    """Level after level until one fences `target` for certain: every device of the level
    acknowledged and saw the target powered off."""
    if not levels:
        return Result(False, (), (), f"no FenceDevice targets {target}: add one")
    outcomes: list[FenceOutcome] = []
    failures: list[str] = []
    for level in levels:
        done = await _run_level(level, target, action, runner)
        outcomes.extend(done)
        if all(o.ok and o.verified for o in done):
            names = tuple(o.device for o in done)
            took = max(o.seconds for o in done)
            return Result(
                True,
                tuple(outcomes),
                names,
                f"{action} by {', '.join(names)}: verified off in {took:.2f} s",
            )
        failures.extend(
            f"{o.device}: {o.message}"
            + (" (acknowledged, but not seen off)" if o.ok and not o.verified else "")
            for o in done
            if not (o.ok and o.verified)
        )
    return Result(False, tuple(outcomes), (), "; ".join(failures))


async def _run_level(
    level: list[FenceDevice], target: str, action: FenceAction, runner: FenceRunner
) -> list[FenceOutcome]:
    delay = max(d.spec.delay.total_seconds() for d in level)
    if delay > 0 and not await _already_off(level, target, runner):
        await asyncio.sleep(delay)
    if action == "reboot" and len(level) > 1:
        # Two power supplies: both off, then both on. Rebooting them one by one would
        # never have the node off at all.
        offs = await asyncio.gather(*(runner(d, target, "off") for d in level))
        if all(o.ok and o.verified for o in offs):
            ons = await asyncio.gather(*(runner(d, target, "on") for d in level))
            return [
                FenceOutcome(
                    off.device,
                    target,
                    "reboot",
                    True,
                    True,
                    on.power,
                    off.message + ("" if on.ok else f"; powering on again failed: {on.message}"),
                    off.seconds + on.seconds,
                )
                for off, on in zip(offs, ons, strict=True)
            ]
        return list(offs)
    return list(await asyncio.gather(*(runner(d, target, action) for d in level)))


async def _already_off(level: list[FenceDevice], target: str, runner: FenceRunner) -> bool:
    """Whether every device of the level reads the target powered off. A device's delay
    settles a race between two live nodes that each lost the other (a cut cable): a
    target already off is in no race, and waiting would only lengthen the failover."""
    reads = await asyncio.gather(*(runner(d, target, "status") for d in level))
    return all(r.ok and r.power == "off" for r in reads)


class Fencer:
    """Fencing attempts of one leader, while it leads."""

    def __init__(self, store: Store, informer: Informer, node: str, runner: FenceRunner) -> None:
        self.store = store
        self.informer = informer
        self.node = node
        self.runner = runner
        self.objects = ObjectStore(store)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # When this leader first saw each node lost (its monotonic clock): the watchdog
        # wait of a node that fences itself starts there. A new leader's Fencer starts
        # empty, so its wait starts when it sees the node lost itself: never shorter.
        self._lost_since: dict[str, tuple[str | None, float]] = {}
        self._self_fence_due: float | None = None

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._tasks)

    async def tend(self, liveness: Mapping[str, Liveness]) -> bool:
        """Answer what needs no device, or start the attempts that are due; whether it
        wrote. Decided from this moment's copy of the store, and each attempt's first write
        expects the revision of the record it was decided from: a record written since (an
        operator's confirmation) is never overwritten by a decision that did not see it."""
        now, monotonic = time.time(), time.monotonic()
        view = self.informer.view()
        self._lost_since = fencing_plan.lost_clock(self._lost_since, liveness, monotonic)
        self._self_fence_due = fencing_plan.self_fence_due(view, liveness, self._lost_since)
        answers = fencing_plan.answers(view, liveness, now, self.node)
        if answers:
            for record in answers:
                await self._write(
                    record, _answer_event(record, self.node), self._revision(record.node)
                )
            return True  # attempts, if any are still due, next turn, from what it wrote
        if view.cluster is None:
            return False
        selfs = fencing_plan.self_fenced(
            view, liveness, self._lost_since, monotonic, now, self.node
        )
        for record in selfs:
            await self._write(
                record, _self_fence_events(record, self.node), self._revision(record.node)
            )
        if selfs:
            return True
        waits = fencing_plan.self_fence_waits(view, liveness, self._lost_since, now, self.node)
        for record in waits:
            event = make_event(
                "Node",
                record.node,
                "FenceRequested",
                f"fencing {record.node} ({record.reason}): {record.message}",
                component="controller",
                node=self.node,
            )
            await self._write(record, [event], self._revision(record.node))
        if waits:
            return True
        for need in fencing_plan.needs(view, liveness, now, self.node, self.running):
            self._start(view, need, self._revision(need.node))
        return False

    def next_wake(self) -> float | None:
        """When (wall clock) a watchdog wait ends, for the leader's loop to run then."""
        if self._self_fence_due is None:
            return None
        return time.time() + max(0.0, self._self_fence_due - time.monotonic())

    def _revision(self, node: str) -> int:
        kv = self.informer.get(keys.fencing_key(node))
        return kv.mod_revision if kv else 0

    def _start(self, view: ClusterView, need: fencing_plan.FenceNeed, revision: int) -> None:
        assert view.cluster is not None
        levels = fencing_plan.device_levels(view.fences, need.node)
        action: FenceAction = view.cluster.spec.fencing.action
        timeout = view.cluster.spec.fencing.timeout.total_seconds()
        task = asyncio.create_task(
            self._attempt(need.record, revision, levels, action, timeout),
            name=f"fence-{need.node}",
        )
        self._tasks[need.node] = task

        def forget(_: asyncio.Task[None], node: str = need.node) -> None:
            self._tasks.pop(node, None)

        task.add_done_callback(forget)

    async def _attempt(
        self,
        record: FenceRecord,
        expect: int,
        levels: list[list[FenceDevice]],
        action: FenceAction,
        timeout: float,
    ) -> None:
        node = record.node
        devices = ", ".join(d.name for level in levels for d in level) or "no device"
        started = record.but(
            state="fencing",
            attempts=record.attempts + 1,
            leader=self.node,
            outcomes=(),
            message=f"attempt {record.attempts + 1}: {action} through {devices}"
            + (
                f" (attempt {record.attempts} failed: {_why(record)})"
                if record.state == "failed"
                else ""
            ),
        )
        events = (
            [
                make_event(
                    "Node",
                    node,
                    "FenceRequested",
                    f"fencing {node} ({record.reason}; asked by {record.requested_by}): "
                    f"{action} through {devices}",
                    component="controller",
                    node=self.node,
                )
            ]
            if record.attempts == 0
            else []
        )
        revision = await self._write(started, events, expect)
        if revision is None:
            return
        began = time.monotonic()
        try:
            result = await asyncio.wait_for(
                fence_through_levels(levels, node, action, self.runner), timeout
            )
        except TimeoutError:
            result = Result(False, (), (), f"no device answered within {timeout:g} s")
        took = time.monotonic() - began
        await self._write(*self._finished(started, result, took), expect=revision)

    def _finished(
        self, started: FenceRecord, result: Result, took: float
    ) -> tuple[FenceRecord, list[Event]]:
        node, now = started.node, time.time()
        events = [
            make_event(
                "Node",
                node,
                "FenceDone" if o.ok else "FenceFailed",
                f"{o.device}: {o.action} {node}: {o.message} ({o.seconds:.2f} s)",
                type="Normal" if o.ok else "Warning",
                component="controller",
                node=self.node,
            )
            for o in result.outcomes
        ]
        if result.ok:
            record = started.but(
                state="fenced",
                fenced_at=now,
                fenced_by=result.fenced_by,
                outcomes=result.outcomes,
                message=result.message,
            )
            events.append(
                make_event(
                    "Node",
                    node,
                    "FenceVerified",
                    f"{node} is powered off ({result.message}); its groups may now be recovered",
                    component="controller",
                    node=self.node,
                )
            )
            return record, events
        delay = fencing_plan.retry_delay(started.attempts)
        message = (
            f"attempt {started.attempts} failed after {took:.1f} s: {result.message}. "
            f"{node}'s groups stay where they were (stopped is better than doubled); next "
            f"attempt in {delay:g} s. Repair the device, or power {node} off yourself and "
            f"run `ha fence --confirm {node}`"
        )
        events.append(
            make_event(
                "Node",
                node,
                "FenceFailed",
                message,
                type="Warning",
                component="controller",
                node=self.node,
            )
        )
        record = started.but(
            state="failed", retry_at=now + delay, outcomes=result.outcomes, message=message
        )
        return record, events

    async def _write(self, record: FenceRecord, events: list[Event], expect: int) -> int | None:
        """The record written with a compare-and-swap on the revision `expect` (0: none);
        None if someone else wrote it first."""
        key = keys.fencing_key(record.node)
        try:
            revision = await self.objects.commit_with_events(
                [Put(key, record.to_dict(), expect_revision=expect)],
                events,
                timeout=WRITE_TIMEOUT,
            )
        except ConflictError:
            log.info("fencing/%s changed under this controller; deciding again", record.node)
            return None
        except StoreError as exc:
            log.warning("fencing/%s: could not record %s: %s", record.node, record.state, exc)
            return None
        log.info("fencing %s: %s: %s", record.node, record.state, record.message)
        return revision

    async def close(self) -> None:
        """Cancel the running attempts (this node no longer leads)."""
        # Its "first seen lost" times go too: they hold only while watched without a gap,
        # and the next term starts its waits afresh (longer, never shorter).
        self._lost_since.clear()
        self._self_fence_due = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _why(record: FenceRecord) -> str:
    """What the devices said in a failed attempt, short: `ha status` shows it while the
    next attempt runs."""
    failed = [f"{o.device}: {o.message}" for o in record.outcomes if not (o.ok and o.verified)]
    text = "; ".join(failed) or record.message
    return text if len(text) <= 160 else text[:157] + "..."


def _self_fence_events(record: FenceRecord, leader: str) -> list[Event]:
    return [
        make_event(
            "Node",
            record.node,
            "FenceVerified",
            f"{record.node} {record.message}; its groups may now be recovered",
            component="controller",
            node=leader,
        )
    ]


def _answer_event(record: FenceRecord, leader: str) -> list[Event]:
    if record.state == "refused":
        return [
            make_event(
                "Node",
                record.node,
                "FenceRefused",
                record.message,
                type="Warning",
                component="controller",
                node=leader,
            )
        ]
    if record.state == "fenced":
        return [
            make_event(
                "Node",
                record.node,
                "FenceConfirmed",
                record.message,
                component="controller",
                node=leader,
            )
        ]
    return [
        make_event(
            "Node",
            record.node,
            "Rejoined",
            f"{record.node} is heard again after it was fenced",
            component="controller",
            node=leader,
        )
    ]
