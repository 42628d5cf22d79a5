"""What a node's agent records of its own life: `AgentStarted` once it reaches the store,
`AgentStopping` on an orderly stop, and `ServingLost` for each loss of its serving lease.

A node that loses its serving lease is cut off from the store (no majority hears it), so
it stops its resources without being able to say so. The agent notes each loss, and the
groups it ran then, in `serving-lost.json` in its run directory, and records them once
the store answers again. A file rather than memory: an agent restarted while cut off (by
its supervisor after a stuck loop, or by an operator) must still record the loss. The run
directory rather than the lib directory: it is tmpfs, so writing it costs nothing while
the node is stopping its resources, and a reboot clears it; after a reboot the loss is
the power loss or fencing the other nodes recorded, and a stale note would only mislead.

None of this may delay a start or a stop: the records are written by tasks of their own,
and the one written on the way out waits at most STOPPING_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.api.liveness import LivenessSource
from controller.api.meta import format_timestamp
from controller.store.base import Store
from controller.store.errors import StoreError
from controller.store.informer import Informer, wait_any
from controller.store.objects import Event, ObjectStore, make_event
from nodeagent.actuators import State
from nodeagent.reconciler.plan import GroupView

log = logging.getLogger(__name__)

LOSSES_FILE = "serving-lost.json"
# Seconds. On the way out: the resources stop meanwhile, but the process waits this long
# at most before it closes the store.
STOPPING_TIMEOUT = 1.5
# Seconds the start record waits for the reconciler's first look at what runs here.
FIRST_TURN_WAIT = 5.0
RETRY = 2.0  # seconds between attempts at a record the store refused
ATTEMPT = 2.0  # seconds for one attempt


def running_groups(views: Iterable[GroupView]) -> list[str]:
    """The groups of which at least one resource was last seen running on this node."""
    return sorted(v.name for v in views if any(r.state is State.RUNNING for r in v.resources))


def _names(groups: list[str]) -> str:
    return ", ".join(groups) if groups else "nothing"


def started_message(version: str, pid: int, adopted: list[str] | None) -> str:
    found = (
        "its first look at this node's resources did not finish"
        if adopted is None
        else f"found running and adopted: {_names(adopted)}"
    )
    return f"vigil-agent {version} (pid {pid}) started; {found}"


def stopping_message(version: str, pid: int, why: str, running: list[str]) -> str:
    return f"vigil-agent {version} (pid {pid}) stopping ({why}); stopping: {_names(running)}"


@dataclass
class Loss:
    """One loss of the serving lease: when, what ran then, when the node served again."""

    lost_at: datetime
    groups: list[str]
    serving_again: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lostAt": format_timestamp(self.lost_at),
            "groups": self.groups,
            "servingAgain": format_timestamp(self.serving_again) if self.serving_again else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Loss:
        again = data.get("servingAgain")
        return cls(
            datetime.fromisoformat(str(data["lostAt"])),
            [str(g) for g in data.get("groups", [])],
            datetime.fromisoformat(str(again)) if again else None,
        )

    def message(self, node: str, reached: datetime) -> str:
        again = (
            f"served again at {format_timestamp(self.serving_again)}"
            if self.serving_again
            else "not serving yet"
        )
        return (
            f"{node} lost its serving lease at {format_timestamp(self.lost_at)} (no majority "
            f"heard it) and stopped: {_names(self.groups)}; {again}; reached the store at "
            f"{format_timestamp(reached)}"
        )


@dataclass
class LossBook:
    """The losses not recorded yet, kept from the serving flag's transitions (pure)."""

    losses: list[Loss] = field(default_factory=list)
    was_serving: bool = False

    def serving_is(self, serving: bool, now: datetime, running: list[str]) -> bool:
        """Note the serving flag as it is now; whether the book changed."""
        changed = False
        if self.was_serving and not serving:
            self.losses.append(Loss(now, running))
            changed = True
        elif serving and not self.was_serving:
            for loss in self.losses:
                if loss.serving_again is None:
                    loss.serving_again = now
                    changed = True
        self.was_serving = serving
        return changed

    def recorded(self, count: int) -> None:
        del self.losses[:count]


def load_losses(path: Path) -> list[Loss]:
    try:
        return [Loss.from_dict(d) for d in json.loads(path.read_text())["losses"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return []


def save_losses(path: Path, losses: list[Loss]) -> None:
    try:
        if not losses:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"losses": [loss.to_dict() for loss in losses]}))
        tmp.replace(path)
    except OSError as exc:
        log.warning("cannot note the serving lease's loss in %s: %s", path, exc)


class AgentEvents:
    def __init__(
        self,
        node: str,
        store: Store,
        informer: Informer,
        views: Callable[[], Iterable[GroupView]],
        run_dir: Path,
        version: str,
    ) -> None:
        self.node = node
        self.informer = informer
        self.views = views
        self.version = version
        self.objects = ObjectStore(store)  # one event lease for all of this agent's records
        self.path = run_dir / LOSSES_FILE
        self.book = LossBook(load_losses(self.path))

    def _event(self, reason: str, message: str, warning: bool = False) -> Event:
        return make_event(
            "Node",
            self.node,
            reason,
            message,
            type="Warning" if warning else "Normal",
            component="agent",
            node=self.node,
        )

    async def _write(self, events: list[Event]) -> bool:
        try:
            await self.objects.commit_with_events([], events, ATTEMPT)
            return True
        except StoreError as exc:
            log.info("cannot record %s yet: %s", ", ".join(e.reason for e in events), exc)
            return False

    async def record_started(self, first_look: Callable[[], Iterable[GroupView] | None]) -> None:
        """AgentStarted, once the store is connected, naming what the reconciler's first
        turn found running here (what this agent adopted from the one before it)."""
        for _tick in range(int(FIRST_TURN_WAIT / 0.1)):
            if first_look() is not None:
                break
            await asyncio.sleep(0.1)  # the reconciler has no event for it: a turn is rare
        found = first_look()
        adopted = running_groups(found) if found is not None else None
        changed = self.informer.subscribe()
        while not self.informer.connected:
            await wait_any([changed], RETRY)
        event = self._event("AgentStarted", started_message(self.version, os.getpid(), adopted))
        while True:
            if await self._write([event]):
                return
            await asyncio.sleep(RETRY)

    async def record_stopping(self, why: str) -> None:
        """AgentStopping, best effort: at most STOPPING_TIMEOUT, never raising."""
        message = stopping_message(self.version, os.getpid(), why, running_groups(self.views()))
        try:
            async with asyncio.timeout(STOPPING_TIMEOUT):
                await self._write([self._event("AgentStopping", message)])
        except TimeoutError:
            log.info("AgentStopping not recorded: the store did not answer in time")

    async def watch_serving(self, liveness: LivenessSource) -> None:
        """Note each loss of the serving lease; record the losses once the store answers."""
        wakes = [liveness.subscribe(), self.informer.subscribe()]
        next_try = 0.0
        while True:
            running = running_groups(self.views())
            if self.book.serving_is(liveness.serving(), datetime.now(UTC), running):
                save_losses(self.path, self.book.losses)
            if self.book.losses and self.informer.connected and time.monotonic() >= next_try:
                reached = datetime.now(UTC)
                losses = list(self.book.losses)
                events = [self._event("ServingLost", x.message(self.node, reached), True)
                          for x in losses]  # fmt: skip
                if await self._write(events):
                    self.book.recorded(len(losses))
                    save_losses(self.path, self.book.losses)
                else:
                    next_try = time.monotonic() + RETRY
            await wait_any(wakes, RETRY)
