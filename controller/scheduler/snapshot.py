"""One immutable, canonically ordered view of the scheduler's input.

Everything is keyed and sorted by name here, so nothing downstream can depend on the order
the caller listed groups, nodes or failures in. Spec-level contradictions (duplicate names,
dependency cycles, a group both colocated and anti-colocated with another) are rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.scheduler.model import Failure, Group, NodeState, SchedulerInputError, VolumeFacts
from controller.scheduler.order import DependencyCycleError, start_order, topological
from controller.scheduler.scoring import Ineligible, failure_counts, verdict


@dataclass(frozen=True)
class Snapshot:
    groups: dict[str, Group]
    nodes: dict[str, NodeState]
    current: dict[str, str | None]
    now: float
    # group -> node -> why not (None: eligible), for every cluster member
    verdicts: dict[str, dict[str, Ineligible | None]]
    # symmetric: a group avoids every group that names it and every group it names
    anti: dict[str, tuple[str, ...]]
    # colocation sets in processing order (what they depend on comes first)
    bundles: tuple[tuple[str, ...], ...]

    def eligible(self, group: str) -> list[str]:
        return [node for node, why in self.verdicts[group].items() if why is None]

    def awaiting_fencing(self, group: str) -> str | None:
        """The lost, unfenced node ``group`` was running on, if any."""
        node = self.current.get(group)
        if node is None:
            return None
        state = self.nodes.get(node)
        return node if state is not None and state.fenced_pending else None

    def waits_for(self, node: str) -> str:
        """What groups held on `node` wait for, in words."""
        state = self.nodes.get(node)
        return state.waits_for if state is not None else "declared lost"


def _unique(items: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise SchedulerInputError(f"{what} {item!r} is given twice; names must be unique")
        seen.add(item)


def _colocation_sets(groups: Mapping[str, Group]) -> list[tuple[str, ...]]:
    parent = {name: name for name in groups}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for name, group in groups.items():
        for other in group.colocate:
            if other in groups:
                a, b = root(name), root(other)
                parent[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for name in groups:
        members.setdefault(root(name), []).append(name)
    return [tuple(sorted(names)) for names in members.values()]


def _check_anti_within_sets(
    sets: list[tuple[str, ...]], anti: Mapping[str, tuple[str, ...]]
) -> None:
    for names in sets:
        inside = set(names)
        for name in names:
            clash = sorted(set(anti[name]) & inside)
            if clash:
                raise SchedulerInputError(
                    f"group {name!r}: antiColocate with {clash[0]!r} contradicts colocation:"
                    f" {', '.join(names)} must share one node (through colocate); remove one"
                    " of the two constraints"
                )


def _order_sets(
    sets: list[tuple[str, ...]], groups: Mapping[str, Group]
) -> tuple[tuple[str, ...], ...]:
    label = {name: names[0] for names in sets for name in names}
    by_label = {names[0]: names for names in sets}
    before: dict[str, set[str]] = {key: set() for key in by_label}
    for name, group in groups.items():
        for dep in group.depends_on:
            if dep in groups and label[dep] != label[name]:
                before[label[name]].add(label[dep])
    try:
        ordered = topological(by_label, before)
    except DependencyCycleError as err:
        described = [
            "{" + ", ".join(by_label[key]) + "}" if len(by_label[key]) > 1 else key
            for key in err.cycle
        ]
        raise DependencyCycleError(described, "dependsOn through colocate") from None
    return tuple(by_label[key] for key in ordered)


def build(
    groups: Iterable[Group],
    nodes: Iterable[NodeState],
    failures: Iterable[Failure],
    current: Mapping[str, str | None],
    now: float,
    volumes: Mapping[str, VolumeFacts] | None = None,
) -> Snapshot:
    group_list = list(groups)
    node_list = list(nodes)
    _unique((g.name for g in group_list), "group")
    _unique((n.name for n in node_list), "node")
    by_group = {g.name: g for g in sorted(group_list, key=lambda g: g.name)}
    by_node = {n.name: n for n in sorted(node_list, key=lambda n: n.name)}
    start_order(by_group.values())  # names a plain dependsOn cycle before anything else

    anti: dict[str, set[str]] = {name: set() for name in by_group}
    for name, group in by_group.items():
        for other in group.anti_colocate:
            if other in by_group:
                anti[name].add(other)
                anti[other].add(name)
    anti_sorted = {name: tuple(sorted(others)) for name, others in anti.items()}

    sets = _colocation_sets(by_group)
    _check_anti_within_sets(sets, anti_sorted)
    bundles = _order_sets(sets, by_group)

    counts = failure_counts(failures, by_group, now)
    verdicts = {
        name: {
            node: verdict(group, node, by_node, counts, volumes or {}, current.get(name))
            for node in by_node
        }
        for name, group in by_group.items()
    }
    return Snapshot(
        groups=by_group,
        nodes=by_node,
        current={name: current.get(name) for name in by_group},
        now=now,
        verdicts=verdicts,
        anti=anti_sorted,
        bundles=bundles,
    )


def validate(groups: Iterable[Group]) -> None:
    """Raise SchedulerInputError if the group specs contradict each other (for ``ha apply``)."""
    build(groups, (), (), {}, 0.0)
