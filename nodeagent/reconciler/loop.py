"""The node reconciler: level-triggered convergence of this node's resources.

Each turn reads the informer's copy of specs and placements, observes through their
actuators the groups that are due (reconciler/dirty.py, pure: changed, unsettled, poked,
or next in the spread resync; every group after a liveness change), plans stops then
starts over every group's latest view (reconciler/plan.py, pure), carries them out, and
reports the status of the groups it looked at and failures to the store
(reconciler/report.py); each resource's actuator and its work while running live in
reconciler/running.py. It is woken by any store or liveness change and runs every RESYNC
seconds regardless; after a restart it converges from what it observes (a VIP found on
an interface but not placed here is removed).

Two rules from docs/safety.md are enforced here, not in the controller: nothing starts
without the serving lease, and a group recovered from a lost node does not start while
this node still hears that node. When the serving lease is about to end, `stop_all`
runs at once, outside the turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from controller.api.group import Resource, ResourceGroup
from controller.api.liveness import LivenessSource
from controller.scheduler.from_api import group_start_order
from controller.store.base import Put, Store
from controller.store.informer import Informer, wait_any
from controller.store.objects import Event
from controller.store.records import PlacementRecord
from nodeagent.actuators import (
    ActuatorContext,
    ActuatorError,
    NoActuatorError,
    Observation,
    State,
    default_registry,
)
from nodeagent.actuators.base import ActuatorRegistry, actuator_kind
from nodeagent.metrics.instruments import action_done, action_failed
from nodeagent.reconciler.dirty import RESYNC, Tracker
from nodeagent.reconciler.execute import execute
from nodeagent.reconciler.plan import Action, GroupView, Mode, ResourceView, plan
from nodeagent.reconciler.report import Reporter
from nodeagent.reconciler.running import GroupMemory, Managed, resource_key

log = logging.getLogger(__name__)


def _spec_text(resource: Resource) -> str:
    """What makes a new actuator when it changes: the resource itself and its time limits
    (a changed probe does not restart the resource)."""
    body = getattr(resource, resource.type).to_dict()
    return json.dumps([actuator_kind(resource), body, resource.timeouts.to_dict()], sort_keys=True)


class Reconciler:
    def __init__(
        self,
        node: str,
        store: Store,
        informer: Informer,
        liveness: LivenessSource,
        *,
        registry: ActuatorRegistry = default_registry,
        run_dir: Path = Path("/run/vigil"),
        lib_dir: Path = Path("/var/lib/vigil"),
        netns: str | None = None,
    ) -> None:
        self.node = node
        self.store = store
        self.informer = informer
        self.liveness = liveness
        self.registry = registry
        self.run_dir = run_dir
        self.lib_dir = lib_dir
        self.netns = netns
        self.reporter = Reporter(node, store, informer)
        self.managed: dict[str, Managed] = {}
        self._spec_texts: dict[str, tuple[Resource, str]] = {}
        self._order: tuple[tuple[ResourceGroup, ...], list[str]] = ((), [])
        self._groups: tuple[ResourceGroup, ...] = ()  # as the last turn saw them
        self.dirty = Tracker()
        self.memory: dict[str, GroupMemory] = {}
        self._lock = asyncio.Lock()
        self._retired: list[Managed] = []
        self._vips: list[str] | None = None
        self._probe_wake = asyncio.Event()
        self.done_actions: list[Event] = []  # the turn's actions, recorded once it reported
        self.turns = 0
        # What the first turn found on this node, before it acted: what this agent adopted
        # from the one before it (AgentStarted says it; later turns' views have moved on).
        self.first_look: tuple[GroupView, ...] | None = None
        self.views: dict[str, GroupView] = {}  # as the last turn saw each group here
        self.on_group_started: Callable[[str], None] | None = None  # its last resource did

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        wakes = [self.informer.subscribe(), self.liveness.subscribe(), self._probe_wake]
        guard = asyncio.create_task(self._lease_guard(), name="lease-guard")
        recorder = asyncio.create_task(self.reporter.actions.run(), name="action-events")
        try:
            while True:
                try:
                    await self.turn()
                except Exception:  # a turn must never kill the loop; the next one retries
                    log.exception("reconcile turn failed")
                await wait_any(wakes, RESYNC)
        finally:
            guard.cancel()
            recorder.cancel()

    async def _lease_guard(self) -> None:
        """Stop everything the moment the serving lease is lost, without waiting for a turn."""
        wake = self.liveness.subscribe()
        while True:
            await wake.wait()
            wake.clear()
            if not self.liveness.serving():
                await self.stop_all("serving lease lost: no majority has heard this node")

    async def stop_all(self, why: str) -> bool:
        """Stop every resource, last started first; whether all stopped (the agent then
        disarms its self-fencing watchdog, nodeagent/selffence.py, and only then)."""
        stopped = True
        async with self._lock:
            running = list(self.managed)
            if running:
                log.warning("%s: stopping every resource", why)
            for key in reversed(running):
                managed = self.managed[key]
                await managed.stop_running_work()
                try:
                    await managed.actuator.stop()
                except ActuatorError as exc:
                    log.error("stop of %s failed: %s", key, exc)
                    stopped = False
        return stopped

    # -- one turn -----------------------------------------------------------------------

    def _mode(self, record: PlacementRecord | None, serving: bool) -> Mode:
        if not serving or record is None or record.node != self.node:
            return "stop"
        view = self.liveness.liveness()
        mine = view.get(self.node)
        if record.incarnation and mine is not None and mine.incarnation != record.incarnation:
            # Placed on an earlier incarnation of this agent: keep what runs, start
            # nothing, until the leader confirms the placement for this one.
            return "keep"
        if self._still_hears_recovered(record):
            return "stop"
        return "run"

    def _still_hears_recovered(self, record: PlacementRecord | None) -> bool:
        """The placement recovers the group from a lost node whose incarnation this node
        still hears (its heartbeats of before the loss, or a partition healing)."""
        previous = record.recovered_from if record is not None else None
        if not previous:
            return False
        seen = self.liveness.liveness().get(previous)
        same = record is not None and record.recovered_incarnation in (
            None,
            seen.incarnation if seen else None,
        )
        return seen is not None and seen.alive and same

    def _peer_dead(self, node: str) -> bool:
        seen = self.liveness.liveness().get(node)
        return seen is not None and seen.state == "dead"

    async def turn(self) -> None:
        async with self._lock:
            self.turns += 1
            serving = self.liveness.serving()
            groups = {
                name: g
                for name, g in self.informer.objects("ResourceGroup").items()
                if isinstance(g, ResourceGroup)
            }
            placements = self.informer.placements()
            changed = self._groups_changed(groups)
            if changed:
                self._record_vips(groups)
            inputs = {name: (group, placements.get(name)) for name, group in groups.items()}
            seen_as = (serving, tuple(sorted(self.liveness.liveness().items())))
            due = self.dirty.due(inputs, seen_as, time.monotonic())
            observed: list[GroupView] = []
            blocked: dict[str, str] = {}
            now = time.monotonic()
            for name, group in groups.items():
                if name not in due:
                    continue  # settled and unchanged: its last view stands
                record = placements.get(name)
                mode = self._mode(record, serving)
                managed, why = self._actuators(group)
                if why is not None:
                    blocked[name] = why
                    mode = "stop"  # what this node can run of it, it does not run alone
                view = await self._observe(group, managed, mode)
                placed_here = serving and record is not None and record.node == self.node
                if mode == "stop" and why is None and placed_here:
                    # Placed here, yet "stop": only the recovery rule says so (_mode).
                    view = self._recovered_but_heard(view, record)
                observed.append(view)
            views = {name: self.views[name] for name in groups if name in self.views}
            views.update((view.name, view) for view in observed)
            self.views = views
            if self.first_look is None:
                self.first_look = tuple(observed)
            if changed or self._retired:
                await self._forget_deleted(groups)
            order = self._start_order(groups)
            await self._count_unexpected_failures(observed, groups)
            # Every group's view, so that stops and starts keep the cross-group order; the
            # ones not looked at are settled (dirty.py) and plan nothing.
            actions = plan(list(self.views.values()), order)
            actions = [a for a in actions if not self._backing_off(a, now)]
            failed = await execute(self, actions, groups)
            self._keep_running_work(observed, groups, failed)
            unwritten, conflict = await self._report(observed, groups, placements, blocked, failed)
            done, self.done_actions = self.done_actions, []
            self.reporter.actions.add(done)
            self.dirty.looked(inputs, seen_as, observed, set(failed) | unwritten)
            if conflict:
                self._probe_wake.set()  # someone else wrote one; look again next turn

    async def _report(
        self,
        views: list[GroupView],
        groups: dict[str, ResourceGroup],
        placements: dict[str, PlacementRecord],
        blocked: dict[str, str],
        failed: dict[str, str],
    ) -> tuple[set[str], bool]:
        """Write the statuses of the groups looked at that differ from the store's; the
        groups whose status did not land, and whether another writer is why (Reporter.write)."""
        writes: dict[str, Put] = {}
        unwritten: set[str] = set()
        for view in views:
            # One group's trouble is that group's status, never the end of the turn.
            try:
                write = await self.reporter.status_write(
                    groups[view.name],
                    view,
                    placements.get(view.name),
                    blocked.get(view.name),
                    failed.get(view.name),
                    self.memory.setdefault(view.name, GroupMemory()),
                )
            except Exception:
                log.exception("reporting the status of %s failed", view.name)
                unwritten.add(view.name)
                continue
            if write is not None:
                writes[view.name] = write
        lost, conflict = await self.reporter.write(list(writes.values()))
        return unwritten | {name for name, put in writes.items() if put.key in lost}, conflict

    def _recovered_but_heard(self, view: GroupView, record: PlacementRecord | None) -> GroupView:
        """Placed here to recover it from a lost node that this node hears again. Not yet
        started here: wait (the old node may still run it). Already running here: keep it;
        the majority declared that node lost, so it stopped before its lease ended
        (docs/safety.md), and dropping the group now would only cut the service."""
        previous = record.recovered_from if record is not None else None
        if any(r.state is State.RUNNING for r in view.resources):
            log.info("%s runs here; %s is heard again: keeping it", view.name, previous)
            return replace(view, mode="keep")
        log.warning(
            "placement says recover %s from %s, but this node still hears it: waiting",
            view.name,
            previous,
        )
        return view

    def _record_vips(self, groups: dict[str, ResourceGroup]) -> None:
        """Tell the lease enforcer which addresses are the cluster's floating IPs."""
        addresses = sorted(
            r.ip.address for g in groups.values() for r in g.spec.resources if r.ip is not None
        )
        if addresses == self._vips:
            return
        path = self.run_dir / "vips.json"
        tmp = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"addresses": addresses}))
            tmp.replace(path)
            self._vips = addresses
        except OSError as exc:
            log.warning("cannot record the floating IPs for the lease enforcer: %s", exc)

    def _backing_off(self, action: Action, now: float) -> bool:
        memory = self.memory.get(action.group)
        if memory is None:
            return False
        return now < (memory.retry_after if action.verb == "start" else memory.stop_retry_after)

    def _groups_changed(self, groups: dict[str, ResourceGroup]) -> bool:
        """Whether a group object was created, changed or deleted since the last turn."""
        current = tuple(groups.values())
        known, self._groups = self._groups, current
        return len(known) != len(current) or any(
            a is not b for a, b in zip(known, current, strict=True)
        )

    def _start_order(self, groups: dict[str, ResourceGroup]) -> list[str]:
        """group_start_order, computed again only when a group object changed."""
        current = tuple(groups.values())
        known, order = self._order
        if len(known) == len(current) and all(a is b for a, b in zip(known, current, strict=True)):
            return order
        order = group_start_order(current)
        self._order = (current, order)
        return order

    def _spec_text(self, key: str, resource: Resource) -> str:
        """_spec_text, computed again only for a resource object the informer decoded anew
        (it keeps one object per stored revision): a turn over thousands of groups must
        not serialise every spec."""
        known = self._spec_texts.get(key)
        if known is not None and known[0] is resource:
            return known[1]
        text = _spec_text(resource)
        self._spec_texts[key] = (resource, text)
        return text

    def _actuators(self, group: ResourceGroup) -> tuple[dict[str, Managed], str | None]:
        """The group's actuators by resource name, and why the group cannot run here (a
        resource kind this node has no actuator for), if so."""
        out: dict[str, Managed] = {}
        blocked: str | None = None
        for resource in group.spec.resources:
            key = resource_key(group.name, resource)
            spec_text = self._spec_text(key, resource)
            managed = self.managed.get(key)
            if managed is None or managed.spec != spec_text:
                # A changed spec makes a new actuator; the old one's resource is stopped by
                # the next turn only if the old spec is still observed running under the
                # same key, so stop it here, before it is forgotten.
                if managed is not None:
                    self._retired.append(managed)
                ctx = ActuatorContext(
                    resource=key,
                    run_dir=self.run_dir,
                    lib_dir=self.lib_dir,
                    netns=self.netns,
                    timeouts=resource.timeouts,
                    peer_dead=self._peer_dead,
                )
                try:
                    managed = Managed(spec_text, self.registry.create(resource, ctx))
                except NoActuatorError as exc:
                    self.managed.pop(key, None)
                    blocked = blocked or str(exc)
                    continue
                self.managed[key] = managed
            out[resource.resolved_name()] = managed
        return out, blocked

    async def _observe(
        self, group: ResourceGroup, managed: dict[str, Managed], mode: Mode
    ) -> GroupView:
        resources = []
        for resource in group.spec.resources:
            name = resource.resolved_name()
            entry = managed.get(name)
            if entry is None:
                # Nothing on this node can have started it: stopped here, and nothing to do.
                detail = f"no actuator for {actuator_kind(resource)} resources on this node"
                resources.append(ResourceView(name, State.STOPPED, detail))
                continue
            began = time.monotonic()
            seen: Observation = await entry.actuator.observe()
            action_done(group.name, name, actuator_kind(resource), "monitor", began, True)
            state = seen.state
            if state is State.RUNNING and entry.probe_failed:
                state = State.FAILED
            resources.append(ResourceView(name, state, seen.detail))
        return GroupView(group.name, mode, tuple(resources))

    async def _forget_deleted(self, groups: dict[str, ResourceGroup]) -> None:
        """Stop and drop actuators of resources no group declares any more."""
        wanted = {resource_key(g.name, r) for g in groups.values() for r in g.spec.resources}
        retired = [m for k, m in self.managed.items() if k not in wanted]
        retired += self._retired
        self._retired = []
        for key in [k for k in self.managed if k not in wanted]:
            del self.managed[key]
            self._spec_texts.pop(key, None)
        for managed in retired:
            await managed.stop_running_work()
            try:
                await managed.actuator.stop()
            except ActuatorError as exc:
                log.error("stop of a removed resource failed: %s", exc)

    async def _count_unexpected_failures(
        self, views: list[GroupView], groups: dict[str, ResourceGroup]
    ) -> None:
        """A resource found failed where it should run (a process that exited, a unit that
        crashed) is a failure of its group, with an event, as a failed start or probe is:
        otherwise a crashing service is restarted forever and the migration threshold never
        moves it. A probe that failed has counted already."""
        for view in views:
            if view.mode != "run":
                continue
            group = groups[view.name]
            for resource, seen in zip(group.spec.resources, view.resources, strict=True):
                managed = self.managed.get(resource_key(group.name, resource))
                if managed is None:
                    continue
                if seen.state is State.RUNNING:
                    managed.failure_counted = False
                elif seen.state is State.FAILED and not managed.failure_counted:
                    managed.failure_counted = True
                    name = resource.resolved_name()
                    action_failed(group.name, name, "monitor")
                    if not managed.probe_failed:
                        log.warning("%s.%s failed: %s", group.name, name, seen.detail)
                        await self.reporter.count_failure(
                            group.name, f"{name} failed: {seen.detail}"
                        )

    def lease_lost(self) -> bool:
        return not self.liveness.serving()

    # -- work while a resource runs: probes and the actuator's tend() ------------------

    def _keep_running_work(
        self, views: list[GroupView], groups: dict[str, ResourceGroup], failed: dict[str, str]
    ) -> None:
        """Level-triggered: every resource seen running in a group this node runs (or keeps)
        has its probe and its tend() going, also one adopted after an agent restart."""
        for view in views:
            if view.mode == "stop" or view.name in failed:
                continue
            group = groups[view.name]
            for resource, seen in zip(group.spec.resources, view.resources, strict=True):
                managed = self.managed.get(resource_key(group.name, resource))
                if managed is not None and seen.state is State.RUNNING:
                    self.start_running_work(group.name, resource, managed)

    def start_running_work(self, group: str, resource: Resource, managed: Managed) -> None:
        name = f"{group}.{resource.resolved_name()}"

        async def probe_failed(detail: str) -> None:
            log.warning("probe of %s failed: %s", name, detail)
            await self.reporter.count_failure(
                group, f"probe of {resource.resolved_name()} failed: {detail}"
            )
            self.dirty.poke(group)
            self._probe_wake.set()

        managed.start_running_work(name, resource, probe_failed)
