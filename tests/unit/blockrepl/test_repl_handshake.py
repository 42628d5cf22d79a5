"""Handshake identity codec, compatibility checks and the sync decision."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from blockrepl.generation import UUID_JUST_CREATED, Generation, new_current
from blockrepl.replication.handshake import (
    Action,
    Identity,
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
    assert (dp.action, dp.full, ds.action, ds.full) == (Action.SOURCE, True, Action.TARGET, True)


def test_primary_that_wrote_while_disconnected_is_bitmap_source() -> None:
    synced = Generation(0x5000, 0, 0x4000, 0)
    p_gen = new_current(synced, primary=True)  # on losing the peer: B := C, C := new
    p = ident(generation=p_gen.as_tuple(), primary=True)
    s = ident(generation=synced.as_tuple())
    dp, ds = decide(p, s, False), decide(s, p, True)
    assert (dp.action, dp.full, dp.rule) == (Action.SOURCE, False, 70)
    assert (ds.action, ds.full, ds.rule) == (Action.TARGET, False, 50)


def test_split_brain_disconnects_both_sides() -> None:
    synced = Generation(0x5000, 0, 0x4000, 0)
    a = ident(generation=new_current(synced, True).as_tuple(), primary=True)
    b = ident(generation=new_current(synced, True).as_tuple())
    for d in (decide(a, b, False), decide(b, a, True)):
        assert d.action is Action.DISCONNECT and "split brain" in d.reason


def test_unrelated_data_disconnects() -> None:
    a = ident(generation=(0x1110, 0, 0x2220, 0))
    b = ident(generation=(0x3330, 0, 0x4440, 0))
    d = decide(a, b, False)
    assert d.action is Action.DISCONNECT and "unrelated" in d.reason


def test_primary_never_becomes_sync_target() -> None:
    synced = Generation(0x5000, 0, 0x4000, 0)
    newer = new_current(synced, primary=True)  # the peer was promoted while we were away
    me = ident(generation=synced.as_tuple(), primary=True)
    d = decide(me, ident(generation=newer.as_tuple()), False)
    assert d.action is Action.DISCONNECT and "demote" in d.reason


def test_in_sync_secondaries_do_nothing() -> None:
    d = decide(ident(), ident(), False)
    assert (d.action, d.rule) == (Action.NONE, 40)
