"""The common contract of every actuator, and the registry that finds one for a resource.

The node reconciler is level-triggered: it asks `observe()` for the real state of each
resource placed here and calls `start()` / `stop()` until reality matches. So both
actions are idempotent (a no-op when already there), each is bounded by the
resource's timeout, and each verifies its effect with a fresh observation before it
returns: a start that "succeeded" but left the resource stopped is an error.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.api.group import Resource, Timeouts
from nodeagent.observation import Observation, State


class NoActuatorError(ValueError):
    """A resource this node cannot run at all (no actuator for its kind); the message names
    the resource and what to do. Every other rule on a spec is the API's, at `ha apply`."""


class ActuatorError(RuntimeError):
    """An action failed. The message says what failed, where on this node, and what to do."""

    def __init__(self, what: str, *, resource: str, where: str, fix: str) -> None:
        self.what = what
        self.resource = resource
        self.where = where
        self.fix = fix
        super().__init__(f"resource {resource}: {what} ({where}); {fix}")


@dataclass(frozen=True)
class ActuatorContext:
    """Where and as what an actuator runs on this node.

    `resource` is the cluster-wide resource name (used in messages, PID files and as the
    OCF instance name). `netns` runs the actuator inside a named network namespace
    (tests, and nodes that keep service addresses in a namespace). `run_dir` (tmpfs) holds
    what an agent restart must find and a reboot must forget; `lib_dir` (disk) what must
    survive the node's power loss (the loop devices a filesystem attached, for the lab).
    `peer_dead` answers from this node's heartbeat membership.
    """

    resource: str
    run_dir: Path = Path("/run/vigil")
    lib_dir: Path = Path("/var/lib/vigil")
    netns: str | None = None
    # Pacemaker's operation defaults are 20 s too.
    timeouts: Timeouts = field(default_factory=Timeouts)
    # Whether this node's membership counts a node dead: its serving lease is over, so it
    # runs nothing of the cluster's (a volume promotes without waiting for the dead
    # peer's replication link to time out). None: nothing is known.
    peer_dead: Callable[[str], bool] | None = None


def instance_name(resource: str) -> str:
    """The resource name made safe for file names (pid files, OCF agents' state files)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", resource)


class Actuator(ABC):
    """One resource on this node. Subclasses implement `_observe`, `_start`, `_stop`, `where`."""

    def __init__(self, ctx: ActuatorContext) -> None:
        self.ctx = ctx

    @property
    @abstractmethod
    def where(self) -> str:
        """The node-local place this resource lives, for messages (unit, interface, pid...)."""

    @abstractmethod
    async def _observe(self) -> Observation: ...

    @abstractmethod
    async def _start(self) -> None: ...

    @abstractmethod
    async def _stop(self) -> None: ...

    async def tend(self) -> None:  # noqa: B027 - optional hook; most actuators need none
        """Work done while the resource runs on this node: the reconciler runs this as a
        task from the turn it sees the resource running until it stops it or leaves its
        group (a VIP's periodic announcements; a volume's health next). It should loop
        until cancelled, or return when there is nothing to do, as here."""

    def error(self, what: str, fix: str) -> ActuatorError:
        return ActuatorError(what, resource=self.ctx.resource, where=self.where, fix=fix)

    async def observe(self) -> Observation:
        """The real state now. Never raises for a broken resource: that is an observation."""
        limit = self.ctx.timeouts.monitor.total_seconds()
        try:
            async with asyncio.timeout(limit):
                return await self._observe()
        except TimeoutError:
            return Observation.unknown(f"monitor did not answer within {limit:g}s ({self.where})")
        except ActuatorError as exc:
            return Observation.unknown(str(exc))

    async def start(self) -> None:
        """Bring the resource up; a no-op if it already runs."""
        await self._act(
            "start", State.RUNNING, self._start, self.ctx.timeouts.start.total_seconds()
        )

    async def stop(self) -> None:
        """Take the resource down; a no-op if it is already stopped."""
        await self._act("stop", State.STOPPED, self._stop, self.ctx.timeouts.stop.total_seconds())

    async def _act(self, name: str, goal: State, action: Callable[[], Any], limit: float) -> None:
        try:
            async with asyncio.timeout(limit):
                before = await self._observe()
                if before.state is goal:
                    return
                await action()
                after = await self._observe()
        except TimeoutError:
            raise self.error(
                f"{name} did not finish within {limit:g}s",
                f"check why it hangs, or raise timeouts.{name} if it is just slow",
            ) from None
        if after.state is not goal:
            raise self.error(
                f"{name} returned but the resource is {after.state.value}: {after.detail}",
                f"inspect the resource on this node; the {name} action did not take effect",
            )


ActuatorFactory = Callable[[Resource, ActuatorContext], Actuator]


def actuator_kind(resource: Resource) -> str:
    """The registry key of a resource: its type, and for a service its variant
    (`ip`, `service.exec`, ...)."""
    if resource.service is not None:
        return f"service.{resource.service.variant}"
    return resource.type


class ActuatorRegistry:
    """Resource kind -> factory, so that new kinds and service variants plug in by
    registering (`@register("service.exec")`). Factories receive the typed resource."""

    def __init__(self) -> None:
        self._factories: dict[str, ActuatorFactory] = {}

    def register(self, kind: str) -> Callable[[ActuatorFactory], ActuatorFactory]:
        def decorate(factory: ActuatorFactory) -> ActuatorFactory:
            if kind in self._factories:
                raise ValueError(f"actuator kind {kind!r} is registered twice")
            self._factories[kind] = factory
            return factory

        return decorate

    def kinds(self) -> list[str]:
        return sorted(self._factories)

    def create(self, resource: Resource, ctx: ActuatorContext) -> Actuator:
        kind = actuator_kind(resource)
        factory = self._factories.get(kind)
        if factory is None:
            raise NoActuatorError(
                f"resource {ctx.resource}: {kind} resources have no actuator on this node; "
                f"known kinds: {', '.join(self.kinds())}"
            )
        return factory(resource, ctx)


default_registry = ActuatorRegistry()
register = default_registry.register
