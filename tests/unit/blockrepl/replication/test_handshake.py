"""Handshake identity codec, compatibility checks and the sync decision."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockrepl.generation import UUID_JUST_CREATED, Generation, new_current
from blockrepl.replication.handshake import (
    ConnectDecision,
    Identity,
    SyncAction,
    decide,
    decode_identity,
    incompatibility,
)
from blockrepl.replication.wire import BadPayload

G = (0x1000, 0, 0x2000, 0)


def ident(**kw: object) -> Identity:
    base = Identity(
        volume="vol",
        size=1 << 30,
        block_size=4096,
        protocol="C",
        generation=G,
        primary=False,
        consistent=True,
        crashed_primary=False,
        dirty_bits=0,
        device_uuid="u",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_identity_round_trip_and_strictness() -> None:
    me = ident(primary=True)
    assert decode_identity(me.encode()) == me
    obj = json.loads(me.encode())
    with pytest.raises(BadPayload, match="fields"):
        decode_identity(json.dumps({**obj, "extra": 1}).encode())
    with pytest.raises(BadPayload, match="'size' has the wrong type"):
        decode_identity(json.dumps({**obj, "size": True}).encode())
    with pytest.raises(BadPayload, match="unsigned 64-bit"):
        decode_identity(json.dumps({**obj, "generation": [1, 2, 3, -1]}).encode())
    with pytest.raises(BadPayload, match="not JSON"):
        decode_identity(b"\x00garbage")


def test_ack_ranges_only_when_the_peer_announces_them() -> None:
    obj = json.loads(ident(ack_ranges=True).encode())
    assert decode_identity(json.dumps(obj).encode()).ack_ranges
    del obj["ack_ranges"]  # an older peer: one WRITE_ACK per write
    assert not decode_identity(json.dumps(obj).encode()).ack_ranges
    with pytest.raises(BadPayload, match="'ack_ranges' has the wrong type"):
        decode_identity(json.dumps({**obj, "ack_ranges": 1}).encode())


@pytest.mark.parametrize(
    ("peer", "match"),
    [
        (ident(volume="other"), "volume 'other'"),
        (ident(size=2 << 30), "size is 2147483648 bytes"),
        (ident(protocol="A"), "protocol A"),
        (ident(block_size=512), "block size"),
    ],
)
def test_incompatible_peers_get_a_clear_reason(peer: Identity, match: str) -> None:
    why = incompatibility(ident(), peer)
    assert why is not None and match in why


def test_two_primaries_refused() -> None:
    assert "both nodes are Primary" in str(
        incompatibility(ident(primary=True), ident(primary=True))
    )
    assert incompatibility(ident(primary=True), ident()) is None


def test_fresh_primary_fully_syncs_fresh_secondary() -> None:
    fresh = (UUID_JUST_CREATED, 0, 0, 0)
    forced = new_current(Generation(*fresh), primary=True).as_tuple()
    p = ident(generation=forced, primary=True)
    s = ident(generation=fresh, consistent=False)
    dp, ds = decide(p, s, resolve_conflicts=False), decide(s, p, resolve_conflicts=True)
    assert (dp.action, dp.full, ds.action, ds.full) == (
        SyncAction.SOURCE,
        True,
        SyncAction.TARGET,
        True,
    )


def test_primary_that_wrote_while_disconnected_is_bitmap_source() -> None:
    synced = Generation(0x5000, 0, 0x4000, 0)
    p_gen = new_current(synced, primary=True)  # on losing the peer: B := C, C := new
    p = ident(generation=p_gen.as_tuple(), primary=True)
    s = ident(generation=synced.as_tuple())
    dp, ds = decide(p, s, False), decide(s, p, True)
    assert (dp.action, dp.full, dp.rule) == (SyncAction.SOURCE, False, 70)
    assert (ds.action, ds.full, ds.rule) == (SyncAction.TARGET, False, 50)


def test_split_brain_disconnects_both_sides() -> None:
    synced = Generation(0x5000, 0, 0x4000, 0)
    a = ident(generation=new_current(synced, True).as_tuple(), primary=True)
    b = ident(generation=new_current(synced, True).as_tuple())
    for d in (decide(a, b, False), decide(b, a, True)):
        assert d.action is SyncAction.DISCONNECT and "split brain" in d.reason


def test_unrelated_data_disconnects() -> None:
    a = ident(generation=(0x1110, 0, 0x2220, 0))
    b = ident(generation=(0x3330, 0, 0x4440, 0))
    d = decide(a, b, False)
    assert d.action is SyncAction.DISCONNECT and "unrelated" in d.reason


def test_primary_never_becomes_sync_target() -> None:
    synced = Generation(0x5000, 0, 0x4000, 0)
    newer = new_current(synced, primary=True)  # the peer was promoted while we were away
    me = ident(generation=synced.as_tuple(), primary=True)
    d = decide(me, ident(generation=newer.as_tuple()), False)
    assert d.action is SyncAction.DISCONNECT and "demote" in d.reason


def test_in_sync_secondaries_do_nothing() -> None:
    d = decide(ident(), ident(), False)
    assert (d.action, d.rule) == (SyncAction.NONE, 40)


# ---------------------------------------------------------------- split brain (item 5)
SYNCED = Generation(0x5000, 0, 0x4000, 0)


def diverged(
    a_was_primary: bool = True, b_was_primary: bool = False
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Both replicas started a new generation from the same synced one (rule 90)."""
    a0 = replace(SYNCED, current=SYNCED.current | int(a_was_primary))
    b0 = replace(SYNCED, current=SYNCED.current | int(b_was_primary))
    a = new_current(a0, primary=True, value=0x7000).as_tuple()
    b = new_current(b0, primary=True, value=0x9000).as_tuple()
    return a, b


def pair(
    policies: tuple[str, str, str],
    a_changes: int,
    b_changes: int,
    *,
    a_primary: bool = False,
    b_primary: bool = False,
    a_was_primary: bool = True,
    b_was_primary: bool = False,
) -> tuple[Identity, Identity]:
    ga, gb = diverged(a_was_primary, b_was_primary)
    a = ident(
        generation=ga, dirty_bits=a_changes, primary=a_primary, after_sb=policies, node_name="a"
    )
    b = ident(
        generation=gb, dirty_bits=b_changes, primary=b_primary, after_sb=policies, node_name="b"
    )
    return a, b


def both(a: Identity, b: Identity) -> tuple[ConnectDecision, ConnectDecision]:
    """What A (the dialer: resolve_conflicts False) and B decide on the same connection."""
    return decide(a, b, resolve_conflicts=False), decide(b, a, resolve_conflicts=True)


MIRROR = {SyncAction.SOURCE: SyncAction.TARGET, SyncAction.TARGET: SyncAction.SOURCE}


def winner(a: Identity, b: Identity) -> str | None:
    da, db = both(a, b)
    if da.action is SyncAction.DISCONNECT:
        assert db.action is SyncAction.DISCONNECT and da.split_brain and db.split_brain
        return None
    assert MIRROR[da.action] is db.action, (da, db)
    assert not da.full and not db.full  # common parent: the bitmaps say what differs
    return "a" if da.action is SyncAction.SOURCE else "b"


D = "disconnect"


@pytest.mark.parametrize(
    ("p0", "a_changes", "b_changes", "a_was", "b_was", "expect"),
    [
        (D, 5, 0, True, False, None),
        ("discard-zero-changes", 0, 7, True, False, "b"),
        ("discard-zero-changes", 7, 0, True, False, "a"),
        ("discard-zero-changes", 3, 7, True, False, None),  # both changed: no decision
        ("discard-zero-changes", 0, 0, True, False, "a"),  # tie: resolve_conflicts (B) loses
        ("discard-least-changes", 3, 7, True, False, "b"),
        ("discard-least-changes", 9, 7, True, False, "a"),
        ("discard-least-changes", 7, 7, True, False, "a"),
        ("discard-younger-primary", 9, 1, True, False, "a"),  # A was Primary before the split
        ("discard-younger-primary", 1, 9, False, True, "b"),
        ("discard-older-primary", 9, 1, True, False, "b"),
        ("discard-older-primary", 9, 1, False, True, "a"),
        ("discard-younger-primary", 2, 9, True, True, "b"),  # falls through to least changes
        ("discard-node-a", 1, 9, True, False, "b"),
        ("discard-node-b", 1, 9, True, False, "a"),
    ],
)
def test_after_sb_0pri_both_ends_agree(
    p0: str, a_changes: int, b_changes: int, a_was: bool, b_was: bool, expect: str | None
) -> None:
    a, b = pair((p0, D, D), a_changes, b_changes, a_was_primary=a_was, b_was_primary=b_was)
    assert winner(a, b) == expect


def test_after_sb_1pri_discard_secondary_keeps_the_primary() -> None:
    a, b = pair((D, "discard-secondary", D), 1, 50, b_primary=True)
    assert winner(a, b) == "b"
    a, b = pair((D, "discard-secondary", D), 50, 1, b_primary=True)
    assert winner(a, b) == "b"


def test_call_pri_lost_after_sb_demotes_the_losing_primary() -> None:
    a, b = pair(("discard-least-changes", "call-pri-lost-after-sb", D), 2, 9, a_primary=True)
    da, db = both(a, b)
    assert (da.action, da.demote_self) == (SyncAction.TARGET, True)
    assert (db.action, db.demote_self) == (SyncAction.SOURCE, False)
    # the Primary wins: nobody demotes
    a, b = pair(("discard-least-changes", "call-pri-lost-after-sb", D), 9, 2, a_primary=True)
    da, db = both(a, b)
    assert (da.action, da.demote_self, db.action) == (SyncAction.SOURCE, False, SyncAction.TARGET)


def test_consensus_only_discards_the_secondary() -> None:
    policies = ("discard-least-changes", "consensus", D)
    assert winner(*pair(policies, 9, 2, a_primary=True)) == "a"
    assert winner(*pair(policies, 2, 9, a_primary=True)) is None


def test_two_primaries_connect_only_with_a_2pri_policy() -> None:
    a, b = pair(("discard-least-changes", D, "call-pri-lost-after-sb"), 2, 9)
    a, b = replace(a, primary=True), replace(b, primary=True)
    assert incompatibility(a, b) is None
    da, db = both(a, b)
    assert (da.action, da.demote_self, db.action) == (SyncAction.TARGET, True, SyncAction.SOURCE)
    # Two Primaries whose data did not diverge are still refused.
    p = ("disconnect", D, "call-pri-lost-after-sb")
    same = ident(primary=True, after_sb=p)
    assert decide(same, same, False).action is SyncAction.DISCONNECT
    assert "both nodes are Primary" in decide(same, same, False).reason


def test_unresolved_split_brain_says_which_command_to_run_where() -> None:
    a, b = pair((D, D, D), 3, 4)
    da, _ = both(a, b)
    assert da.split_brain and "split brain" in da.reason
    assert "resolve --discard-mine" in da.reason and "resolve --connect" in da.reason
    assert "this node changed 3 blocks (was Primary at the split" in da.reason


def test_discard_mine_resolves_by_hand() -> None:
    a, b = pair((D, D, D), 3, 4)
    a = replace(a, discard_mine=True)
    assert winner(a, b) == "b"
    b = replace(b, discard_mine=True)
    da, _ = both(a, b)
    assert da.action is SyncAction.DISCONNECT and "only one may" in da.reason


def test_discard_mine_on_ambiguous_history_syncs_everything() -> None:
    a = ident(generation=(0x7001, 0x1230, 0x5000, 0), discard_mine=True)
    b = ident(generation=(0x9001, 0x4560, 0x5000, 0))
    da, db = both(a, b)
    assert (da.rule, da.action, da.full) == (100, SyncAction.TARGET, True)
    assert (db.action, db.full) == (SyncAction.SOURCE, True)
    # the policies do not apply to an ambiguous history
    a2 = replace(a, discard_mine=False, after_sb=("discard-zero-changes", D, D))
    b2 = replace(b, after_sb=a2.after_sb)
    assert both(a2, b2)[0].action is SyncAction.DISCONNECT


@pytest.mark.parametrize(
    ("a_kw", "b_kw", "match"),
    [
        ({"after_sb": ("discard-zero-changes", D, D)}, {}, "split-brain policies differ"),
        (
            {"after_sb": ("discard-node-x", D, D), "node_name": "x"},
            {"after_sb": ("discard-node-x", D, D), "node_name": "x"},
            "distinct node names",
        ),
        (
            {"after_sb": ("discard-node-z", D, D), "node_name": "x"},
            {"after_sb": ("discard-node-z", D, D), "node_name": "y"},
            "names neither replica",
        ),
        (
            {"after_sb": ("discard-secondary", D, D)},
            {"after_sb": ("discard-secondary", D, D)},
            "--after-sb-0pri 'discard-secondary'",
        ),
    ],
)
def test_policy_configuration_errors_refuse_the_peer(
    a_kw: dict[str, object], b_kw: dict[str, object], match: str
) -> None:
    a, b = ident(**a_kw), ident(**b_kw)
    for why in (incompatibility(a, b), incompatibility(b, a)):
        assert why is not None and match in why


def test_identity_new_fields_round_trip_and_old_peer_payload_decodes() -> None:
    me = ident(after_sb=("discard-node-b", "consensus", D), node_name="a", discard_mine=True)
    assert decode_identity(me.encode()) == me
    old = json.loads(ident().encode())
    for key in ("after_sb", "node_name", "discard_mine"):
        old.pop(key)
    got = decode_identity(json.dumps(old).encode())
    assert got.after_sb == (D, D, D) and got.node_name == "" and not got.discard_mine
    with pytest.raises(BadPayload, match="after_sb"):
        decode_identity(json.dumps({**old, "after_sb": [D, D]}).encode())
    with pytest.raises(BadPayload, match="'discard_mine' has the wrong type"):
        decode_identity(json.dumps({**old, "discard_mine": 1}).encode())


_P0 = st.sampled_from(
    [
        D,
        "discard-younger-primary",
        "discard-older-primary",
        "discard-zero-changes",
        "discard-least-changes",
        "discard-node-a",
        "discard-node-b",
    ]
)
_P1 = st.sampled_from(
    [D, "consensus", "violently-as0p", "discard-secondary", "call-pri-lost-after-sb"]
)
_P2 = st.sampled_from([D, "violently-as0p", "call-pri-lost-after-sb"])


@settings(max_examples=400, deadline=None)
@given(
    policies=st.tuples(_P0, _P1, _P2),
    changes=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    was=st.tuples(st.booleans(), st.booleans()),
    now=st.tuples(st.booleans(), st.booleans()),
    discard=st.tuples(st.booleans(), st.booleans()),
)
def test_both_ends_always_reach_mirrored_answers(
    policies: tuple[str, str, str],
    changes: tuple[int, int],
    was: tuple[bool, bool],
    now: tuple[bool, bool],
    discard: tuple[bool, bool],
) -> None:
    a, b = pair(
        policies,
        *changes,
        a_primary=now[0],
        b_primary=now[1],
        a_was_primary=was[0],
        b_was_primary=was[1],
    )
    a, b = replace(a, discard_mine=discard[0]), replace(b, discard_mine=discard[1])
    if incompatibility(a, b) is not None:
        assert now == (True, True) and policies[2] == D
        return
    da, db = both(a, b)
    if da.action is SyncAction.DISCONNECT:
        assert db.action is SyncAction.DISCONNECT
        return
    assert MIRROR[da.action] is db.action
    for d, ident_ in ((da, a), (db, b)):
        # A Primary never stays Primary as sync target: it demotes first.
        assert d.demote_self == (d.action is SyncAction.TARGET and ident_.primary)
