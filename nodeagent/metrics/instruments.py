"""The metrics updated where things happen (an action's end, a store request, a fence
attempt), on the agent's own registry. Everything read from state at scrape time is in
collector.py. Updating one costs a lock and an addition: they run whether or not
/metrics is served, so the event sites need not know."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

from controller.api.fencing import FenceAction, FenceDevice, FenceOutcome
from nodeagent.metrics import catalog

# No `<name>_created` series beside each counter and histogram: they double the series for
# a time Prometheus does not need (a reset is seen as a reset), and are not in the catalog.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=False)


def _counter(name: str) -> Counter:
    m = catalog.BY_NAME[name]
    return Counter(m.family, m.help, m.labels, registry=REGISTRY)


def _histogram(name: str, buckets: tuple[float, ...]) -> Histogram:
    m = catalog.BY_NAME[name]
    return Histogram(m.name, m.help, m.labels, buckets=buckets, registry=REGISTRY)


ACTION_DURATION = _histogram("vigil_resource_action_duration_seconds", catalog.DURATION_BUCKETS)
ACTION_FAILURES = _counter("vigil_resource_action_failures_total")
PROBE_RESULTS = _counter("vigil_probe_results_total")
FAILOVER_DURATION = _histogram("vigil_failover_duration_seconds", catalog.FAILOVER_BUCKETS)
STORE_DURATION = _histogram("vigil_store_request_duration_seconds", catalog.STORE_BUCKETS)
STORE_ERRORS = _counter("vigil_store_request_errors_total")
FENCE_ATTEMPTS = _counter("vigil_fence_attempts_total")
PLACEMENT_CHANGES = _counter("vigil_placement_changes_total")
LEADER_CHANGES = _counter("vigil_leader_changes_total")
ETCD_LEADER_CHANGES = _counter("vigil_etcd_leader_changes_total")


def action_done(group: str, resource: str, kind: str, action: str, began: float, ok: bool) -> None:
    """A start, stop or monitor of one resource begun at `began` (time.monotonic()) ended
    (`kind`: the resource's type)."""
    ACTION_DURATION.labels(action, kind).observe(time.monotonic() - began)
    if not ok:
        ACTION_FAILURES.labels(group, resource, action).inc()


def action_failed(group: str, resource: str, action: str) -> None:
    """A failure found rather than returned (a monitor seeing the resource failed)."""
    ACTION_FAILURES.labels(group, resource, action).inc()


def forget_group(group: str) -> None:
    """A deleted group's series (its placement record is gone)."""
    for metric in (PLACEMENT_CHANGES, ACTION_FAILURES, PROBE_RESULTS):
        metric.remove_by_labels({"group": group})


def probe_result(group: str, resource: str, ok: bool) -> None:
    PROBE_RESULTS.labels(group, resource, "success" if ok else "failure").inc()


FenceRun = Callable[[FenceDevice, str, FenceAction], Awaitable[FenceOutcome]]


def counting_fence_attempts(run: FenceRun) -> FenceRun:
    """`run` (nodeagent.fencing.run_fence_action), each outcome counted by device,
    action and result; success is the outcome's `ok`."""

    async def counted(device: FenceDevice, target: str, action: FenceAction) -> FenceOutcome:
        outcome = await run(device, target, action)
        result = "success" if outcome.ok else "failure"
        FENCE_ATTEMPTS.labels(device.metadata.name, action, result).inc()
        return outcome

    return counted
