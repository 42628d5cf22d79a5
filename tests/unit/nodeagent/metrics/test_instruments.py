"""Store requests timed and their errors counted through the agent's store wrapper; fence
outcomes counted by device, action and result."""

from __future__ import annotations

import pytest

from controller.api.fencing import FenceAction, FenceDevice, FenceOutcome
from controller.store.errors import ConflictError
from controller.store.memory import MemoryStore
from nodeagent.metrics.instruments import (
    FENCE_ATTEMPTS,
    STORE_DURATION,
    STORE_ERRORS,
    counting_fence_attempts,
)
from nodeagent.metrics.timed_store import TimedStore
from tests.unit.nodeagent.metrics.test_tracker import value


async def test_store_requests_are_timed_by_operation_and_errors_counted() -> None:
    store = TimedStore(MemoryStore("c"))
    gets = value(STORE_DURATION, "_count", op="get")
    puts = value(STORE_DURATION, "_count", op="put")
    errors = value(STORE_ERRORS, op="put")
    await store.put("a", {"x": 1})
    assert (await store.get("a")) is not None
    with pytest.raises(ConflictError):
        await store.put("a", {"x": 2}, expect_revision=999)
    assert value(STORE_DURATION, "_count", op="get") == gets + 1
    assert value(STORE_DURATION, "_count", op="put") == puts + 2
    assert value(STORE_ERRORS, op="put") == errors + 1
    assert store.cluster == "c"
    refreshes = value(STORE_DURATION, "_count", op="lease_refresh")
    lease = await store.grant_lease(5)
    assert await lease.refresh() == 5 and lease.ttl == 5
    assert value(STORE_DURATION, "_count", op="lease_refresh") == refreshes + 1
    await store.close()


async def test_fence_outcomes_are_counted_by_device_action_and_result() -> None:
    device = FenceDevice.model_validate(
        {"apiVersion": "ha.vigil.dev/v1alpha1", "kind": "FenceDevice",
         "metadata": {"name": "bmc-n2"},
         "spec": {"agent": "exec", "command": ["/bin/true"], "targets": ["n2"]}}
    )  # fmt: skip
    answers = iter([True, False])

    async def run(d: FenceDevice, target: str, action: FenceAction) -> FenceOutcome:
        ok = next(answers)
        return FenceOutcome(d.metadata.name, target, action, ok, ok, "off", "m", 0.1)

    counted = counting_fence_attempts(run)
    ok = value(FENCE_ATTEMPTS, device="bmc-n2", action="off", result="success")
    bad = value(FENCE_ATTEMPTS, device="bmc-n2", action="off", result="failure")
    assert (await counted(device, "n2", "off")).ok
    assert not (await counted(device, "n2", "off")).ok
    assert value(FENCE_ATTEMPTS, device="bmc-n2", action="off", result="success") == ok + 1
    assert value(FENCE_ATTEMPTS, device="bmc-n2", action="off", result="failure") == bad + 1
