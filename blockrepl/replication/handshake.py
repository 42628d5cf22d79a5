"""Connect-time identity exchange and sync decision (pure).

The HANDSHAKE payload is a JSON object with the fields of :class:`Identity` (the ones
added after the first release are optional, so an older peer's payload still decodes).
:func:`incompatibility` refuses peers of another volume, size, block size, protocol or
split-brain policy; :func:`decide` runs :func:`blockrepl.uuids.compare_uuids` plus DRBD's
post-processing: disk-state override, after-sb policies (:mod:`blockrepl.replication.
splitbrain_policy`), ``--discard-my-data``, unrelated → disconnect, rr-conflict → disconnect.
Both ends run :func:`decide` on the same two identities (with opposite
``resolve_conflicts``), so they reach mirror-image answers without another round trip.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum

from blockrepl.generation import Generation
from blockrepl.layout import BM_BYTES_PER_BIT
from blockrepl.replication.splitbrain_policy import SbVerdict, policy_problem, resolve_split_brain
from blockrepl.replication.wire import BadPayload
from blockrepl.uuids import Sync, compare_uuids
from controller.api.splitbrain import DISCONNECT


class SyncAction(Enum):
    NONE = "none"  # connected, nothing to sync
    SOURCE = "source"  # I send my marked blocks
    TARGET = "target"  # I receive
    DISCONNECT = "disconnect"


@dataclass(frozen=True)
class Identity:
    volume: str
    size: int
    block_size: int
    protocol: str
    generation: tuple[int, int, int, int]
    primary: bool
    consistent: bool
    crashed_primary: bool
    dirty_bits: int
    device_uuid: str
    # Since item 5 (split-brain recovery); missing in an older peer's payload.
    after_sb: tuple[str, str, str] = (DISCONNECT, DISCONNECT, DISCONNECT)
    node_name: str = ""
    discard_mine: bool = False  # `blockrepl resolve --discard-mine` (DRBD --discard-my-data)
    # This node accepts WRITE_ACK_RANGE (wire.py); an older peer omits it: single acks.
    ack_ranges: bool = False

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @property
    def gen(self) -> Generation:
        return Generation(*self.generation)


_TYPES: dict[str, type | tuple[type, ...]] = {
    "volume": str,
    "size": int,
    "block_size": int,
    "protocol": str,
    "generation": list,
    "primary": bool,
    "consistent": bool,
    "crashed_primary": bool,
    "dirty_bits": int,
    "device_uuid": str,
}
_OPTIONAL: dict[str, type] = {
    "after_sb": list,
    "node_name": str,
    "discard_mine": bool,
    "ack_ranges": bool,
}


def decode_identity(payload: bytes) -> Identity:
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"HANDSHAKE payload is not JSON: {exc}") from None
    if (
        not isinstance(obj, dict)
        or not set(_TYPES) <= set(obj)
        or not set(obj) <= set(_TYPES) | set(_OPTIONAL)
    ):
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise BadPayload(
            f"HANDSHAKE fields {got}, expected {sorted(_TYPES)} (optional {sorted(_OPTIONAL)})"
        )
    for key, typ in {**_TYPES, **_OPTIONAL}.items():
        if key not in obj:
            continue
        if not isinstance(obj[key], typ) or (typ is int and isinstance(obj[key], bool)):
            raise BadPayload(f"HANDSHAKE field {key!r} has the wrong type")
    if "after_sb" in obj:
        asb = obj["after_sb"]
        if len(asb) != 3 or not all(isinstance(x, str) for x in asb):
            raise BadPayload("HANDSHAKE field 'after_sb' must be 3 policy names [0pri, 1pri, 2pri]")
        obj["after_sb"] = tuple(asb)
    gen = obj["generation"]
    if len(gen) != 4 or not all(isinstance(u, int) and 0 <= u < 2**64 for u in gen):
        raise BadPayload("HANDSHAKE field 'generation' must be 4 unsigned 64-bit integers")
    obj["generation"] = tuple(gen)
    return Identity(**obj)


def incompatibility(me: Identity, peer: Identity) -> str | None:
    """Why these two replicas may not be connected, or None."""
    if peer.volume != me.volume:
        return f"peer serves volume {peer.volume!r}, this node {me.volume!r}: wrong --peer?"
    if peer.size != me.size:
        return (
            f"peer volume size is {peer.size} bytes, this node has {me.size}: "
            "create both replicas with the same size"
        )
    if peer.block_size != me.block_size or me.block_size != BM_BYTES_PER_BIT:
        return f"peer bitmap block size {peer.block_size}, this node {me.block_size}"
    if peer.protocol != me.protocol:
        return f"peer uses protocol {peer.protocol}, this node {me.protocol}: use the same"
    if peer.after_sb != me.after_sb:
        return (
            f"split-brain policies differ: this node after-sb-0pri/1pri/2pri = "
            f"{'/'.join(me.after_sb)}, the peer {'/'.join(peer.after_sb)}: "
            "configure both replicas with the same --after-sb-* options"
        )
    why = policy_problem(me.after_sb, me.node_name, peer.node_name)
    if why is not None:
        return why
    if peer.primary and me.primary and me.after_sb[2] == DISCONNECT:
        return "both nodes are Primary; demote one before connecting (split brain risk)"
    return None


@dataclass(frozen=True)
class ConnectDecision:
    action: SyncAction
    full: bool
    rule: int
    reason: str
    split_brain: bool = False  # DISCONNECT because of an unresolved split brain
    demote_self: bool = False  # I am a Primary that lost a split brain: demote, then sync


def _from_verdict(v: SbVerdict, rule: int) -> ConnectDecision:
    if v.action is None:
        return ConnectDecision(SyncAction.DISCONNECT, False, rule, v.reason, split_brain=True)
    action = SyncAction.SOURCE if v.action > 0 else SyncAction.TARGET
    return ConnectDecision(action, v.full, rule, v.reason, demote_self=v.demote_self)


def decide(me: Identity, peer: Identity, resolve_conflicts: bool) -> ConnectDecision:
    d = compare_uuids(
        me.gen,
        peer.gen,
        self_crashed_primary=me.crashed_primary,
        peer_crashed_primary=peer.crashed_primary,
        self_primary=me.primary,
        peer_primary=peer.primary,
        resolve_conflicts=resolve_conflicts,
    )
    hg = d.sync
    if hg is Sync.UNRELATED:
        return ConnectDecision(
            SyncAction.DISCONNECT, False, d.rule, "unrelated data (no common UUID)"
        )
    split = hg in (Sync.SPLIT_BRAIN_AUTO, Sync.SPLIT_BRAIN_DISCONNECT)
    if me.primary and peer.primary and not split:
        # Only a split brain with an after-sb-2pri policy lets two Primaries this far.
        return ConnectDecision(
            SyncAction.DISCONNECT,
            False,
            d.rule,
            "both nodes are Primary and their data did not diverge: demote one (one Primary only)",
        )
    # Exactly one side Inconsistent: the consistent side is the source, whatever the UUIDs.
    if me.consistent != peer.consistent:
        full = hg in (Sync.SOURCE_FULL, Sync.TARGET_FULL, Sync.SPLIT_BRAIN_DISCONNECT)
        action = SyncAction.SOURCE if me.consistent else SyncAction.TARGET
        return ConnectDecision(action, full, d.rule, "disk-state override")
    if split:
        verdict = resolve_split_brain(
            me, peer, resolve_conflicts, auto=hg is Sync.SPLIT_BRAIN_AUTO, rule=d.rule
        )
        return _from_verdict(verdict, d.rule)
    if hg > 0 and not me.consistent:
        return ConnectDecision(
            SyncAction.DISCONNECT, False, d.rule, "I would be source but am Inconsistent"
        )
    if hg < 0 and me.primary:
        return ConnectDecision(
            SyncAction.DISCONNECT,
            False,
            d.rule,
            "this Primary would become sync target (its data would be discarded); demote it",
        )
    if hg == Sync.NO_SYNC:
        return ConnectDecision(SyncAction.NONE, False, d.rule, "in sync")
    full = abs(int(hg)) == 2
    return ConnectDecision(
        SyncAction.SOURCE if hg > 0 else SyncAction.TARGET, full, d.rule, "generation UUIDs"
    )
