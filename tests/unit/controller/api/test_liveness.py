"""Membership vocabulary: a member as seen, and the Node phase published for it."""

from __future__ import annotations

from controller.api.liveness import UNKNOWN, Liveness, from_phase, node_phase


def test_alive_means_up_or_warn() -> None:
    assert Liveness("up", False).alive and Liveness("warn", False).alive
    assert not Liveness("dead", False).alive and not UNKNOWN.alive


def test_phases_are_published_and_read_back_alike() -> None:
    for seen, phase in [
        (Liveness("up", False), "Ready"),
        (Liveness("warn", False), "Ready"),
        (Liveness("dead", False), "NotReady"),
        (Liveness("dead", True), "Lost"),
        (UNKNOWN, "Unknown"),
        (None, "Unknown"),
    ]:
        assert node_phase(seen) == phase
        back = from_phase(phase)
        assert (back.alive, back.lost) == ((seen.alive, seen.lost) if seen else (False, False))
    assert from_phase("Fenced").lost and from_phase("bogus") == UNKNOWN
