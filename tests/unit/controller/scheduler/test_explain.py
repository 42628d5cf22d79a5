"""Reason sentences name the rule that decided (explain.py)."""

from __future__ import annotations

from controller.scheduler.explain import compare, score_text
from tests.unit.controller.scheduler.clusters import cand


def test_scores_show_stickiness_when_it_counts() -> None:
    assert score_text(cand("a", base=50)) == "score 50"
    assert score_text(cand("a", base=50, sticky=100)) == "score 50 + stickiness 100 = 150"
    assert score_text(cand("a", running=("g", "h"), base=7)).startswith("combined score 7")


def test_compare_names_the_deciding_rule() -> None:
    assert compare(cand("a"), cand("b", conflicts=("x",))) == "b already runs anti-colocated x"
    assert compare(cand("a", moves=("g",)), cand("b")) == "ha move to a"
    assert compare(cand("a", base=100), cand("b", base=50)) == "score 100 beats b score 50"
    assert compare(cand("a", here=1), cand("b")).startswith("already there")
    assert "fewer groups there (0 vs 2)" in compare(cand("a"), cand("b", load=2))
    assert compare(cand("a", load=1), cand("b", load=1)).endswith("first by name")
