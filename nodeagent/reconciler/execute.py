"""Carrying out a turn's actions on this node, in order: each start or stop through the
resource's actuator, timed and recorded (an event, metrics, the group's memory), and what a
failure leaves behind: after a failed start the group is taken down again from the top,
after a failed stop nothing below it is stopped.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from controller.api.group import Resource, ResourceGroup
from nodeagent.actuators import ActuatorError
from nodeagent.actuators.base import actuator_kind
from nodeagent.metrics.instruments import action_done
from nodeagent.reconciler.plan import Action
from nodeagent.reconciler.report import action_event
from nodeagent.reconciler.running import GroupMemory, resource_key

if TYPE_CHECKING:
    from nodeagent.reconciler.loop import Reconciler

log = logging.getLogger(__name__)

PAST = {"start": "started", "stop": "stopped"}
BACKOFF_MAX = 10.0


async def execute(
    rec: Reconciler, actions: list[Action], groups: dict[str, ResourceGroup]
) -> dict[str, str]:
    failed: dict[str, str] = {}
    for action in actions:
        if action.group in failed:
            # After a failed start, nothing more starts; after a failed stop, nothing
            # below it stops: a volume cannot demote under a filesystem that would not
            # unmount, and trying would spend its stop timeout before the StopFailed
            # report that gets this node fenced.
            continue
        group = groups[action.group]
        resource = next(r for r in group.spec.resources if r.resolved_name() == action.resource)
        managed = rec.managed.get(resource_key(group.name, resource))
        if managed is None:
            failed[action.group] = f"{action.resource}: no actuator on this node"
            continue
        memory = rec.memory.setdefault(group.name, GroupMemory())
        began, kind = time.monotonic(), actuator_kind(resource)
        try:
            if action.verb == "stop":
                await managed.stop_running_work()
                await managed.actuator.stop()
                managed.probe_failed = False
                memory.failed_stops = 0
            else:
                if rec.lease_lost():
                    failed[action.group] = "serving lease lost"
                    continue
                await managed.actuator.start()
                managed.failure_counted = False  # a new run: its failure counts anew
                rec.start_running_work(group.name, resource, managed)
            memory.last_action = f"{PAST[action.verb]} {action.resource}"
            _note(rec, group.name, resource, action.verb)
            action_done(group.name, action.resource, kind, action.verb, began, True)
            last = group.spec.resources[-1].resolved_name() == action.resource
            if action.verb == "start" and last and rec.on_group_started is not None:
                rec.on_group_started(group.name)
        except ActuatorError as exc:
            action_done(group.name, action.resource, kind, action.verb, began, False)
            failed[action.group] = str(exc)
            if action.verb == "stop":  # a failed start is counted, with its event
                _note(rec, group.name, resource, action.verb, str(exc))
            memory.last_action = f"{action.verb} of {action.resource} failed: {exc}"
            log.error("%s", memory.last_action)
            if action.verb == "start":
                await start_failed(rec, group, str(exc))
            else:
                memory.failed_stops += 1
                pause = min(0.5 * 2**memory.failed_stops, BACKOFF_MAX)
                memory.stop_retry_after = time.monotonic() + pause
        except Exception as exc:  # a bug in one actuator must not stop every other group
            failed[action.group] = f"{action.verb} of {action.resource}: internal error {exc!r}"
            memory.last_action = failed[action.group]
            log.exception("%s %s", action.verb, action.resource)
    return failed


def _note(
    rec: Reconciler, group: str, resource: Resource, verb: str, error: str | None = None
) -> None:
    event = action_event(rec.node, group, resource.type, resource.resolved_name(), verb, error)
    rec.done_actions.append(event)


async def start_failed(rec: Reconciler, group: ResourceGroup, message: str) -> None:
    memory = rec.memory.setdefault(group.name, GroupMemory())
    memory.failed_starts += 1
    memory.retry_after = time.monotonic() + min(0.5 * 2**memory.failed_starts, BACKOFF_MAX)
    await rec.reporter.count_failure(group.name, message)
    # Leave nothing half-started: the next turn starts the group again from scratch.
    # But not below a resource that would not stop: what it may still use stays (a
    # filesystem that may still be mounted keeps its volume Primary), as in execute().
    for resource in reversed(group.spec.resources):
        managed = rec.managed.get(resource_key(group.name, resource))
        if managed is None:
            continue
        await managed.stop_running_work()
        try:
            await managed.actuator.stop()
        except ActuatorError as exc:
            log.error(
                "%s: after the failed start, %s did not stop (%s): what it stands on stays",
                group.name,
                resource.resolved_name(),
                exc,
            )
            break
