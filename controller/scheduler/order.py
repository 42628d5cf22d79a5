"""Dependency order: start groups after what they depend on, stop them in reverse."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from controller.scheduler.model import Group, SchedulerInputError


class DependencyCycleError(SchedulerInputError):
    """``dependsOn`` (possibly together with colocation) forms a cycle; names the cycle."""

    def __init__(self, cycle: list[str], what: str = "dependsOn") -> None:
        self.cycle = cycle
        path = " -> ".join([*cycle, cycle[0]])
        super().__init__(
            f"{what} cycle: {path} (each depends on the next); remove one of these"
            " dependencies so a start order exists"
        )


def topological(items: Iterable[str], before: Mapping[str, Iterable[str]]) -> list[str]:
    """Order ``items`` so each comes after everything in ``before[item]``.

    Ties are broken by name so the result never depends on input order. Entries of
    ``before`` naming unknown items are ignored (a missing dependency is a placement
    matter, not an ordering one). Raises DependencyCycleError naming one cycle.
    """
    names = sorted(set(items))
    known = set(names)
    prereqs = {name: sorted(set(before.get(name, ())) & known) for name in names}
    dependents: dict[str, list[str]] = {name: [] for name in names}
    for name, reqs in prereqs.items():
        for req in reqs:
            dependents[req].append(name)
    waiting = {name: len(reqs) for name, reqs in prereqs.items()}
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        ordered.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(ordered) != len(names):
        raise DependencyCycleError(_find_cycle(prereqs, set(names) - set(ordered)))
    return ordered


def _find_cycle(prereqs: Mapping[str, list[str]], stuck: set[str]) -> list[str]:
    # Every stuck item has a stuck prerequisite, so walking prerequisites must revisit one.
    start = min(stuck)
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = min(req for req in prereqs[node] if req in stuck)
    cycle = path[seen[node] :]
    # Report it in dependency direction (a depends on b depends on ...), rotated to its
    # smallest name so the message is stable.
    pivot = cycle.index(min(cycle))
    return cycle[pivot:] + cycle[:pivot]


def start_order(groups: Iterable[Group]) -> list[str]:
    """Group names in an order that starts every group after its ``dependsOn`` groups."""
    by_name = {group.name: group for group in groups}
    return topological(by_name, {name: group.depends_on for name, group in by_name.items()})


def stop_order(groups: Iterable[Group]) -> list[str]:
    """The reverse of ``start_order``: dependents stop before what they depend on."""
    return list(reversed(start_order(groups)))
