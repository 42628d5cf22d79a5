"""drbd_uuid_compare decision table and after-sb policies, rule by rule and by scenario."""

from __future__ import annotations

import pytest

from blockrepl import generation as g
from blockrepl.generation import UUID_JUST_CREATED as JC
from blockrepl.generation import UUID_NEW_BM_OFFSET as OFF
from blockrepl.generation import Generation
from blockrepl.uuids import (
    AfterSb,
    Resolution,
    SbFacts,
    SbOutcome,
    Sync,
    UuidDecision,
    compare_uuids,
    discard_node,
    recover_0pri,
    recover_1pri,
    recover_2pri,
)

X, Y, Z, P, Q = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000


def cmp(
    me: Generation,
    peer: Generation,
    *,
    crashed: tuple[bool, bool] = (False, False),
    primary: tuple[bool, bool] = (False, False),
    rc: bool = False,
) -> UuidDecision:
    return compare_uuids(
        me,
        peer,
        self_crashed_primary=crashed[0],
        peer_crashed_primary=crashed[1],
        self_primary=primary[0],
        peer_primary=primary[1],
        resolve_conflicts=rc,
    )


G = Generation


@pytest.mark.parametrize(
    ("me", "peer", "sync", "rule"),
    [
        (G(JC), G(JC), Sync.NO_SYNC, 10),
        (G(JC | 1), G(JC), Sync.NO_SYNC, 10),  # role bit is ignored
        (G(JC), G(X), Sync.TARGET_FULL, 20),
        (G(0), G(X), Sync.TARGET_FULL, 20),
        (G(X), G(JC), Sync.SOURCE_FULL, 30),
        (G(X), G(0), Sync.SOURCE_FULL, 30),
        (G(X, Y, Z), G(X, 0, Y, Z), Sync.SOURCE_BITMAP, 34),
        (G(X, Y, Z), G(X, 0, P), Sync.SOURCE_BITMAP, 36),
        (G(X, 0, Y, Z), G(X, Y, Z), Sync.TARGET_BITMAP, 35),
        (G(X, 0, P), G(X, Y, Z), Sync.TARGET_BITMAP, 37),
        (G(X), G(X | 1), Sync.NO_SYNC, 40),
        (G(X), G(Y, X), Sync.TARGET_BITMAP, 50),
        (G(X), G(Y, X + OFF, X), Sync.TARGET_BITMAP, 51),
        (G(X), G(Y, P, X), Sync.TARGET_FULL, 60),
        (G(X), G(Y, 0, P, X), Sync.TARGET_FULL, 60),
        (G(Y, X), G(X), Sync.SOURCE_BITMAP, 70),
        (G(Y, X + OFF, X), G(X), Sync.SOURCE_BITMAP, 71),
        (G(Y, P, X), G(X), Sync.SOURCE_FULL, 80),
        (G(Y, 0, P, X), G(X), Sync.SOURCE_FULL, 80),
        (G(Y, X | 1), G(Z, X), Sync.SPLIT_BRAIN_AUTO, 90),
        (G(Y, P, Q), G(Z, X, Q), Sync.SPLIT_BRAIN_DISCONNECT, 100),
        (G(Y, P, 0, Q), G(Z, X, Q), Sync.SPLIT_BRAIN_DISCONNECT, 100),
        (G(Y, P, Q), G(Z, X), Sync.UNRELATED, 1000),
        (G(Y), G(Z), Sync.UNRELATED, 1000),  # zero history slots never match
    ],
)
def test_table_rule(me: Generation, peer: Generation, sync: Sync, rule: int) -> None:
    d = cmp(me, peer)
    assert (d.sync, d.rule) == (sync, rule)


def test_rule_34_and_35_fix_the_stale_tuple() -> None:
    d = cmp(G(X, Y, Z, P), G(X, 0, Y, Z))
    assert d.fixed_self == G(X, 0, Y, Z) and d.fixed_peer is None
    d = cmp(G(X, 0, Y, Z), G(X, Y, Z, P))
    assert d.fixed_peer == G(X, 0, Y, Z) and d.fixed_self is None


def test_rule_51_and_71_undo_the_sync_uuid_change() -> None:
    d = cmp(G(X), G(Y, X + OFF, X, P))
    assert d.fixed_peer == G(Y, X, P, P)
    d = cmp(G(Y, X + OFF, X, P), G(X))
    assert d.fixed_self == G(Y, X, P, P)


@pytest.mark.parametrize(
    ("crashed", "primary", "rc", "sync", "rule"),
    [
        ((False, False), (True, False), False, Sync.NO_SYNC, 40),
        ((True, False), (False, False), False, Sync.SOURCE_BITMAP, 40),
        ((False, True), (False, False), False, Sync.TARGET_BITMAP, 40),
        ((True, True), (False, False), False, Sync.SOURCE_BITMAP, 40),
        ((True, True), (False, False), True, Sync.TARGET_BITMAP, 40),
        ((True, False), (True, False), False, Sync.SOURCE_BITMAP, 41),
        ((True, False), (False, True), False, Sync.TARGET_BITMAP, 41),
        ((False, True), (True, True), False, Sync.SPLIT_BRAIN_DISCONNECT, 41),
    ],
)
def test_equal_current_crash_rules(
    crashed: tuple[bool, bool], primary: tuple[bool, bool], rc: bool, sync: Sync, rule: int
) -> None:
    d = cmp(G(X | 1), G(X), crashed=crashed, primary=primary, rc=rc)
    assert (d.sync, d.rule) == (sync, rule)


def test_scenarios_built_with_generation_operations() -> None:
    a = b = Generation()
    assert cmp(a, b).sync is Sync.NO_SYNC  # both fresh: initial sync is an operator decision
    a = g.new_current(a, primary=True, value=X)  # primary --force on A
    assert cmp(a, b).sync is Sync.SOURCE_FULL and cmp(b, a).sync is Sync.TARGET_FULL
    # initial full sync A -> B
    a = g.start_resync_as_source(a, value=Y)
    b = g.receive_sync_uuid(b, a.bitmap, primary=False)
    a = g.finish_resync_as_source(a)
    b = g.finish_resync_as_target(b, a, primary=False)
    assert _m(a) == _m(b)
    assert cmp(a, b).sync is Sync.NO_SYNC
    # A (Primary) loses the link and keeps writing: new generation
    a = g.new_current(a, primary=True, value=Z)
    assert (cmp(a, b).sync, cmp(a, b).rule) == (Sync.SOURCE_BITMAP, 70)
    assert (cmp(b, a).sync, cmp(b, a).rule) == (Sync.TARGET_BITMAP, 50)
    # resync starts; the sync UUID never reaches B (rule 71 / 51)
    a2 = g.start_resync_as_source(a)
    assert cmp(a2, b).rule == 71 and cmp(b, a2).rule == 51
    # ... or it does, and the link drops mid-resync: same direction on reconnect
    b2 = g.receive_sync_uuid(b, a2.bitmap, primary=False)
    assert (cmp(a2, b2).sync, cmp(a2, b2).rule) == (Sync.SOURCE_BITMAP, 70)
    # split brain: B is promoted too while disconnected
    b3 = g.new_current(b, primary=True, value=P)
    assert cmp(a, b3).sync is Sync.SPLIT_BRAIN_AUTO and cmp(b3, a).sync is Sync.SPLIT_BRAIN_AUTO


def _m(gen: Generation) -> tuple[int, ...]:
    return tuple(u & ~1 for u in gen.as_tuple())


# ---------------------------------------------------------------- after-sb policies
def facts(
    sp: bool = False,
    pp: bool = False,
    sc: int = 0,
    pc: int = 0,
    rc: bool = False,
    me_pri: bool = False,
    peer_pri: bool = False,
) -> SbFacts:
    return SbFacts(sp, pp, sc, pc, rc, me_pri, peer_pri)


S, T, U, E = Resolution.SOURCE, Resolution.TARGET, Resolution.UNRESOLVED, Resolution.CONFIG_ERROR


@pytest.mark.parametrize(
    ("policy", "f", "want"),
    [
        (AfterSb.DISCONNECT, facts(sc=5), U),
        (AfterSb.DISCARD_YOUNGER_PRIMARY, facts(sp=True), S),
        (AfterSb.DISCARD_YOUNGER_PRIMARY, facts(pp=True), T),
        (AfterSb.DISCARD_YOUNGER_PRIMARY, facts(sp=True, pp=True, sc=3, pc=9), T),  # least
        (AfterSb.DISCARD_OLDER_PRIMARY, facts(sp=True), T),
        (AfterSb.DISCARD_OLDER_PRIMARY, facts(pp=True), S),
        (AfterSb.DISCARD_OLDER_PRIMARY, facts(sc=0, pc=4), T),  # zero-changes fall-through
        (AfterSb.DISCARD_ZERO_CHANGES, facts(sc=0, pc=4), T),
        (AfterSb.DISCARD_ZERO_CHANGES, facts(sc=4, pc=0), S),
        (AfterSb.DISCARD_ZERO_CHANGES, facts(rc=True), T),
        (AfterSb.DISCARD_ZERO_CHANGES, facts(rc=False), S),
        (AfterSb.DISCARD_ZERO_CHANGES, facts(sc=1, pc=4), U),
        (AfterSb.DISCARD_LEAST_CHANGES, facts(sc=1, pc=4), T),
        (AfterSb.DISCARD_LEAST_CHANGES, facts(sc=7, pc=4), S),
        (AfterSb.DISCARD_LEAST_CHANGES, facts(sc=4, pc=4, rc=True), T),
        (AfterSb.DISCARD_LOCAL, facts(sc=9), T),
        (AfterSb.DISCARD_REMOTE, facts(pc=9), S),
        (AfterSb.CONSENSUS, facts(), E),
        (AfterSb.DISCARD_SECONDARY, facts(), E),
        (AfterSb.VIOLENTLY_AS0P, facts(), E),
        (AfterSb.CALL_PRI_LOST_AFTER_SB, facts(), E),
    ],
)
def test_after_sb_0pri(policy: AfterSb, f: SbFacts, want: Resolution) -> None:
    assert recover_0pri(policy, f) is want


@pytest.mark.parametrize(
    ("policy", "p0", "f", "want"),
    [
        (AfterSb.DISCONNECT, AfterSb.DISCARD_LOCAL, facts(me_pri=True), SbOutcome(U)),
        (AfterSb.CONSENSUS, AfterSb.DISCARD_LOCAL, facts(me_pri=False), SbOutcome(T)),
        (AfterSb.CONSENSUS, AfterSb.DISCARD_LOCAL, facts(me_pri=True), SbOutcome(U)),
        (AfterSb.CONSENSUS, AfterSb.DISCARD_REMOTE, facts(me_pri=True), SbOutcome(S)),
        (AfterSb.CONSENSUS, AfterSb.DISCARD_REMOTE, facts(peer_pri=True), SbOutcome(U)),
        (AfterSb.VIOLENTLY_AS0P, AfterSb.DISCARD_LOCAL, facts(me_pri=True), SbOutcome(T)),
        (AfterSb.DISCARD_SECONDARY, AfterSb.DISCONNECT, facts(me_pri=True), SbOutcome(S)),
        (AfterSb.DISCARD_SECONDARY, AfterSb.DISCONNECT, facts(peer_pri=True), SbOutcome(T)),
        (
            AfterSb.CALL_PRI_LOST_AFTER_SB,
            AfterSb.DISCARD_LOCAL,
            facts(me_pri=True),
            SbOutcome(T, demote_self=True),
        ),
        (AfterSb.CALL_PRI_LOST_AFTER_SB, AfterSb.DISCARD_LOCAL, facts(peer_pri=True), SbOutcome(T)),
        (AfterSb.DISCARD_LEAST_CHANGES, AfterSb.DISCONNECT, facts(), SbOutcome(E)),
        (AfterSb.DISCARD_ZERO_CHANGES, AfterSb.DISCONNECT, facts(), SbOutcome(E)),
    ],
)
def test_after_sb_1pri(policy: AfterSb, p0: AfterSb, f: SbFacts, want: SbOutcome) -> None:
    assert recover_1pri(policy, p0, f) == want


@pytest.mark.parametrize(
    ("policy", "p0", "want"),
    [
        (AfterSb.DISCONNECT, AfterSb.DISCARD_LOCAL, SbOutcome(U)),
        (AfterSb.VIOLENTLY_AS0P, AfterSb.DISCARD_LOCAL, SbOutcome(T)),
        (AfterSb.VIOLENTLY_AS0P, AfterSb.DISCARD_REMOTE, SbOutcome(S)),
        (AfterSb.CALL_PRI_LOST_AFTER_SB, AfterSb.DISCARD_LOCAL, SbOutcome(T, demote_self=True)),
        (AfterSb.CALL_PRI_LOST_AFTER_SB, AfterSb.DISCARD_REMOTE, SbOutcome(S)),
        (AfterSb.CONSENSUS, AfterSb.DISCARD_LOCAL, SbOutcome(E)),
        (AfterSb.DISCARD_SECONDARY, AfterSb.DISCARD_LOCAL, SbOutcome(E)),
    ],
)
def test_after_sb_2pri(policy: AfterSb, p0: AfterSb, want: SbOutcome) -> None:
    assert recover_2pri(policy, p0, facts(me_pri=True, peer_pri=True)) == want


def test_discard_node_is_mirrored() -> None:
    assert discard_node("alpha", me="alpha") is AfterSb.DISCARD_LOCAL
    assert discard_node("alpha", me="beta") is AfterSb.DISCARD_REMOTE
