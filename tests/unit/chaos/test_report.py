"""The chaos campaign's accounting: overlap rounds into intervals, gaps, the table."""

from __future__ import annotations

from tests.chaos.report import (
    DualActive,
    FaultResult,
    intervals,
    longest_gap,
    summarize,
    table,
    within,
)


def test_overlap_rounds_close_together_make_one_interval() -> None:
    rounds = [(10.00, ("n1", "n2")), (10.02, ("n1", "n2")), (10.04, ("n2", "n1")),
              (12.00, ("n2", "n3"))]  # fmt: skip
    found = intervals("vip web", rounds, 0.02)
    assert found == [
        DualActive("vip web", ("n1", "n2"), 10.00, 10.04),
        DualActive("vip web", ("n2", "n3"), 12.00, 12.00),
    ]
    assert within(found, 11.0, 13.0) == [found[1]]
    assert within(found, 10.03, 10.5) == [found[0]]
    assert intervals("vip web", [], 0.02) == []


def test_the_longest_gap_counts_the_window_edges() -> None:
    answers = [(1.0, True), (1.5, False), (2.0, False), (3.0, True), (3.1, True)]
    assert longest_gap(answers, 0.5, 4.0) == 2.0  # 1.0 -> 3.0
    assert longest_gap(answers, 3.05, 6.0) == 6.0 - 3.1
    assert longest_gap([], 0.0, 2.5) == 2.5


def test_summary_rows_per_kind_and_in_total() -> None:
    overlap = DualActive("service web", ("n1", "n2"), 5.0, 5.1)
    results = [
        FaultResult(1, "power", "n1", "", 0.0, 2.0, 1.5, longest_client_gap=1.2),
        FaultResult(2, "power", "n2", "", 10.0, 12.0, 12.5, longest_client_gap=1.0),
        FaultResult(3, "cpu", "n3", "", 20.0, 22.0, None, ["web Pending"], [overlap], 0.1),
    ]
    rows = summarize(results)
    assert [r["kind"] for r in rows] == ["cpu", "power", "all"]
    power, total = rows[1], rows[2]
    assert power["faults"] == 2 and power["converge_max_s"] == 12.5
    assert power["converge_median_s"] == 7.0 and power["over_goal"] == 1
    assert total["dual_active"] == 1 and total["not_converged"] == 1
    assert total["groups_not_running"] == 1 and total["client_gap_max_s"] == 1.2
    text = table(rows)
    assert text.splitlines()[0].startswith("fault")
    assert "cpu" in text and "12.50" in text
