"""StoreOutdater / HandlerOutdater semantics on the in-memory store twin and real shell handlers."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

import pytest

from blockrepl.generation import Generation
from blockrepl.outdate import (
    CAS_ATTEMPTS,
    FencePeerCode,
    HandlerOutdater,
    OutdateRecord,
    StoreOutdater,
    decode_record,
    has_generation,
    next_record,
)
from blockrepl.replication.outdate_cli import OutdateConfigError, config_from_args
from controller.store.errors import StoreError
from controller.store.keys import volume_outdate_key
from controller.store.memory import MemoryStore

KEY = volume_outdate_key("pg")
G1 = 0xAAAA_0000_0000_1001  # role bit set: a Primary's current UUID
G2 = 0xBBBB_0000_0000_2001


async def test_outdate_creates_record_and_blocks_promotion(memory_store: MemoryStore) -> None:
    a, b = StoreOutdater(memory_store, "a"), StoreOutdater(memory_store, "b")
    res = await a.outdate_peer("pg", "b", G1)
    assert res.code is FencePeerCode.OUTDATED and res.peer_safe
    kv = await memory_store.get(KEY)
    assert kv is not None
    assert kv.value["outdated"] == "b" and kv.value["by"] == "a"
    assert kv.value["generation"] == f"{G1:016X}" and kv.value["volume"] == "pg"
    # B still holds the old generation: refused, with who/when/which generation and the fix.
    old = Generation(current=0x1234_0000_0000_0000, history1=0x5550)
    why = await b.may_promote("pg", "b", old)
    assert why is not None and why.outdated
    text = str(why)
    assert "'b'" in text and "'a'" in text and f"{G1:016X}" in text
    assert kv.value["since"] in text and "--force" in text and f"revision {kv.mod_revision}" in text
    # The writer itself is not named: it may (stay) Primary.
    assert await a.may_promote("pg", "a", Generation(current=G1)) is None


async def test_repeat_outdate_moves_to_newest_generation(memory_store: MemoryStore) -> None:
    a = StoreOutdater(memory_store, "a")
    await a.outdate_peer("pg", "b", G1)
    first = await memory_store.get(KEY)
    assert first is not None
    again = await a.outdate_peer("pg", "b", G1)
    assert again.code is FencePeerCode.OUTDATED and "already" in again.detail
    same = await memory_store.get(KEY)
    assert same is not None and same.mod_revision == first.mod_revision  # no write at all
    await a.outdate_peer("pg", "b", G2)
    newer = await memory_store.get(KEY)
    assert newer is not None and newer.mod_revision > first.mod_revision
    assert newer.value["generation"] == f"{G2:016X}"
    assert newer.value["since"] == first.value["since"]  # outdated since the first loss


async def test_record_naming_me_is_refused_not_overwritten(memory_store: MemoryStore) -> None:
    b = StoreOutdater(memory_store, "b")
    await b.outdate_peer("pg", "a", G1)  # b became Primary and outdated a
    before = await memory_store.get(KEY)
    res = await StoreOutdater(memory_store, "a").outdate_peer("pg", "b", G2)
    assert res.code is FencePeerCode.PEER_PRIMARY and not res.peer_safe
    assert "split brain" in res.detail
    after = await memory_store.get(KEY)
    assert after == before


class RacingStore(MemoryStore):
    """Another writer changes the key between our read and our compare-and-swap."""

    def __init__(self, cluster: str, races: int, value: dict[str, Any]) -> None:
        super().__init__(cluster)
        self.races = races
        self.value = value

    async def get(self, key: str) -> Any:
        kv = await super().get(key)
        if self.races > 0:
            self.races -= 1
            await super().put(key, self.value)  # lands after our read
        return kv


def _record(outdated: str, by: str, gen: int) -> dict[str, Any]:
    return OutdateRecord("pg", outdated, gen, by, "t0", "t0").encode()


async def test_cas_conflict_rereads_and_decides_again() -> None:
    # The racer writes "c outdated by z"; a re-reads and replaces it with "b outdated by a".
    store = RacingStore(f"t-{uuid.uuid4().hex[:8]}", 2, _record("c", "z", G1))
    res = await StoreOutdater(store, "a").outdate_peer("pg", "b", G2)
    assert res.code is FencePeerCode.OUTDATED
    kv = await store.get(KEY)
    assert kv is not None and kv.value["outdated"] == "b" and kv.value["by"] == "a"
    assert store.races == 0


async def test_cas_conflict_that_names_me_turns_into_refusal() -> None:
    # While a was deciding, b promoted itself and outdated a: a must not overwrite that.
    store = RacingStore(f"t-{uuid.uuid4().hex[:8]}", 1, _record("a", "b", G1))
    res = await StoreOutdater(store, "a").outdate_peer("pg", "b", G2)
    assert res.code is FencePeerCode.PEER_PRIMARY
    kv = await store.get(KEY)
    assert kv is not None and kv.value["outdated"] == "a"


async def test_endless_cas_conflicts_fail_after_bounded_retries() -> None:
    store = RacingStore(f"t-{uuid.uuid4().hex[:8]}", 100, _record("c", "z", G1))
    res = await StoreOutdater(store, "a").outdate_peer("pg", "b", G2)
    assert res.code is FencePeerCode.FAILED and f"{CAS_ATTEMPTS} compare-and-swap" in res.detail
    assert store.races == 100 - CAS_ATTEMPTS


async def test_store_unavailable(memory_store: MemoryStore) -> None:
    a, b = StoreOutdater(memory_store, "a"), StoreOutdater(memory_store, "b")
    memory_store.set_available(False)
    res = await a.outdate_peer("pg", "b", G1)
    assert res.code is FencePeerCode.FAILED and not res.peer_safe
    assert "NOT outdated" in res.detail and "simulated outage" in res.detail
    why = await b.may_promote("pg", "b", Generation(current=G1))
    assert why is not None and not why.outdated and "cannot read" in str(why)
    with pytest.raises(StoreError):
        await b.clear("pg", "b")
    memory_store.set_available(True)
    assert await memory_store.get(KEY) is None


async def test_clear_only_by_the_outdated_replica(memory_store: MemoryStore) -> None:
    a, b = StoreOutdater(memory_store, "a"), StoreOutdater(memory_store, "b")
    await a.outdate_peer("pg", "b", G1)
    assert await a.clear("pg", "a") is False  # the record does not name a
    assert await memory_store.get(KEY) is not None
    assert await b.clear("pg", "b") is True
    assert await memory_store.get(KEY) is None
    assert await b.clear("pg", "b") is False  # nothing left


async def test_clear_retries_after_concurrent_update() -> None:
    # A re-outdates b (newer generation) between b's read and b's delete: b re-reads.
    store = RacingStore(f"t-{uuid.uuid4().hex[:8]}", 0, {})
    await StoreOutdater(store, "a").outdate_peer("pg", "b", G1)
    store.races, store.value = 1, _record("b", "a", G2)
    assert await StoreOutdater(store, "b").clear("pg", "b") is True
    assert await store.get(KEY) is None


async def test_resynced_replica_may_promote_and_stale_record_goes(
    memory_store: MemoryStore,
) -> None:
    await StoreOutdater(memory_store, "a").outdate_peer("pg", "b", G1)
    # After the resync b adopted a's tuple (role bit differs: compare masked).
    resynced = Generation(current=G1 & ~1, history1=0x77)
    assert await StoreOutdater(memory_store, "b").may_promote("pg", "b", resynced) is None
    assert await memory_store.get(KEY) is None


async def test_malformed_record_is_named(memory_store: MemoryStore) -> None:
    await memory_store.put(KEY, {"outdated": "b"})
    res = await StoreOutdater(memory_store, "a").outdate_peer("pg", "b", G1)
    assert res.code is FencePeerCode.FAILED and KEY in res.detail and "malformed" in res.detail
    with pytest.raises(StoreError, match="delete it"):
        decode_record(KEY, {"outdated": "b", "generation": "zz"})


def test_pure_rules() -> None:
    assert has_generation(Generation(current=G1 & ~1), G1)
    assert has_generation(Generation(current=5, history2=G1), G1)
    assert not has_generation(Generation(current=5, bitmap=G1), G1)  # tracking, not holding
    assert not has_generation(Generation(current=0), 0)
    assert next_record(None, "pg", "b", "a", G1, "t") == OutdateRecord("pg", "b", G1, "a", "t", "t")
    mine = OutdateRecord("pg", "a", G1, "b", "t", "t")
    assert next_record(mine, "pg", "b", "a", G2, "u") is None
    other = OutdateRecord("pg", "c", G1, "z", "t", "t")
    assert next_record(other, "pg", "b", "a", G2, "u") == OutdateRecord(
        "pg", "b", G2, "a", "u", "u"
    )


# ---------------------------------------------------------------------- handler outdater
def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fence.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("rc", "code"),
    [
        (3, FencePeerCode.INCONSISTENT),
        (4, FencePeerCode.OUTDATED),
        (5, FencePeerCode.UNREACHABLE),
        (6, FencePeerCode.PEER_PRIMARY),
        (7, FencePeerCode.FENCED),
        (0, FencePeerCode.FAILED),
        (42, FencePeerCode.FAILED),
    ],
)
async def test_handler_exit_codes(tmp_path: Path, rc: int, code: FencePeerCode) -> None:
    out = tmp_path / "env"
    cmd = _script(
        tmp_path,
        f'echo "$BLOCKREPL_VOLUME $BLOCKREPL_PEER $BLOCKREPL_REPLICA $BLOCKREPL_GENERATION '
        f'$DRBD_RESOURCE $DRBD_PEER $BLOCKREPL_PEER_ADDRESS" > {out}\necho said-{rc}\nexit {rc}\n',
    )
    outdater = HandlerOutdater(cmd, "a", peer_address="10.0.0.2:7788")
    res = await outdater.outdate_peer("pg", "b", G1)
    assert res.code is code
    assert f"said-{rc}" in res.detail
    assert out.read_text().split() == ["pg", "b", "a", f"{G1:016X}", "pg", "b", "10.0.0.2:7788"]
    if code is FencePeerCode.FAILED:
        assert "broken" in res.detail and str(rc) in res.detail
    assert await outdater.may_promote("pg", "b", Generation()) is None


async def test_handler_timeout_and_unfence(tmp_path: Path) -> None:
    slow = HandlerOutdater("sleep 5", "a", timeout=0.2)
    res = await slow.outdate_peer("pg", "b", G1)
    assert res.code is FencePeerCode.FAILED and "killed after 0.2s" in res.detail
    mark = tmp_path / "unfenced"
    outdater = HandlerOutdater("exit 4", "b", unfence_command=f"echo $BLOCKREPL_PEER > {mark}")
    assert await outdater.clear("pg", "b") is True
    assert mark.read_text().strip() == "b"
    assert await HandlerOutdater("exit 4", "b").clear("pg", "b") is False


# ---------------------------------------------------------------------- options
def _args(**kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = {
        "outdate_peer": None,
        "fence_peer_handler": None,
        "store_endpoints": None,
        "store_config": None,
        "peer_id": None,
    }
    return argparse.Namespace(**{**base, **kw})


def test_outdate_peer_options() -> None:
    assert config_from_args(_args()) == {"outdate_peer": "dont-care", "peer_id": ""}
    got = config_from_args(_args(fence_peer_handler="x", peer_id="b"))
    assert got == {"outdate_peer": "resource-only", "peer_id": "b"}
    assert config_from_args(
        _args(store_endpoints="http://h:1", outdate_peer="dont-care", peer_id="")
    )["outdate_peer"] == ("dont-care")
    with pytest.raises(OutdateConfigError, match="needs an outdater"):
        config_from_args(_args(outdate_peer="resource-only", peer_id="b"))
    with pytest.raises(OutdateConfigError, match="--peer-id"):
        config_from_args(_args(store_endpoints="http://h:1"))
    with pytest.raises(OutdateConfigError, match="choose one"):
        config_from_args(_args(store_endpoints="http://h:1", fence_peer_handler="x", peer_id="b"))
