"""One resource on this node as the reconciler keeps it: its actuator, the spec it was made
from, and the work that goes on while it runs here (its probe, the actuator's ``tend()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.api.group import Resource
from nodeagent.actuators import Actuator
from nodeagent.metrics.instruments import probe_result
from nodeagent.probes import ProbeResult, ProbeRunner, ProbeStatus

log = logging.getLogger(__name__)

# Called with the probe's last detail when a running resource's probe reaches its
# failure threshold.
ProbeFailed = Callable[[str], Awaitable[None]]


def resource_key(group: str, resource: Resource) -> str:
    return f"{group}.{resource.resolved_name()}"


@dataclass
class Managed:
    spec: str
    actuator: Actuator
    probe: ProbeRunner | None = None
    probe_failed: bool = False
    tending: asyncio.Task[None] | None = None
    # This failure of the resource was counted (reset when it is started or seen running
    # again): a failure counts once, however many turns it takes to stop the resource.
    failure_counted: bool = False

    def start_running_work(self, name: str, resource: Resource, on_failed: ProbeFailed) -> None:
        """Start the probe and tend() if they are not going (idempotent): after a start,
        and for a resource found running, e.g. adopted after an agent restart."""
        if self.tending is None:
            self.tending = asyncio.create_task(_tend(name, self.actuator), name=f"tend-{name}")
        if resource.probe is None or self.probe is not None:
            return

        async def failed(status: ProbeStatus) -> None:
            self.probe_failed = True
            await on_failed(status.last.detail if status.last else "no detail")

        async def recovered(_status: ProbeStatus) -> None:
            self.probe_failed = False

        resource_name = resource.resolved_name()
        group = name.removesuffix(f".{resource_name}")  # `name` is "<group>.<resource>"

        def counted(result: ProbeResult) -> None:
            probe_result(group, resource_name, result.ok)

        self.probe = ProbeRunner(resource.probe, failed, recovered, counted)
        self.probe.start()

    async def stop_running_work(self) -> None:
        probe, self.probe = self.probe, None
        if probe is not None:
            await probe.stop()
        tending, self.tending = self.tending, None
        if tending is not None:
            tending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tending


async def _tend(name: str, actuator: Actuator) -> None:
    try:
        await actuator.tend()
    except Exception:  # its resource keeps running; the next start tends it again
        log.exception("%s: the work done while it runs failed", name)


@dataclass
class GroupMemory:
    """What the loop remembers of a group between turns; all of it can be lost harmlessly."""

    failed_starts: int = 0
    retry_after: float = 0.0
    # A stop that keeps failing (a script that errors) is retried with back-off, not on
    # every turn: hundreds of failing stops a second cost the node's CPU and say nothing new.
    failed_stops: int = 0
    stop_retry_after: float = 0.0
    last_action: str = ""
    blocked: str = ""  # the reason last announced by a Blocked event
