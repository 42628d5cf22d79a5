"""After-split-brain decisions (pure): both ends reach mirrored verdicts from the same facts."""

from __future__ import annotations

from dataclasses import replace

from blockrepl.replication.handshake import Identity
from blockrepl.replication.splitbrain_policy import policy_problem, resolve_split_brain

BASE = Identity(
    volume="pg",
    size=1 << 30,
    block_size=4096,
    protocol="C",
    generation=(0xA0, 0x10, 0, 0),  # bitmap UUID's role bit 0: Secondary at the split
    primary=False,
    consistent=True,
    crashed_primary=False,
    dirty_bits=0,
    device_uuid="d",
)


def pair(**policy: object) -> tuple[Identity, Identity]:
    a = replace(BASE, node_name="a", **policy)  # type: ignore[arg-type]
    b = replace(BASE, node_name="b", generation=(0xB0, 0x10, 0, 0), **policy)  # type: ignore[arg-type]
    return a, b


def test_discard_zero_changes_keeps_the_side_that_wrote() -> None:
    a, b = pair(after_sb=("discard-zero-changes", "disconnect", "disconnect"))
    a = replace(a, dirty_bits=0)
    b = replace(b, dirty_bits=12)
    on_a = resolve_split_brain(a, b, True, auto=True, rule=90)
    on_b = resolve_split_brain(b, a, False, auto=True, rule=90)
    assert (on_a.action, on_b.action) == (-1, 1)  # a becomes sync target of b
    assert not on_a.full and "after-sb-0pri discard-zero-changes" in on_a.reason


def test_the_default_leaves_it_to_the_operator_and_says_how() -> None:
    a, b = pair()
    a, b = replace(a, dirty_bits=3), replace(b, dirty_bits=4)
    verdict = resolve_split_brain(a, b, True, auto=True, rule=90)
    assert verdict.action is None
    assert "resolve --discard-mine" in verdict.reason and "resolve --connect" in verdict.reason


def test_an_operators_discard_decides_even_an_ambiguous_history_with_a_full_resync() -> None:
    a, b = pair()
    a = replace(a, discard_mine=True)
    on_a = resolve_split_brain(a, b, True, auto=False, rule=100)
    on_b = resolve_split_brain(b, a, False, auto=False, rule=100)
    assert (on_a.action, on_b.action) == (-1, 1) and on_a.full and on_b.full
    both = resolve_split_brain(a, replace(b, discard_mine=True), True, auto=False, rule=100)
    assert both.action is None and "only one may" in both.reason


def test_a_primary_that_loses_demotes_first() -> None:
    a, b = pair(after_sb=("disconnect", "discard-secondary", "disconnect"))
    b = replace(b, primary=True, dirty_bits=5)
    a = replace(a, dirty_bits=2)
    on_b = resolve_split_brain(b, a, False, auto=True, rule=90)
    on_a = resolve_split_brain(a, b, True, auto=True, rule=90)
    assert (on_a.action, on_b.action) == (-1, 1) and not on_b.demote_self


def test_policy_problems_that_only_the_pair_can_see() -> None:
    assert policy_problem(("disconnect",) * 3, "a", "b") is None
    assert "names neither" in str(
        policy_problem(("discard-node-c", "disconnect", "disconnect"), "a", "b")
    )
    assert "distinct node names" in str(
        policy_problem(("discard-node-a", "disconnect", "disconnect"), "a", "a")
    )
    assert "--after-sb-1pri" in str(policy_problem(("disconnect", "bogus", "disconnect"), "a", "b"))
