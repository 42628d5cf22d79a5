"""Connect-time decisions from generation identifiers (pure).

:func:`compare_uuids` is DRBD 8.4's ``drbd_uuid_compare`` (drbd_receiver.c), rule for rule,
with one deliberate difference taken from DRBD 9: history slots that are 0 never match
(otherwise two unrelated fresh volumes would look "related" in rule 100).
:func:`recover_0pri`, :func:`recover_1pri`, :func:`recover_2pri` are the after-split-brain
policies (``drbd_asb_recover_{0,1,2}p``); :func:`sync_handshake` is the post-processing of
``drbd_sync_handshake``. Everything returns values; nothing here changes state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum, IntEnum

from blockrepl.generation import UUID_JUST_CREATED, UUID_MASK, UUID_NEW_BM_OFFSET, Generation


class Sync(IntEnum):
    """DRBD's ``hg`` values."""

    SOURCE_FULL = 2
    SOURCE_BITMAP = 1
    NO_SYNC = 0
    TARGET_BITMAP = -1
    TARGET_FULL = -2
    SPLIT_BRAIN_AUTO = 100  # common parent: after-sb policies may resolve it
    SPLIT_BRAIN_DISCONNECT = -100  # related but ambiguous
    UNRELATED = -1000


@dataclass(frozen=True)
class UuidDecision:
    sync: Sync
    rule: int
    # Rules 34/71 correct our own tuple and 35/51 the peer's copy; apply before syncing.
    fixed_self: Generation | None = None
    fixed_peer: Generation | None = None


def _m(u: int) -> int:
    return u & ~1


def compare_uuids(
    me: Generation,
    peer: Generation,
    *,
    self_crashed_primary: bool,
    peer_crashed_primary: bool,
    self_primary: bool,
    peer_primary: bool,
    resolve_conflicts: bool,
) -> UuidDecision:
    """``resolve_conflicts`` is the deterministic tie-breaker; exactly one node has it."""
    cs, cp = _m(me.current), _m(peer.current)
    if cs == UUID_JUST_CREATED and cp == UUID_JUST_CREATED:
        return UuidDecision(Sync.NO_SYNC, 10)
    if cs in (UUID_JUST_CREATED, 0) and cp != UUID_JUST_CREATED:
        return UuidDecision(Sync.TARGET_FULL, 20)
    if cs != UUID_JUST_CREATED and cp in (UUID_JUST_CREATED, 0):
        return UuidDecision(Sync.SOURCE_FULL, 30)

    if cs == cp:
        if peer.bitmap == 0 and me.bitmap != 0:
            if _m(me.bitmap) == _m(peer.history1) and _m(me.history1) == _m(peer.history2):
                fixed = replace(me, history2=me.history1, history1=me.bitmap, bitmap=0)
                return UuidDecision(Sync.SOURCE_BITMAP, 34, fixed_self=fixed)
            return UuidDecision(Sync.SOURCE_BITMAP, 36)
        if me.bitmap == 0 and peer.bitmap != 0:
            if _m(me.history1) == _m(peer.bitmap) and _m(me.history2) == _m(peer.history1):
                fixed = replace(peer, history2=peer.history1, history1=peer.bitmap, bitmap=0)
                return UuidDecision(Sync.TARGET_BITMAP, 35, fixed_peer=fixed)
            return UuidDecision(Sync.TARGET_BITMAP, 37)
        rct = (1 if self_crashed_primary else 0) + (2 if peer_crashed_primary else 0)
        if rct == 0:
            return UuidDecision(Sync.NO_SYNC, 40)  # only a replication link hiccup
        if self_primary or peer_primary:
            if self_primary and peer_primary:
                return UuidDecision(Sync.SPLIT_BRAIN_DISCONNECT, 41)
            return UuidDecision(Sync.SOURCE_BITMAP if self_primary else Sync.TARGET_BITMAP, 41)
        if rct == 1:
            return UuidDecision(Sync.SOURCE_BITMAP, 40)
        if rct == 2:
            return UuidDecision(Sync.TARGET_BITMAP, 40)
        return UuidDecision(Sync.TARGET_BITMAP if resolve_conflicts else Sync.SOURCE_BITMAP, 40)

    if cs == _m(peer.bitmap):
        return UuidDecision(Sync.TARGET_BITMAP, 50)
    if cs == _m(peer.history1) and (
        (_m(peer.history1) + UUID_NEW_BM_OFFSET) & UUID_MASK == _m(peer.bitmap)
    ):
        fixed = replace(peer, bitmap=peer.history1, history1=peer.history2)
        return UuidDecision(Sync.TARGET_BITMAP, 51, fixed_peer=fixed)
    if cs in (_m(peer.history1), _m(peer.history2)):
        return UuidDecision(Sync.TARGET_FULL, 60)
    if _m(me.bitmap) == cp:
        return UuidDecision(Sync.SOURCE_BITMAP, 70)
    if _m(me.history1) == cp and (
        (_m(me.history1) + UUID_NEW_BM_OFFSET) & UUID_MASK == _m(me.bitmap)
    ):
        fixed = replace(me, bitmap=me.history1, history1=me.history2)
        return UuidDecision(Sync.SOURCE_BITMAP, 71, fixed_self=fixed)
    if cp in (_m(me.history1), _m(me.history2)):
        return UuidDecision(Sync.SOURCE_FULL, 80)
    if _m(me.bitmap) == _m(peer.bitmap) and _m(me.bitmap) != 0:
        return UuidDecision(Sync.SPLIT_BRAIN_AUTO, 90)
    mine = {_m(me.history1), _m(me.history2)} - {0}
    theirs = {_m(peer.history1), _m(peer.history2)} - {0}
    if mine & theirs:
        return UuidDecision(Sync.SPLIT_BRAIN_DISCONNECT, 100)
    return UuidDecision(Sync.UNRELATED, 1000)


# ---------------------------------------------------------------- after-sb policies
class AfterSb(Enum):
    DISCONNECT = "disconnect"
    DISCARD_YOUNGER_PRIMARY = "discard-younger-primary"
    DISCARD_OLDER_PRIMARY = "discard-older-primary"
    DISCARD_ZERO_CHANGES = "discard-zero-changes"
    DISCARD_LEAST_CHANGES = "discard-least-changes"
    DISCARD_LOCAL = "discard-local"  # discard-node-<this node>
    DISCARD_REMOTE = "discard-remote"  # discard-node-<peer>
    CONSENSUS = "consensus"
    DISCARD_SECONDARY = "discard-secondary"
    CALL_PRI_LOST_AFTER_SB = "call-pri-lost-after-sb"
    VIOLENTLY_AS0P = "violently-as0p"


VALID_0PRI = {
    AfterSb.DISCONNECT,
    AfterSb.DISCARD_YOUNGER_PRIMARY,
    AfterSb.DISCARD_OLDER_PRIMARY,
    AfterSb.DISCARD_ZERO_CHANGES,
    AfterSb.DISCARD_LEAST_CHANGES,
    AfterSb.DISCARD_LOCAL,
    AfterSb.DISCARD_REMOTE,
}
VALID_1PRI = {
    AfterSb.DISCONNECT,
    AfterSb.CONSENSUS,
    AfterSb.VIOLENTLY_AS0P,
    AfterSb.DISCARD_SECONDARY,
    AfterSb.CALL_PRI_LOST_AFTER_SB,
}
VALID_2PRI = {AfterSb.DISCONNECT, AfterSb.VIOLENTLY_AS0P, AfterSb.CALL_PRI_LOST_AFTER_SB}


def discard_node(node: str, me: str) -> AfterSb:
    """``discard-node-NODE`` seen from ``me``."""
    return AfterSb.DISCARD_LOCAL if node == me else AfterSb.DISCARD_REMOTE


@dataclass(frozen=True)
class SbFacts:
    """Inputs of the policies: role bits of the bitmap UUIDs and changed-block counts."""

    self_was_primary: bool  # low bit of my bitmap UUID
    peer_was_primary: bool
    self_changes: int  # my dirty bits
    peer_changes: int
    resolve_conflicts: bool
    self_primary: bool = False  # roles now (1pri/2pri)
    peer_primary: bool = False


class Resolution(Enum):
    SOURCE = 1  # peer's changes are discarded
    TARGET = -1  # my changes are discarded
    UNRESOLVED = 0  # disconnect (after running the split-brain handler)
    CONFIG_ERROR = 2


@dataclass(frozen=True)
class SbOutcome:
    resolution: Resolution
    # call-pri-lost-after-sb: I am Primary and lose; try to demote, and if that fails run
    # the pri-lost-after-sb handler and disconnect.
    demote_self: bool = False


def _tie(f: SbFacts) -> Resolution:
    return Resolution.TARGET if f.resolve_conflicts else Resolution.SOURCE


def recover_0pri(policy: AfterSb, f: SbFacts) -> Resolution:
    if policy not in VALID_0PRI:
        return Resolution.CONFIG_ERROR
    if policy is AfterSb.DISCONNECT:
        return Resolution.UNRESOLVED
    if policy is AfterSb.DISCARD_LOCAL:
        return Resolution.TARGET
    if policy is AfterSb.DISCARD_REMOTE:
        return Resolution.SOURCE
    one_primary = f.self_was_primary != f.peer_was_primary
    if policy is AfterSb.DISCARD_YOUNGER_PRIMARY and one_primary:
        return Resolution.SOURCE if f.self_was_primary else Resolution.TARGET
    if policy is AfterSb.DISCARD_OLDER_PRIMARY and one_primary:
        return Resolution.TARGET if f.self_was_primary else Resolution.SOURCE
    if policy in (
        AfterSb.DISCARD_YOUNGER_PRIMARY,
        AfterSb.DISCARD_OLDER_PRIMARY,
        AfterSb.DISCARD_ZERO_CHANGES,
    ):
        if f.self_changes == 0 and f.peer_changes == 0:
            return _tie(f)
        if f.peer_changes == 0:
            return Resolution.SOURCE
        if f.self_changes == 0:
            return Resolution.TARGET
        if policy is AfterSb.DISCARD_ZERO_CHANGES:
            return Resolution.UNRESOLVED
    # discard-least-changes (also the fall-through of younger/older primary)
    if f.self_changes < f.peer_changes:
        return Resolution.TARGET
    if f.self_changes > f.peer_changes:
        return Resolution.SOURCE
    return _tie(f)


def recover_1pri(policy: AfterSb, policy_0pri: AfterSb, f: SbFacts) -> SbOutcome:
    if policy not in VALID_1PRI:
        return SbOutcome(Resolution.CONFIG_ERROR)
    if policy is AfterSb.DISCONNECT:
        return SbOutcome(Resolution.UNRESOLVED)
    if policy is AfterSb.DISCARD_SECONDARY:
        return SbOutcome(Resolution.SOURCE if f.self_primary else Resolution.TARGET)
    hg = recover_0pri(policy_0pri, f)
    if policy is AfterSb.CONSENSUS:
        if (hg is Resolution.TARGET and not f.self_primary) or (
            hg is Resolution.SOURCE and f.self_primary
        ):
            return SbOutcome(hg)
        return SbOutcome(Resolution.UNRESOLVED)
    if policy is AfterSb.VIOLENTLY_AS0P:
        return SbOutcome(hg)
    # call-pri-lost-after-sb
    return SbOutcome(hg, demote_self=hg is Resolution.TARGET and f.self_primary)


def recover_2pri(policy: AfterSb, policy_0pri: AfterSb, f: SbFacts) -> SbOutcome:
    if policy not in VALID_2PRI:
        return SbOutcome(Resolution.CONFIG_ERROR)
    if policy is AfterSb.DISCONNECT:
        return SbOutcome(Resolution.UNRESOLVED)
    hg = recover_0pri(policy_0pri, f)
    if policy is AfterSb.VIOLENTLY_AS0P:
        return SbOutcome(hg)
    return SbOutcome(hg, demote_self=hg is Resolution.TARGET)
