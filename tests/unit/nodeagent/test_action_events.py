"""Every action a reconciler takes and every step of a failover is an event naming its
source: the leader's placements and fencing (controller/<node>), each node's starts,
stops and failed stops (agent/<node>), the operator's commands (ha). Leader, reconcilers
and a scripted fence device over the in-memory store (tests/unit/nodeagent/
test_stop_failure_fencing.py's harness)."""

from __future__ import annotations

from pathlib import Path

from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.store.memory import MemoryStore
from controller.store.objects import Event, ObjectStore
from tests.unit.nodeagent.test_control_flow import SPEC, World, until
from tests.unit.nodeagent.test_stop_failure_fencing import (
    FENCED_SPEC,
    IP,
    STANDBY_N1,
    drain_n1_with_a_stuck_stop,
    run_cluster,
    stop,
)


async def events(store: MemoryStore) -> list[Event]:
    return await ObjectStore(store).events()


def seen(found: list[Event], reason: str, source: str, text: str = "") -> bool:
    return any(e.reason == reason and e.source_label == source and text in e.message for e in found)


async def test_a_drain_records_placements_stops_and_starts_with_their_sources(
    tmp_path: Path,
) -> None:
    world, fenced = World(), list[str]()
    store, tasks = await run_cluster(SPEC, tmp_path, world, fenced)
    try:

        async def started_on_n1() -> bool:
            return seen(await events(store), "Started", "agent/n1", f"ip {IP.split('.')[1]}")

        await until(started_on_n1)
        await apply_objects(
            store,
            decode_documents(parse_text(STANDBY_N1, "n.yaml")),
            cluster="lab",
            actor="ha standby",
        )

        async def started_on_n2() -> bool:
            found = await events(store)
            return seen(found, "Started", "agent/n2", "ip") and seen(
                found, "Started", "agent/n2", "service"
            )

        await until(started_on_n2)
        found = await events(store)
        # The operator's command (n1 had no Node object yet: the standby creates it).
        assert seen(found, "Created", "ha", "by ha standby")
        assert seen(found, "Stopping", "controller/n3", "n1")  # off n1 first
        assert seen(found, "Stopped", "agent/n1", "ip") and seen(found, "Stopped", "agent/n1")
        assert seen(found, "Placed", "controller/n3", "n2")
        # Stopped on n1 before anything started on n2, in the order the events say.
        ours = [e for e in found if e.kind == "ResourceGroup" and e.source_label != "ha"]
        stops = [i for i, e in enumerate(ours) if e.reason == "Stopped"]
        starts_n2 = [
            i for i, e in enumerate(ours) if e.reason == "Started" and e.source["node"] == "n2"
        ]
        assert max(stops) < min(starts_n2)
    finally:
        await stop(tasks)


async def test_a_failed_stop_and_the_fence_it_causes_are_events(tmp_path: Path) -> None:
    world, fenced = World(), list[str]()
    store, tasks = await run_cluster(FENCED_SPEC, tmp_path, world, fenced)
    try:
        await drain_n1_with_a_stuck_stop(store, world)

        async def recovered() -> bool:
            return seen(await events(store), "Started", "agent/n2", "ip")

        await until(recovered)
        found = await events(store)
        failed = [e for e in found if e.reason == "StopFailed"]
        assert failed and failed[0].type == "Warning" and failed[0].source_label == "agent/n1"
        assert "ip" in failed[0].message and "on n1" in failed[0].message
        for reason in ("FenceRequested", "FenceDone", "FenceVerified"):
            assert seen(found, reason, "controller/n3", "n1"), reason
        fence_done = next(i for i, e in enumerate(found) if e.reason == "FenceVerified")
        start_n2 = next(
            i for i, e in enumerate(found) if e.reason == "Started" and e.source_label == "agent/n2"
        )
        assert fence_done < start_n2  # fenced first, then recovered
    finally:
        await stop(tasks)
