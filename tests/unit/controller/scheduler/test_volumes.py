"""A group that uses a replicated volume runs only where the volume's data may be promoted
(scheduler/volumes.py; the rule is docs/safety.md's "Replicated volumes")."""

from __future__ import annotations

from controller.scheduler import DecisionStatus, ReplicaReport, VolumeFacts, schedule
from controller.scheduler.volumes import data_verdict
from tests.unit.controller.scheduler.clusters import NOW, cluster, pg

GEN = "Outdated since generation 00000000000000AB (record by host-m)"
PRIMARY = ReplicaReport("host-m", "Primary", "UpToDate", "Connected")
SECONDARY = ReplicaReport("host-s", "Secondary", "UpToDate", "Connected")


def pgdata(*reports: ReplicaReport, outdated: tuple[str, ...] = ()) -> dict[str, VolumeFacts]:
    note = GEN if outdated else ""
    return {"pgdata": VolumeFacts("pgdata", ("host-m", "host-s"), reports, outdated, note)}


def test_power_loss_of_the_primary_moves_the_group_to_the_connected_up_to_date_secondary() -> None:
    # host-m lost power: its last report (Primary, Connected) is stale and stays so; the
    # Secondary was Connected and UpToDate at its last report (or says Connecting now).
    for survivor in (SECONDARY, ReplicaReport("host-s", "Secondary", "UpToDate", "Connecting")):
        result = schedule(
            [pg(volumes=("pgdata",))],
            cluster("host-m", "host-s", dead=("host-m",)),
            current={"pg": "host-m"},
            now=NOW,
            volumes=pgdata(PRIMARY, survivor),
        )
        assert result["pg"].runs_on == "host-s", result["pg"].reason
        assert result["pg"].reason == "moved to host-s: host-m is lost (no majority hears it)"


def test_an_outdate_record_keeps_the_group_off_that_replica_and_says_why() -> None:
    result = schedule(
        [pg(volumes=("pgdata",))],
        cluster("host-m", "host-s", dead=("host-m",)),
        current={"pg": "host-m"},
        now=NOW,
        volumes=pgdata(PRIMARY, SECONDARY, outdated=("host-s",)),
    )
    assert result["pg"].status is DecisionStatus.UNPLACED
    assert result["pg"].reason == (
        f"not placed: no eligible node (host-m: lost; host-s: no UpToDate replica of pgdata: {GEN})"
    )


def test_an_inconsistent_sync_target_is_not_promoted() -> None:
    target = ReplicaReport("host-s", "Secondary", "Inconsistent", "SyncTarget", "SyncTarget")
    source = ReplicaReport("host-m", "Primary", "UpToDate", "SyncSource", "SyncSource")
    facts = pgdata(source, target)["pgdata"]
    assert data_verdict(facts, "host-s", False) == "Inconsistent (resync as SyncTarget under way)"
    assert data_verdict(facts, "host-m", False) is None
    result = schedule(
        [pg(volumes=("pgdata",))],
        cluster("host-m", "host-s", dead=("host-m",)),
        current={"pg": "host-m"},
        now=NOW,
        volumes={"pgdata": facts},
    )
    assert result["pg"].reason.endswith(
        "host-s: no UpToDate replica of pgdata: Inconsistent (resync as SyncTarget under way))"
    )


def test_other_disk_states_are_not_promoted() -> None:
    for disk in ("Outdated", "Inconsistent", "Diskless", "Consistent"):
        facts = pgdata(ReplicaReport("host-s", "Secondary", disk, "StandAlone"))["pgdata"]
        why = data_verdict(facts, "host-s", False)
        assert why is not None and why.startswith(f"disk {disk}")


def test_split_brain_promotes_neither_replica_but_keeps_the_primary_where_it_runs() -> None:
    split_m = ReplicaReport("host-m", "Primary", "UpToDate", "StandAlone", split_brain=True)
    split_s = ReplicaReport("host-s", "Secondary", "UpToDate", "StandAlone", split_brain=True)
    facts = pgdata(split_m, split_s)["pgdata"]
    assert data_verdict(facts, "host-s", False) == (
        "split brain: both replicas changed apart; resolve it first (ha status says how)"
    )
    # One side reporting it is enough.
    assert data_verdict(pgdata(split_m, SECONDARY)["pgdata"], "host-s", False) is not None
    stays = schedule(
        [pg(volumes=("pgdata",))],
        cluster("host-m", "host-s"),
        current={"pg": "host-m"},
        now=NOW,
        volumes={"pgdata": facts},
    )
    assert stays["pg"].runs_on == "host-m"
    held = schedule(
        [pg(volumes=("pgdata",))],
        cluster("host-m", "host-s", dead=("host-m",)),
        current={"pg": "host-m"},
        now=NOW,
        volumes={"pgdata": facts},
    )
    assert held["pg"].runs_on is None and "split brain" in held["pg"].reason


def test_a_stale_report_still_counts_a_primary_that_wrote_alone_was_ahead() -> None:
    # host-m lost host-s, could not write the outdate record (store unreachable) and went
    # on writing; its last report says so. host-s believes it is UpToDate: it is not.
    alone = ReplicaReport("host-m", "Primary", "UpToDate", "Connecting")
    believer = ReplicaReport("host-s", "Secondary", "UpToDate", "Connecting")
    facts = pgdata(alone, believer)["pgdata"]
    assert data_verdict(facts, "host-s", False) == (
        "host-m was Primary without it (Connecting) at its last report, so host-m has writes "
        "it lacks"
    )
    result = schedule(
        [pg(volumes=("pgdata",))],
        cluster("host-m", "host-s", dead=("host-m",)),
        current={"pg": "host-m"},
        now=NOW,
        volumes={"pgdata": facts},
    )
    assert result["pg"].runs_on is None


def test_an_unknown_or_unreported_replica_is_promoted_only_if_its_peer_was_not_ahead() -> None:
    unknown = ReplicaReport("host-s")
    assert data_verdict(pgdata(PRIMARY, unknown)["pgdata"], "host-s", False) is None
    assert data_verdict(pgdata(PRIMARY)["pgdata"], "host-s", False) is None  # never reported
    assert data_verdict(pgdata()["pgdata"], "host-s", False) is None  # new volume
    alone = ReplicaReport("host-m", "Primary", "UpToDate", "StandAlone")
    why = data_verdict(pgdata(alone, unknown)["pgdata"], "host-s", False)
    assert why is not None and why.startswith("state unknown; host-m was Primary without it")
    syncing = ReplicaReport("host-m", "Secondary", "UpToDate", "SyncSource", "SyncSource")
    why = data_verdict(pgdata(syncing)["pgdata"], "host-s", False)
    assert why == "state unknown; host-m was resyncing it (SyncSource) at its last report"


def test_the_primary_where_the_group_runs_stays_eligible() -> None:
    # It is not promoted, it is the writer; a Diskless Primary serves through its peer.
    diskless = ReplicaReport("host-m", "Primary", "Diskless", "Connected")
    facts = pgdata(diskless, SECONDARY)["pgdata"]
    assert data_verdict(facts, "host-m", True) is None
    assert data_verdict(facts, "host-m", False) == "disk Diskless"


def test_a_node_without_a_replica_and_a_missing_volume() -> None:
    nodes = cluster("host-m", "host-s", "host-w")
    loose = pg(volumes=("pgdata",), restricted=False)
    result = schedule([loose], nodes, now=NOW, volumes=pgdata(PRIMARY, SECONDARY))
    assert result["pg"].runs_on == "host-m"
    result = schedule([loose], cluster("host-w"), now=NOW, volumes=pgdata())
    assert result["pg"].reason == "not placed: no eligible node (host-w: no replica of pgdata)"
    result = schedule([loose], cluster("host-m"), now=NOW)
    assert result["pg"].reason == (
        "not placed: no eligible node (host-m: no replica of pgdata (it does not exist))"
    )


def test_a_group_without_volumes_ignores_them() -> None:
    result = schedule([pg()], cluster("host-m", "host-s"), now=NOW, volumes=pgdata())
    assert result["pg"].runs_on == "host-m"
