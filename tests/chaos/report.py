"""What a fault campaign saw, per fault and per fault kind (pure: no lab needed).

A dual-active interval is a stretch of observer rounds in which one group's VIP, or its
service process, was on two powered nodes at once (confirmed by reading the first holder
again after the last; see lab/observer.py). It must never happen. Convergence is the time
from the end of a fault (the heal) until every node is Ready and every group Running,
with its VIP answered by the node it runs on.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

CONVERGE_GOAL = 10.0  # seconds after the heal


@dataclass(frozen=True)
class DualActive:
    what: str  # "vip web-a" or "service web-a"
    nodes: tuple[str, ...]
    start: float  # CLOCK_MONOTONIC
    end: float


@dataclass
class FaultResult:
    index: int
    kind: str
    target: str
    detail: str
    started: float
    healed: float
    converged_after: float | None = None  # seconds from the heal; None: not within the limit
    not_running: list[str] = field(default_factory=list)  # groups not Running at the end
    dual_active: list[DualActive] = field(default_factory=list)
    longest_client_gap: float | None = None  # seconds without an answer from some VIP
    client_gaps: dict[str, float] = field(default_factory=dict)  # per group
    target_ran: list[str] = field(default_factory=list)  # groups on the target when hit
    # What was not converged yet, each time it changed: (seconds after the heal, what).
    trace: list[tuple[float, list[str]]] = field(default_factory=list)


def intervals(
    what: str, rounds: Iterable[tuple[float, tuple[str, ...]]], period: float
) -> list[DualActive]:
    """Join confirmed overlap rounds closer than three periods into intervals."""
    out: list[DualActive] = []
    for t, nodes in sorted(rounds):
        last = out[-1] if out else None
        if last is not None and t - last.end <= 3 * period and set(nodes) & set(last.nodes):
            merged = tuple(sorted(set(last.nodes) | set(nodes)))
            out[-1] = DualActive(what, merged, last.start, t)
        else:
            out.append(DualActive(what, tuple(sorted(nodes)), t, t))
    return out


def within(items: Sequence[DualActive], start: float, end: float) -> list[DualActive]:
    return [d for d in items if d.end >= start and d.start <= end]


def longest_gap(answers: Sequence[tuple[float, bool]], start: float, end: float) -> float:
    """The longest time between two successful answers in [start, end] (the edges count)."""
    ok = [t for t, good in answers if good and start <= t <= end]
    points = [start, *ok, end]
    return max(b - a for a, b in itertools.pairwise(points))


def summarize(results: Sequence[FaultResult]) -> list[dict[str, Any]]:
    """One row per fault kind, then the total."""
    kinds = sorted({r.kind for r in results})
    rows = [_row(kind, [r for r in results if r.kind == kind]) for kind in kinds]
    rows.append(_row("all", list(results)))
    return rows


def _row(kind: str, results: list[FaultResult]) -> dict[str, Any]:
    converged = [r.converged_after for r in results if r.converged_after is not None]
    gaps = [r.longest_client_gap for r in results if r.longest_client_gap is not None]
    return {
        "kind": kind,
        "faults": len(results),
        "dual_active": sum(len(r.dual_active) for r in results),
        "converge_median_s": statistics.median(converged) if converged else None,
        "converge_max_s": max(converged) if converged else None,
        "over_goal": sum(1 for c in converged if c > CONVERGE_GOAL),
        "not_converged": sum(1 for r in results if r.converged_after is None),
        "groups_not_running": sum(len(r.not_running) for r in results),
        "client_gap_max_s": max(gaps) if gaps else None,
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    head = (
        f"{'fault':<14} {'count':>5} {'dual-active':>11} {'converge med':>12} "
        f"{'max':>6} {'>10s':>5} {'never':>5} {'not running':>11} {'client gap max':>14}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['kind']:<14} {r['faults']:>5} {r['dual_active']:>11} "
            f"{fmt(r['converge_median_s']):>12} {fmt(r['converge_max_s']):>6} "
            f"{r['over_goal']:>5} {r['not_converged']:>5} {r['groups_not_running']:>11} "
            f"{fmt(r['client_gap_max_s']):>14}"
        )
    return "\n".join(lines) + "\n"


def to_json(results: Sequence[FaultResult], settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "settings": settings,
        "summary": summarize(results),
        "faults": [asdict(r) for r in results],
    }
