"""`ha status` shows each node's fencing and why a group waits for one."""

from __future__ import annotations

from dataclasses import replace

from controller.api.cluster import Cluster
from controller.api.decode import decode
from controller.api.fencing import FenceDevice
from controller.api.group import ResourceGroup
from controller.api.manifest import load
from controller.api.node import NodeStatus
from controller.cli.status_view import render, to_json
from controller.store.fence_record import FenceRecord
from controller.store.records import PlacementRecord
from controller.store.view import ClusterView
from tests.paths import PG_TODAY

NOW = 1_800_000_000.0


def pg_view(**changes: object) -> ClusterView:
    items = [decode(d.data) for d in load([str(PG_TODAY)])]
    view = ClusterView(
        cluster=next(o for o in items if isinstance(o, Cluster)),
        groups={o.name: o for o in items if isinstance(o, ResourceGroup)},
        fences={o.name: o for o in items if isinstance(o, FenceDevice)},
        placements={"pg": PlacementRecord("pg", "host-m", 3, "best score")},
    )
    return replace(view, **changes)  # type: ignore[arg-type]


def test_a_group_on_a_lost_node_says_it_waits_for_the_fence() -> None:
    failed = FenceRecord(
        "host-m",
        "failed",
        attempts=2,
        requested_at=NOW - 5,
        message="attempt 2 failed: bmc-host-m: no answer from 10.0.0.101:623",
    )
    view = pg_view(node_status={"host-m": NodeStatus(phase="Lost")}, fencing={"host-m": failed})
    text = render("c", view, NOW)
    assert "\nFencing:\n" in text
    [row] = [line for line in text.splitlines() if line.startswith("host-m") and "failed" in line]
    assert row.split()[:4] == ["host-m", "failed", "2", "5s"]
    assert "waiting for lost host-m to be fenced: failed: attempt 2 failed: bmc-host-m" in text
    assert to_json("c", view, NOW)["fencing"][0]["state"] == "failed"


def test_once_fenced_the_group_shows_its_placement_reason_again() -> None:
    done = FenceRecord(
        "host-m",
        "fenced",
        fenced_at=NOW - 1,
        fenced_by=("bmc-host-m",),
        message="off by bmc-host-m: verified off in 0.10 s",
    )
    view = pg_view(node_status={"host-m": NodeStatus(phase="Fenced")}, fencing={"host-m": done})
    text = render("c", view, NOW)
    assert "waiting for lost" not in text and "best score" in text
    assert "verified off in 0.10 s" in text


def test_without_fencing_records_there_is_no_fencing_table() -> None:
    assert "Fencing:" not in render("c", pg_view(), NOW)


def test_a_fenced_node_is_not_shown_connected_by_its_expiring_record() -> None:
    from controller.store.records import NodeRecord

    record = NodeRecord("host-m", 1, "v", "i", "t", True)
    view = pg_view(node_status={"host-m": NodeStatus(phase="Fenced")}, agents={"host-m": record})
    [row] = [line for line in render("c", view, NOW).splitlines() if line.startswith("host-m ")]
    assert "Fenced" in row and "no agent" in row and "connected" not in row
