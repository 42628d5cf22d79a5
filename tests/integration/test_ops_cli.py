"""Operator commands against a real etcd: status, move, standby, cleanup."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.store import keys
from controller.store.etcd import EtcdStore
from controller.store.records import FailureRecord, PlacementRecord
from tests.etcd_server import EtcdServer
from tests.integration.cli_helpers import Cli, new_cluster_name
from tests.integration.test_cli import apply_pg, renamed
from tests.paths import PG_TODAY


@pytest.fixture
def pg(etcd_server: EtcdServer, tmp_path: Path) -> Cli:
    cli = Cli(etcd_server.endpoint, "pg-cluster-" + new_cluster_name())
    apply_pg(cli, tmp_path)
    return cli


def test_status_shows_nodes_and_groups(pg: Cli) -> None:
    text = pg("status")
    assert text.code == 0, text.err
    assert f"Cluster {pg.cluster}: 3 nodes, quorum majority, leader <none>" in text.out
    assert "host-m" in text.out and "no agent" in text.out
    assert "not placed yet" in text.out
    data = json.loads(pg("status", "-o", "json").out)
    assert [n["name"] for n in data["nodes"]] == ["host-m", "host-s", "witness"]
    assert data["groups"][0]["name"] == "pg" and data["groups"][0]["placed"] is None


def test_status_and_describe_say_what_protects_the_cluster(pg: Cli) -> None:
    # The spec asks for fencing through two IPMI devices: recovery waits for them.
    text = pg("status").out
    assert (
        "Protection: serving lease + lease enforcer (floating IPs, exec services); stopped by "
        "fencing: pg; fencing on (bmc-host-m, bmc-host-s)" in text
    )
    data = json.loads(pg("status", "-o", "json").out)["protection"]
    assert data["fencing"] == {"enabled": True, "devices": ["bmc-host-m", "bmc-host-s"]}
    assert data["agentOnly"] == {"pg": ["service-postgresql"]}
    described = pg("describe", "cluster", pg.cluster).out
    assert "Protection:\n  serving lease: a node that no majority hears stops" in described
    assert "  stopped by the agent, or by fencing its node: pg: service-postgresql" in described
    assert (
        "  fencing: a lost node's groups are recovered only after bmc-host-m, bmc-host-s "
        "powered it off and that was verified" in described
    )
    assert "on" in pg("get", "cluster").out.split()


def test_move_is_a_spec_change_that_expires(pg: Cli) -> None:
    before = json.loads(pg("get", "rg", "pg", "-o", "json").out)
    result = pg("move", "pg", "host-s", "--for", "1h")
    assert result.code == 0, result.err
    assert result.out.startswith("resourcegroup/pg moving to host-s until ")
    group = json.loads(pg("get", "rg", "pg", "-o", "json").out)
    move = group["spec"]["placement"]["moveTo"]
    until = datetime.fromisoformat(move["until"].replace("Z", "+00:00"))
    assert move["node"] == "host-s"
    assert 3500 < (until - datetime.now(UTC)).total_seconds() <= 3600
    assert group["metadata"]["generation"] == before["metadata"]["generation"] + 1
    bad = pg("move", "pg", "host-x")
    assert bad.code == 1 and "spec.placement.moveTo.node" in bad.err
    assert pg("move", "pg", "--clear").code == 0
    group = json.loads(pg("get", "rg", "pg", "-o", "json").out)
    assert "moveTo" not in group["spec"]["placement"]
    moves = json.loads(pg("events", "rg", "pg", "--reason", "Updated", "-o", "json").out)
    assert [e["source"]["component"] for e in moves] == ["ha", "ha"]
    assert all("by ha move" in e["message"] for e in moves)


def test_a_move_survives_applying_the_manifest_again(pg: Cli, tmp_path: Path) -> None:
    assert pg("move", "pg", "host-s", "--for", "1h").code == 0
    again = pg("apply", "-f", str(renamed(pg, PG_TODAY, tmp_path)))
    assert again.code == 0, again.err
    assert "resourcegroup/pg unchanged (kept: ha move to host-s until " in again.out
    group = json.loads(pg("get", "rg", "pg", "-o", "json").out)
    assert group["spec"]["placement"]["moveTo"]["node"] == "host-s"
    # Changing something else keeps it too, and says so.
    edited = renamed(pg, PG_TODAY, tmp_path).read_text().replace("stickiness: 100", "stickiness: 7")
    path = tmp_path / "edited.yaml"
    path.write_text(edited)
    out = pg("apply", "-f", str(path)).out
    assert "resourcegroup/pg configured (kept: ha move to host-s until " in out
    group = json.loads(pg("get", "rg", "pg", "-o", "json").out)
    assert group["spec"]["placement"]["stickiness"] == 7
    assert group["spec"]["placement"]["moveTo"]["node"] == "host-s"


def test_standby_and_unstandby(pg: Cli) -> None:
    assert pg("standby", "host-m").out.strip() == "node/host-m in standby"
    node = json.loads(pg("get", "node", "host-m", "-o", "json").out)
    assert node["spec"]["standby"] is True
    assert pg("unstandby", "host-m").code == 0
    node = json.loads(pg("get", "node", "host-m", "-o", "json").out)
    assert node["spec"]["standby"] is False
    unknown = pg("standby", "host-x")
    assert unknown.code == 1 and "not in Cluster" in unknown.err


def test_cleanup_forgets_failures(pg: Cli) -> None:
    async def record(*failures: FailureRecord) -> None:
        async with EtcdStore([pg.endpoint], pg.cluster) as store:
            for failure in failures:
                await store.put(keys.failure_key("pg", failure.node), failure.to_dict())

    now = time.time()
    asyncio.run(
        record(
            FailureRecord("pg", "host-m", 3, now - 30, "probe failed"),
            FailureRecord("pg", "host-s", 3, now - 30, "probe failed"),
        )
    )
    assert "host-m:3" in pg("status").out
    assert "  host-m: 3 (last " in pg("describe", "rg", "pg").out  # the same count as status
    assert pg("cleanup", "pg", "--node", "host-m").out.strip() == (
        "resourcegroup/pg: failures cleared (host-m)"
    )
    status = json.loads(pg("status", "-o", "json").out)
    assert status["groups"][0]["failures"] == {"host-s": 3}
    assert pg("cleanup", "pg").code == 0
    assert json.loads(pg("status", "-o", "json").out)["groups"][0]["failures"] == {}
    assert pg("cleanup", "nope").code == 5
    cleared = json.loads(
        pg("events", "--reason", "FailuresCleared", "--source", "ha", "-o", "json").out
    )
    assert [e["message"] for e in cleared] == [
        "failures on host-m cleared by ha cleanup",
        "failures on host-s cleared by ha cleanup",
    ]
    assert cleared[0]["involvedObject"] == {"kind": "ResourceGroup", "name": "pg"}
    unknown = pg("events", "--reason", "Cleared")
    assert unknown.code == 1 and "--reason: unknown reason 'Cleared'" in unknown.err


def test_expired_failures_are_not_shown_as_counting(pg: Cli) -> None:
    # failureTimeout is 10m: a failure 11 minutes old no longer counts for the migration
    # threshold, so neither status nor describe shows it.
    async def record() -> None:
        async with EtcdStore([pg.endpoint], pg.cluster) as store:
            old = FailureRecord("pg", "host-m", 3, time.time() - 660, "probe failed")
            await store.put(keys.failure_key("pg", "host-m"), old.to_dict())

    asyncio.run(record())
    assert json.loads(pg("status", "-o", "json").out)["groups"][0]["failures"] == {}
    assert "host-m:3" not in pg("status").out
    assert "Failures:\n  <none>" in pg("describe", "rg", "pg").out


def test_dry_run_shows_placement_changes(pg: Cli, tmp_path: Path) -> None:
    async def publish() -> None:
        async with EtcdStore([pg.endpoint], pg.cluster) as store:
            for node in ("host-m", "host-s"):
                await store.put(keys.status_key("Node", node), {"phase": "Ready"})
            record = PlacementRecord("pg", "host-m", 3, "best score")
            await store.put(keys.placement_key("pg"), record.to_dict())

    asyncio.run(publish())
    doc = json.loads(pg("get", "rg", "pg", "-o", "json").out)
    del doc["metadata"]["resourceVersion"], doc["status"]
    doc["spec"]["placement"]["nodes"] = [
        {"name": "host-m", "score": 10},
        {"name": "host-s", "score": 500},
    ]
    path = tmp_path / "rescore.json"
    path.write_text(json.dumps(doc))
    before = pg.revision()
    result = pg("apply", "-f", str(path), "--dry-run")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "resourcegroup/pg configured (dry run)"
    assert lines[1].startswith("placement: move pg host-m -> host-s")
    assert pg.revision() == before


def test_status_get_and_describe_show_a_volume_its_split_brain_and_outdate_record(
    pg: Cli,
) -> None:
    from controller.api.decode import decode
    from controller.api.manifest import load
    from controller.api.volume import ReplicaStatus, ReplicatedVolumeStatus
    from tests.paths import EXAMPLES

    # Written as an agent and blockrepl would: apply refuses volumes until nodes run them.
    [volume] = [decode(d.data) for d in load([str(EXAMPLES / "pg" / "03-volume.yaml")])]
    now = datetime.now(UTC)
    entries = [
        ReplicaStatus(
            node="host-m", role="Primary", disk_state="UpToDate", connection="StandAlone",
            split_brain=True, out_of_sync_bytes=3 << 20, observed_at=now,
        ),
        ReplicaStatus(
            node="host-s", role="Secondary", disk_state="UpToDate", connection="StandAlone",
            split_brain=True, observed_at=now,
        ),
    ]  # fmt: skip
    status = ReplicatedVolumeStatus(replicas=entries).model_dump(mode="json", by_alias=True)
    outdated = {"volume": "pgdata", "outdated": "host-s", "generation": "00000000000000AB",
                "by": "host-m", "since": "2026-12-05T12:00:00.000+00:00"}  # fmt: skip

    async def write() -> None:
        async with EtcdStore([pg.endpoint], pg.cluster) as store:
            await store.put(keys.spec_key("ReplicatedVolume", "pgdata"), volume.to_dict())
            await store.put(keys.status_key("ReplicatedVolume", "pgdata"), status)
            await store.put(keys.volume_outdate_key("pgdata"), outdated)

    asyncio.run(write())
    socket = "/run/vigil/volumes/pgdata/control.sock"
    text = pg("status").out
    assert "\nVolumes:\n" in text
    [row] = [line for line in text.splitlines() if line.startswith("pgdata ")]
    assert "host-m Primary/UpToDate StandAlone" in row and row.endswith("SPLIT BRAIN")
    assert "host-s Secondary/UpToDate StandAlone OUTDATED(record)" in row
    assert f"on host-s: blockrepl resolve --discard-mine --control {socket}" in text
    assert f"then on host-m: blockrepl resolve --connect --control {socket}" in text
    data = json.loads(pg("status", "-o", "json").out)["volumes"][0]
    assert data["splitBrain"] and data["outdateRecord"]["outdated"] == "host-s"
    got = pg("get", "vol").out.splitlines()
    assert got[0].split() == ["NAME", "REPLICAS", "ROLE", "DISK", "CONNECTION", "SYNC", "AGE"]
    assert "host-m:Primary,host-s:Secondary" in got[1] and "SPLIT BRAIN" in got[1]
    described = pg("describe", "vol", "pgdata").out
    assert "  host-s: no: Outdated since generation 00000000000000AB (record by host-m)" in (
        described
    )
    assert f"on host-s: blockrepl resolve --discard-mine --control {socket}" in described
