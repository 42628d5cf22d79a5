"""The controller's reader of blockrepl's outdate records agrees with blockrepl's own."""

from __future__ import annotations

from blockrepl.outdate import OutdateRecord as BlockreplRecord
from controller.store.outdate_record import OutdateRecord


def test_it_reads_what_blockrepl_writes() -> None:
    written = BlockreplRecord("pgdata", "n2", 0xAB12, "n1", "t0", "t1").encode()
    record = OutdateRecord.from_dict("pgdata", written)
    assert (record.outdated, record.by, record.generation) == ("n2", "n1", "000000000000AB12")
    assert (record.since, record.updated, record.problem) == ("t0", "t1", "")
    assert record.names("n2") and not record.names("n1")
    assert record.describe() == "Outdated since generation 000000000000AB12 (record by n1)"


def test_an_unreadable_record_counts_against_every_replica_and_says_why() -> None:
    record = OutdateRecord.from_dict("pgdata", {"by": "n1", "generation": "zz"})
    assert record.problem == "no replica named in 'outdated'"
    assert record.names("n1") and record.names("n2")
    assert record.describe().startswith("outdate record unreadable")
    bad_generation = OutdateRecord.from_dict(
        "pgdata", {"outdated": "n2", "by": "n1", "generation": "zz"}
    )
    assert bad_generation.problem == "generation 'zz' is not hexadecimal"
    assert bad_generation.names("n2") and not bad_generation.names("n1")
