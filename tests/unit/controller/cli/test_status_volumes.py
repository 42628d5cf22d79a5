"""`ha status`, `ha get vol` and `ha describe vol` show each replicated volume: roles, disks,
connection, resync, stale entries, outdate records, and a split brain with its commands."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from controller.api.cluster import Cluster
from controller.api.decode import decode
from controller.api.group import ResourceGroup
from controller.api.manifest import load
from controller.api.node import NodeStatus
from controller.api.volume import (
    ReplicaStatus,
    ReplicatedVolume,
    ReplicatedVolumeStatus,
    SyncProgress,
)
from controller.cli.output import object_rows
from controller.cli.status_view import render, to_json
from controller.status.volume_text import control_socket, human_bytes, human_seconds
from controller.store.outdate_record import OutdateRecord
from controller.store.records import NodeRecord, PlacementRecord
from controller.store.view import ClusterView
from nodeagent.actuators import volume_paths
from tests.paths import EXAMPLES

NOW = 1_800_000_000.0
SOCKET = "/run/vigil/volumes/pgdata/control.sock"


def at(seconds_ago: float) -> datetime:
    return datetime.fromtimestamp(NOW - seconds_ago, UTC)


PRIMARY = ReplicaStatus(
    node="host-m", role="Primary", disk_state="UpToDate", connection="Connected",
    peer_role="Secondary", observed_at=at(1),
)  # fmt: skip
SECONDARY = ReplicaStatus(
    node="host-s", role="Secondary", disk_state="UpToDate", connection="Connected",
    peer_role="Primary", observed_at=at(1),
)  # fmt: skip


def view(*entries: ReplicaStatus, **changes: object) -> ClusterView:
    items = [decode(d.data) for d in load([str(EXAMPLES / "pg")])]
    base = ClusterView(
        cluster=next(o for o in items if isinstance(o, Cluster)),
        groups={o.name: o for o in items if isinstance(o, ResourceGroup)},
        volumes={o.name: o for o in items if isinstance(o, ReplicatedVolume)},
        placements={"pg": PlacementRecord("pg", "host-m", 3, "best score")},
        agents={n: NodeRecord(n, 1, "v", "i", "s", True) for n in ("host-m", "host-s")},
        node_status={n: NodeStatus(phase="Ready") for n in ("host-m", "host-s")},
        volume_status={"pgdata": ReplicatedVolumeStatus(replicas=list(entries))},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def volume_line(text: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith("pgdata ")]
    return line


def test_the_socket_path_is_the_node_agents() -> None:
    # The control plane may not import the node agent: the path is written twice.
    assert control_socket("pgdata") == SOCKET
    assert str(volume_paths.control_socket(Path("/run/vigil"), "pgdata")) == SOCKET


def test_a_healthy_volume_is_one_line() -> None:
    text = render("c", view(PRIMARY, SECONDARY), NOW)
    assert "\nVolumes:\n" in text
    line = volume_line(text)
    assert "host-m Primary/UpToDate Connected, host-s Secondary/UpToDate Connected" in line
    assert line.endswith("in sync")
    assert "SPLIT BRAIN" not in text and "stale" not in text


def test_no_volume_no_section() -> None:
    assert "Volumes:" not in render("c", view(volumes={}), NOW)


def test_a_resync_shows_direction_progress_rate_and_eta() -> None:
    sync = SyncProgress(
        direction="SyncSource", done_bytes=42 << 30, total_bytes=100 << 30, percent=42.0,
        rate=180 << 20, eta_seconds=330,
    )  # fmt: skip
    source = PRIMARY.model_copy(
        update={"connection": "SyncSource", "sync": sync, "out_of_sync_bytes": 58 << 30}
    )
    target = SECONDARY.model_copy(
        update={
            "disk_state": "Inconsistent", "connection": "SyncTarget",
            "sync": sync.model_copy(update={"direction": "SyncTarget", "rate": None}),
        }
    )  # fmt: skip
    line = volume_line(render("c", view(target, source), NOW))
    assert "host-s Secondary/Inconsistent SyncTarget" in line
    assert "58.0 GiB" in line
    assert line.endswith("host-m->host-s 42.0% at 180.0 MiB/s, ETA 5m30s")
    assert human_bytes(512) == "512 B" and human_seconds(7500) == "2h05m"


def test_a_stale_entry_of_a_node_without_agent_is_shown_as_such() -> None:
    old = PRIMARY.model_copy(update={"observed_at": at(95)})
    lost = view(
        old, SECONDARY,
        agents={"host-s": NodeRecord("host-s", 1, "v", "i", "s", True)},
        node_status={"host-m": NodeStatus(phase="Lost"), "host-s": NodeStatus(phase="Ready")},
    )  # fmt: skip
    line = volume_line(render("c", lost, NOW))
    assert "host-m Primary/UpToDate Connected (stale: 1m35s old, no agent)" in line
    # An old entry of a node whose agent runs is not stale: entries are written on change.
    assert "stale" not in volume_line(render("c", view(old, SECONDARY), NOW))
    replicas = to_json("c", lost, NOW)["volumes"][0]["replicas"]
    assert [r["stale"] for r in replicas] == [True, False]


def test_a_split_brain_says_so_with_the_exact_commands() -> None:
    split_m = PRIMARY.model_copy(update={"connection": "StandAlone", "split_brain": True})
    split_s = SECONDARY.model_copy(update={"connection": "StandAlone", "split_brain": True})
    text = render("c", view(split_m, split_s), NOW)
    assert volume_line(text).endswith("SPLIT BRAIN")
    assert (
        "  SPLIT BRAIN on volume pgdata: both replicas changed apart and nothing is resynced "
        "until you choose whose changes to discard.\n"
        "    to keep host-m's data (Primary, pg placed there), discarding host-s's changes:\n"
        f"      on host-s: blockrepl resolve --discard-mine --control {SOCKET}\n"
        f"      then on host-m: blockrepl resolve --connect --control {SOCKET}\n"
    ) in text
    # Neither side Primary and no group there: both choices are offered.
    idle = view(split_m.model_copy(update={"role": "Secondary"}), split_s, placements={})
    text = render("c", idle, NOW)
    assert "to keep host-m's data, discarding host-s's changes:" in text
    assert "to keep host-s's data, discarding host-m's changes:" in text
    assert to_json("c", idle, NOW)["volumes"][0]["splitBrain"] is True


def test_an_outdate_record_and_a_last_error_are_spelled_out() -> None:
    record = OutdateRecord("pgdata", "host-s", "00000000000000AB", "host-m", "t0")
    failing = SECONDARY.model_copy(
        update={"connection": "Connecting", "last_error": "connect to host-m: refused"}
    )
    text = render("c", view(PRIMARY, failing, outdate_records={"pgdata": record}), NOW)
    assert "host-s Secondary/UpToDate Connecting OUTDATED(record)" in volume_line(text)
    assert (
        "  pgdata: host-s Outdated since generation 00000000000000AB (record by host-m): not "
        "promoted until it resyncs from host-m\n"
    ) in text
    assert "  pgdata on host-s: last error: connect to host-m: refused\n" in text
    [_, replica_s] = to_json("c", view(PRIMARY, failing, outdate_records={"pgdata": record}),
                             NOW)["volumes"][0]["replicas"]  # fmt: skip
    assert replica_s["outdated"] and not replica_s["promotable"]
    assert replica_s["notPromotableBecause"].startswith("Outdated since generation")


def test_a_group_held_for_want_of_an_up_to_date_replica_says_so() -> None:
    reason = (
        "not placed: no eligible node (host-m: lost; host-s: no UpToDate replica of pgdata: "
        "Outdated since generation 00000000000000AB (record by host-m))"
    )
    held = view(PRIMARY, SECONDARY, placements={"pg": PlacementRecord("pg", None, 4, reason)})
    [row] = [line for line in render("c", held, NOW).splitlines() if line.startswith("pg ")]
    assert row.endswith(reason)


def test_get_vol_columns() -> None:
    volume = view().volumes["pgdata"]
    sync = SyncProgress(direction="SyncTarget", done_bytes=1, total_bytes=4, percent=25.0)
    target = SECONDARY.model_copy(
        update={"disk_state": "Inconsistent", "connection": "SyncTarget", "sync": sync}
    )
    source = PRIMARY.model_copy(update={"connection": "SyncSource"})
    synced = volume.model_copy(update={"status": ReplicatedVolumeStatus(replicas=[source, target])})
    header, [row] = object_rows([synced], wide=False)
    cells = dict(zip(header, row, strict=True))
    assert cells["ROLE"] == "host-m:Primary,host-s:Secondary"
    assert cells["DISK"] == "host-m:UpToDate,host-s:Inconsistent"
    assert cells["CONNECTION"] == "host-m:SyncSource,host-s:SyncTarget"
    assert cells["SYNC"] == "host-m->host-s 25.0%"
    healthy = volume.model_copy(
        update={"status": ReplicatedVolumeStatus(replicas=[PRIMARY, SECONDARY])}
    )
    header, [row] = object_rows([healthy], wide=True)
    cells = dict(zip(header, row, strict=True))
    assert (cells["CONNECTION"], cells["SYNC"], cells["PROTOCOL"]) == ("Connected", "in sync", "C")
    header, [row] = object_rows([volume], wide=False)
    assert dict(zip(header, row, strict=True))["ROLE"] == "<none>"


def test_describe_vol_shows_each_replica_whether_it_may_be_promoted_and_the_record() -> None:
    from controller.cli.status_volumes import describe_lines

    record = OutdateRecord("pgdata", "host-s", "00000000000000AB", "host-m", "t0", "t1")
    old = PRIMARY.model_copy(update={"observed_at": at(95), "connection": "Connecting"})
    lost = view(
        old, SECONDARY.model_copy(update={"connection": "Connecting", "peer_role": None}),
        agents={"host-s": NodeRecord("host-s", 1, "v", "i", "s", True)},
        outdate_records={"pgdata": record},
    )  # fmt: skip
    text = "\n".join(describe_lines(lost, "pgdata", NOW))
    assert (
        "  host-m: Primary, disk UpToDate, Connecting (peer Secondary), out of sync 0 B, "
        "reported 1m35s ago, STALE (1m35s old, its agent is not connected)"
    ) in text
    assert "  host-m: yes (Primary where pg is placed)" in text
    assert "  host-s: no: Outdated since generation 00000000000000AB (record by host-m)" in text
    assert "  since t0, updated t1" in text
    split = view(
        PRIMARY.model_copy(update={"split_brain": True, "connection": "StandAlone"}), SECONDARY
    )
    text = "\n".join(describe_lines(split, "pgdata", NOW))
    assert "Split brain:" in text and "on host-s: blockrepl resolve --discard-mine" in text
    assert describe_lines(split, "nothing", NOW) == []
