"""The common contract of every actuator, and the registry that finds one for a resource.

The node reconciler is level-triggered: it asks `observe()` for the real state of each
resource placed here and calls `start()` / `stop()` until reality matches. So both
actions are idempotent (a no-op when already there), each is bounded by the
resource's timeout, and each verifies its effect with a fresh observation before it
returns: a start that "succeeded" but left the resource stopped is an error.
"""

from __future__ import annotations

import asyncio
import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeagent.actuators.parsing import ConfigError as ConfigError
from nodeagent.actuators.parsing import (
    parse_duration,
    reject_unknown,
    require_mapping,
)


class ActuatorError(RuntimeError):
    """An action failed. The message says what failed, where on this node, and what to do."""

    def __init__(self, what: str, *, resource: str, where: str, fix: str) -> None:
        self.what = what
        self.resource = resource
        self.where = where
        self.fix = fix
        super().__init__(f"resource {resource}: {what} ({where}); {fix}")


class State(enum.Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Observation:
    state: State
    detail: str

    @classmethod
    def running(cls, detail: str) -> Observation:
        return cls(State.RUNNING, detail)

    @classmethod
    def stopped(cls, detail: str) -> Observation:
        return cls(State.STOPPED, detail)

    @classmethod
    def failed(cls, detail: str) -> Observation:
        return cls(State.FAILED, detail)

    @classmethod
    def unknown(cls, detail: str) -> Observation:
        return cls(State.UNKNOWN, detail)


@dataclass(frozen=True)
class Timeouts:
    """Per-resource bounds in seconds (Pacemaker's operation defaults are 20 s)."""

    start: float = 20.0
    stop: float = 20.0
    monitor: float = 20.0

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any] | None, field_name: str = "timeouts") -> Timeouts:
        if spec is None:
            return cls()
        spec = require_mapping(spec, field_name)
        reject_unknown(spec, {"start", "stop", "monitor"}, field_name)
        values = {key: parse_duration(spec[key], f"{field_name}.{key}") for key in spec}
        for key, seconds in values.items():
            if seconds <= 0:
                raise ConfigError(f"{field_name}.{key}: must be greater than zero, got {seconds}")
        return cls(**values)


@dataclass(frozen=True)
class ActuatorContext:
    """Where and as what an actuator runs on this node.

    `resource` is the cluster-wide resource name (used in messages, PID files and as the
    OCF instance name). `netns` runs the actuator inside a named network namespace
    (tests, and nodes that keep service addresses in a namespace).
    """

    resource: str
    run_dir: Path = Path("/run/vigil")
    netns: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)


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

    def error(self, what: str, fix: str) -> ActuatorError:
        return ActuatorError(what, resource=self.ctx.resource, where=self.where, fix=fix)

    async def observe(self) -> Observation:
        """The real state now. Never raises for a broken resource: that is an observation."""
        limit = self.ctx.timeouts.monitor
        try:
            async with asyncio.timeout(limit):
                return await self._observe()
        except TimeoutError:
            return Observation.unknown(f"monitor did not answer within {limit:g}s ({self.where})")
        except ActuatorError as exc:
            return Observation.unknown(str(exc))

    async def start(self) -> None:
        """Bring the resource up; a no-op if it already runs."""
        await self._act("start", State.RUNNING, self._start, self.ctx.timeouts.start)

    async def stop(self) -> None:
        """Take the resource down; a no-op if it is already stopped."""
        await self._act("stop", State.STOPPED, self._stop, self.ctx.timeouts.stop)

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


ActuatorFactory = Callable[[Mapping[str, Any], ActuatorContext], Actuator]


class ActuatorRegistry:
    """Resource kind -> factory. A kind may have variants (`service.systemd`) chosen by
    which variant key the spec carries, so new kinds and variants plug in by registering."""

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

    def resolve(self, kind: str, spec: Mapping[str, Any]) -> str:
        if kind in self._factories:
            return kind
        variants = sorted(k.split(".", 1)[1] for k in self._factories if k.startswith(kind + "."))
        if not variants:
            raise ConfigError(
                f"resource kind {kind!r} has no actuator on this node; known kinds: "
                f"{', '.join(sorted({k.split('.')[0] for k in self._factories}))}"
            )
        present = [v for v in variants if v in spec]
        if len(present) != 1:
            raise ConfigError(
                f"{kind}: give exactly one of {', '.join(variants)}; "
                f"got {', '.join(present) if present else 'none'}"
            )
        return f"{kind}.{present[0]}"

    def create(self, kind: str, spec: Mapping[str, Any], ctx: ActuatorContext) -> Actuator:
        return self._factories[self.resolve(kind, spec)](spec, ctx)


default_registry = ActuatorRegistry()
register = default_registry.register
