"""Outdating the peer: a Primary that loses its peer marks it Outdated first.

DRBD calls this resource-level fencing (``fencing resource-only``); in Vigil "fencing"
means powering a node off (STONITH) only. When a Primary loses the replication link it
marks the peer's *disk* Outdated (the machine is left alone) before it acknowledges
further writes, so the peer, which now misses those writes, can never be promoted by
accident. Two outdaters:

``HandlerOutdater``
    Runs a DRBD-style fence-peer handler (``--fence-peer-handler CMD``) through
    ``/bin/sh -c``. Environment: ``BLOCKREPL_VOLUME``, ``BLOCKREPL_PEER`` (the peer's
    replica id), ``BLOCKREPL_REPLICA`` (this replica), ``BLOCKREPL_GENERATION`` (hex
    current UUID the peer misses), ``BLOCKREPL_PEER_ADDRESS``, and DRBD's own
    ``DRBD_RESOURCE`` / ``DRBD_PEER`` / ``DRBD_PEERS`` so existing crm-fence-peer-style
    scripts keep working. Exit codes as DRBD documents: 3 peer Inconsistent, 4 peer
    Outdated, 5 peer unreachable (assumed down), 6 peer is Primary (refused), 7 peer fenced
    by STONITH; anything else, a timeout or a crash means the handler is broken. A handler
    typically reaches the peer another way and runs ``blockrepl outdate`` there, which
    clears the peer's WAS_UP_TO_DATE metadata flag (its disk shows Outdated and refuses
    promotion without ``--force``). ``may_promote`` therefore has nothing to add to that
    local flag and always allows; ``clear`` runs the optional unfence-peer handler.

``StoreOutdater``
    Keeps one record per volume in Vigil's store at ``volumes/<volume>/outdated``::

        {"volume": V, "outdated": X, "generation": "<16 hex>", "by": Y,
         "since": ISO-8601, "updated": ISO-8601}

    read "replica X is Outdated: it missed the writes of generation G (Y's current UUID
    when Y lost X); written by Y". Semantics:

    * ``outdate_peer`` creates the record if absent (CAS ``expect_revision=0``) or updates
      it with CAS on the key's mod_revision, retrying on a lost race. A record that already
      names the peer is moved to the newest generation (``since`` kept). A record that names
      *this* replica means the peer was promoted while we were cut off: the answer is
      ``PEER_PRIMARY`` (DRBD exit 6) and the record is left alone.
    * ``may_promote`` refuses when the record names the caller and the caller's GI tuple
      does not contain the recorded generation (current or history, role bit masked): it
      has not resynced from the writer. A replica that holds that generation is allowed
      (and the stale record is removed). If the store cannot be read the answer is a
      refusal too: never promote what may be Outdated; ``--force`` overrides.
    * ``clear`` deletes the record, with CAS, only if it names the caller. The outdated
      replica calls it when a resync as SyncTarget from the writer has completed (its
      data is UpToDate again), and a forced promotion calls it (the operator chose).
    * Store unreachable while outdating the peer (resource-only): the result is ``FAILED``; the
      Primary goes on acknowledging writes, as DRBD does for resource-only, and its status
      says the peer was *not* outdated. (resource-and-stonith would freeze I/O instead;
      it is not implemented.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Protocol

from blockrepl.errors import BlockReplError
from blockrepl.generation import Generation
from controller.store.base import Store
from controller.store.errors import ConflictError, StoreError
from controller.store.keys import volume_outdate_key

OUTDATE_PEER_MODES = ("dont-care", "resource-only")
CAS_ATTEMPTS = 5
_MASK = ~1


class OutdateError(BlockReplError):
    """A fencing step failed (unfence handler, lost CAS races)."""


class FencePeerCode(IntEnum):
    """DRBD fence-peer handler exit codes, plus FAILED (handler broken, store down)."""

    FAILED = 1
    INCONSISTENT = 3
    OUTDATED = 4
    UNREACHABLE = 5
    PEER_PRIMARY = 6
    FENCED = 7


@dataclass(frozen=True)
class OutdateResult:
    code: FencePeerCode
    detail: str

    @property
    def peer_safe(self) -> bool:
        """The peer cannot be promoted with stale data (Inconsistent, Outdated, node fenced)."""
        return self.code in (
            FencePeerCode.INCONSISTENT,
            FencePeerCode.OUTDATED,
            FencePeerCode.FENCED,
        )


@dataclass(frozen=True)
class Refusal:
    """Why a replica may not be promoted; ``outdated``: a record says its data is old."""

    reason: str
    outdated: bool

    def __str__(self) -> str:
        return self.reason


class PeerOutdater(Protocol):
    async def outdate_peer(self, volume: str, peer_id: str, my_generation: int) -> OutdateResult:
        """Mark the peer Outdated; called by a Primary that lost it, before further acks."""
        ...

    async def may_promote(
        self, volume: str, me_id: str, my_generation: Generation
    ) -> Refusal | None:
        """None if this replica may become Primary, else why not."""
        ...

    async def clear(self, volume: str, me_id: str) -> bool:
        """This replica is UpToDate again (resynced): lift its outdate record. True if lifted."""
        ...

    async def close(self) -> None: ...


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------- the store record
@dataclass(frozen=True)
class OutdateRecord:
    volume: str
    outdated: str
    generation: int
    by: str
    since: str
    updated: str

    def encode(self) -> dict[str, Any]:
        return {
            "volume": self.volume,
            "outdated": self.outdated,
            "generation": f"{self.generation:016X}",
            "by": self.by,
            "since": self.since,
            "updated": self.updated,
        }

    def describe(self) -> str:
        return (
            f"replica {self.outdated!r} of volume {self.volume!r} is Outdated: "
            f"{self.by!r} recorded at {self.since} that it missed the writes of generation "
            f"{self.generation:016X}"
        )


def decode_record(key: str, value: Mapping[str, Any]) -> OutdateRecord:
    try:
        rec = OutdateRecord(
            volume=str(value["volume"]),
            outdated=str(value["outdated"]),
            generation=int(str(value["generation"]), 16),
            by=str(value["by"]),
            since=str(value["since"]),
            updated=str(value.get("updated", value["since"])),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(
            f"outdate records {key!r} is malformed ({type(exc).__name__}: {exc}); it was not "
            "written by blockrepl: inspect it and delete it (`etcdctl del`) to go on"
        ) from None
    return rec


def has_generation(gen: Generation, value: int) -> bool:
    """The replica's data includes generation ``value`` (current or history, role masked)."""
    want = value & _MASK
    return want != 0 and any(
        u & _MASK == want for u in (gen.current, gen.history1, gen.history2) if u
    )


def next_record(
    old: OutdateRecord | None, volume: str, peer: str, me: str, generation: int, at: str
) -> OutdateRecord | None:
    """The record after ``me`` outdates ``peer``; None = refuse (the record names ``me``)."""
    if old is not None and old.outdated == me:
        return None
    if old is None or old.outdated != peer:
        return OutdateRecord(volume, peer, generation, me, at, at)
    if old.generation == generation and old.by == me:
        return old
    return replace(old, generation=generation, by=me, updated=at)


class StoreOutdater:
    """Fencing records in Vigil's store; owns ``store`` (closes it in close())."""

    def __init__(self, store: Store, me: str, timeout: float = 10.0) -> None:
        self.store = store
        self.me = me
        self.timeout = timeout

    async def close(self) -> None:
        await self.store.close()

    async def outdate_peer(self, volume: str, peer_id: str, my_generation: int) -> OutdateResult:
        key = volume_outdate_key(volume)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._outdate(key, volume, peer_id, my_generation)
        except (StoreError, TimeoutError) as exc:
            return OutdateResult(
                FencePeerCode.FAILED,
                f"could not write {key} to the store ({exc or 'timed out'}): peer "
                f"{peer_id!r} is NOT outdated and could be promoted with stale data",
            )

    async def _outdate(self, key: str, volume: str, peer: str, generation: int) -> OutdateResult:
        for _ in range(CAS_ATTEMPTS):
            kv = await self.store.get(key)
            old = None if kv is None else decode_record(key, kv.value)
            new = next_record(old, volume, peer, self.me, generation, now_iso())
            if new is None:
                assert old is not None
                return OutdateResult(
                    FencePeerCode.PEER_PRIMARY,
                    f"{key} says {old.describe()}: the peer was promoted while cut off; "
                    "not outdating it (split brain: resolve by hand)",
                )
            if new == old:
                return OutdateResult(FencePeerCode.OUTDATED, f"{key}: already {new.describe()}")
            try:
                rev = await self.store.put(
                    key, new.encode(), expect_revision=0 if kv is None else kv.mod_revision
                )
            except ConflictError:
                continue  # someone else wrote it meanwhile: re-read and decide again
            return OutdateResult(
                FencePeerCode.OUTDATED, f"{key} (revision {rev}): {new.describe()}"
            )
        return OutdateResult(
            FencePeerCode.FAILED, f"{key}: lost {CAS_ATTEMPTS} compare-and-swap races in a row"
        )

    async def may_promote(
        self, volume: str, me_id: str, my_generation: Generation
    ) -> Refusal | None:
        key = volume_outdate_key(volume)
        try:
            async with asyncio.timeout(self.timeout):
                kv = await self.store.get(key)
                rec = None if kv is None else decode_record(key, kv.value)
        except (StoreError, TimeoutError) as exc:
            return Refusal(
                f"cannot read the outdate records {key} ({exc or 'timed out'}): this replica "
                "may be Outdated, refusing to promote it; retry when the store answers, or "
                "use --force if you know its data is the newest",
                outdated=False,
            )
        if rec is None or rec.outdated != me_id:
            return None
        if has_generation(my_generation, rec.generation):
            # Resynced from the writer, but the clear did not land: the record is stale.
            with contextlib.suppress(StoreError, TimeoutError):
                await self.clear(volume, me_id)
            return None
        assert kv is not None
        return Refusal(
            f"{rec.describe()} (store key {key}, revision {kv.mod_revision}). Fix: reconnect "
            f"it to {rec.by!r} and let it resync (the record is then cleared), or, accepting "
            "that those writes are lost, promote with --force",
            outdated=True,
        )

    async def clear(self, volume: str, me_id: str) -> bool:
        key = volume_outdate_key(volume)
        async with asyncio.timeout(self.timeout):
            for _ in range(CAS_ATTEMPTS):
                kv = await self.store.get(key)
                if kv is None or decode_record(key, kv.value).outdated != me_id:
                    return False
                try:
                    return await self.store.delete(key, expect_revision=kv.mod_revision)
                except ConflictError:
                    continue
        raise OutdateError(f"{key}: lost {CAS_ATTEMPTS} compare-and-swap races while clearing it")


# ---------------------------------------------------------------------- handler commands
def handler_env(
    volume: str, peer: str, me: str, generation: int, peer_address: str
) -> dict[str, str]:
    return {
        "BLOCKREPL_VOLUME": volume,
        "BLOCKREPL_PEER": peer,
        "BLOCKREPL_REPLICA": me,
        "BLOCKREPL_GENERATION": f"{generation:016X}",
        "BLOCKREPL_PEER_ADDRESS": peer_address,
        # DRBD's names, for existing fence-peer scripts.
        "DRBD_RESOURCE": volume,
        "DRBD_PEER": peer,
        "DRBD_PEERS": peer,
    }


def code_of(rc: int) -> FencePeerCode:
    try:
        code = FencePeerCode(rc)
    except ValueError:
        return FencePeerCode.FAILED
    return code


class HandlerOutdater:
    def __init__(
        self,
        command: str,
        me: str,
        *,
        unfence_command: str | None = None,
        peer_address: str = "",
        timeout: float = 60.0,
    ) -> None:
        self.command = command
        self.unfence_command = unfence_command
        self.me = me
        self.peer_address = peer_address
        self.timeout = timeout

    async def close(self) -> None:
        pass

    async def _run(self, command: str, env: dict[str, str]) -> tuple[int | None, str]:
        proc = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,  # a timeout kills the handler's children too
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return None, f"killed after {self.timeout:g}s"
        text = out.decode(errors="replace").strip().splitlines()
        return proc.returncode, (text[-1] if text else "")

    async def outdate_peer(self, volume: str, peer_id: str, my_generation: int) -> OutdateResult:
        env = handler_env(volume, peer_id, self.me, my_generation, self.peer_address)
        try:
            rc, last = await self._run(self.command, env)
        except OSError as exc:
            return OutdateResult(FencePeerCode.FAILED, f"fence-peer handler did not start: {exc}")
        said = f": {last}" if last else ""
        if rc is None:
            return OutdateResult(
                FencePeerCode.FAILED, f"fence-peer handler {self.command!r} {last}"
            )
        code = code_of(rc)
        if code is FencePeerCode.FAILED:
            return OutdateResult(
                code,
                f"fence-peer handler {self.command!r} exited {rc} (expected 3..7){said}: "
                "the handler is broken, peer NOT outdated",
            )
        return OutdateResult(code, f"fence-peer handler exited {rc} ({code.name}){said}")

    async def may_promote(
        self, volume: str, me_id: str, my_generation: Generation
    ) -> Refusal | None:
        return None  # the handler outdates the peer's own metadata; that flag decides

    async def clear(self, volume: str, me_id: str) -> bool:
        if self.unfence_command is None:
            return False
        env = handler_env(volume, me_id, self.me, 0, self.peer_address)
        rc, last = await self._run(self.unfence_command, env)
        if rc != 0:
            raise OutdateError(f"unfence-peer handler {self.unfence_command!r} exited {rc}: {last}")
        return True
