"""Property tests: the scheduler's rules hold for arbitrary small clusters."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controller.scheduler import Decision, DecisionStatus, Failure, Group, Move, NodeState, schedule
from tests.unit.controller.scheduler.clusters import NOW

NODE_NAMES = ("n0", "n1", "n2", "n3")
PROFILE = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Case:
    groups: list[Group]
    nodes: list[NodeState]
    failures: list[Failure]
    current: dict[str, str | None]

    def run(self) -> dict[str, Decision]:
        return schedule(
            self.groups, self.nodes, failures=self.failures, current=self.current, now=NOW
        )


@st.composite
def node_states(draw: st.DrawFn) -> list[NodeState]:
    count = draw(st.sampled_from([1, 2, 3, 3, 4, 4]))
    states = []
    for name in NODE_NAMES[:count]:
        kind = draw(st.sampled_from(["up"] * 5 + ["dead", "standby", "fencing"]))
        states.append(
            NodeState(
                name,
                alive=kind in ("up", "standby"),
                standby=kind == "standby",
                fenced_pending=kind == "fencing",
            )
        )
    return states


@st.composite
def group_fields(draw: st.DrawFn, name: str) -> Group:
    listed = draw(st.lists(st.sampled_from(NODE_NAMES), unique=True, max_size=4))
    scores = tuple((node, draw(st.sampled_from([-10, 0, 10, 50, 100]))) for node in listed)
    move = None
    if draw(st.integers(0, 4)) == 0:
        until = draw(st.sampled_from([None, NOW - 1, NOW + 30]))
        move = Move(draw(st.sampled_from([*NODE_NAMES, "gone"])), until)
    return Group(
        name,
        nodes=scores,
        restricted=draw(st.booleans()),
        stickiness=draw(st.sampled_from([0, 0, 10, 100])),
        migration_threshold=draw(st.integers(1, 3)),
        failure_timeout=draw(st.sampled_from([None, 60.0])),
        enabled=draw(st.integers(0, 7)) > 0,
        move_to=move,
    )


def _subset(draw: st.DrawFn, pool: list[str], chance: int) -> tuple[str, ...]:
    return tuple(name for name in pool if draw(st.integers(0, chance)) == 0)


@st.composite
def cases(draw: st.DrawFn, mode: str = "generic") -> Case:
    """Groups g0..gN in contiguous chunks. "generic": chunks are colocation sets and
    antiColocate points across chunks. "cliques": chunks are anti-colocated cliques, no
    colocation. "free": no colocation or anti-colocation at all. dependsOn only points to
    lower indexes, so specs are always valid."""
    cliques = mode == "cliques"
    nodes = draw(node_states())
    count = draw(st.integers(1, 6))
    names = [f"g{i}" for i in range(count)]
    chunk_of: list[int] = []
    chunk = 0
    for i in range(count):
        if i and draw(st.integers(0, 2 if cliques else 3)) == 0:
            chunk += 1
        elif i:
            chunk += 0 if cliques or draw(st.booleans()) else 1
        chunk_of.append(chunk)
    groups: list[Group] = []
    for i, name in enumerate(names):
        group = draw(group_fields(name))
        same = [names[j] for j in range(i) if chunk_of[j] == chunk_of[i]]
        others = [names[j] for j in range(count) if chunk_of[j] != chunk_of[i]]
        depends_on = _subset(draw, names[:i], 5 if cliques else 3)
        if mode == "free":
            group = replace(group, depends_on=depends_on)
        elif cliques:
            # Replicas of one service usually share one placement: that is where they clash.
            first = next((g for g in groups if g.name in same), None)
            nodes_spec = first.nodes if first and draw(st.booleans()) else group.nodes
            group = replace(
                group,
                nodes=nodes_spec,
                depends_on=depends_on,
                anti_colocate=tuple(same),
                restricted=group.restricted and draw(st.booleans()),
            )
        else:
            colocate = (draw(st.sampled_from(same)),) if same else ()
            anti = _subset(draw, others, 4)
            group = replace(group, depends_on=depends_on, colocate=colocate, anti_colocate=anti)
        groups.append(group)
    pool = [*NODE_NAMES[: len(nodes)], "gone"]
    failures = [
        Failure(
            draw(st.sampled_from(names)),
            draw(st.sampled_from(pool)),
            draw(st.integers(0, 3)),
            NOW - draw(st.sampled_from([0, 30, 61, 3600])),
        )
        for _ in range(draw(st.integers(0, 4)))
    ]
    current = {name: draw(st.sampled_from([None, *pool, *pool])) for name in names}
    return Case(groups, nodes, failures, current)


def eligible(case: Case, group: Group, node: str) -> bool:
    """Written independently of the scheduler's own scoring module."""
    state = next((s for s in case.nodes if s.name == node), None)
    if state is None or not state.alive or state.standby or state.fenced_pending:
        return False
    if group.restricted and node not in dict(group.nodes):
        return False
    recent = sum(
        f.count
        for f in case.failures
        if f.group == group.name
        and f.node == node
        and (group.failure_timeout is None or NOW - f.last_failure_time < group.failure_timeout)
    )
    return recent < group.migration_threshold


def lost_node(case: Case, name: str) -> str | None:
    node = case.current.get(name)
    return node if any(s.name == node and s.fenced_pending for s in case.nodes) else None


@st.composite
def permuted(draw: st.DrawFn, case: Case) -> Case:
    def shuffle(items: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(draw(st.permutations(items)))

    groups = [
        replace(
            g,
            nodes=tuple(draw(st.permutations(g.nodes))),
            depends_on=shuffle(g.depends_on),
            colocate=shuffle(g.colocate),
            anti_colocate=shuffle(g.anti_colocate),
        )
        for g in draw(st.permutations(case.groups))
    ]
    current = dict(draw(st.permutations(list(case.current.items()))))
    return Case(
        groups,
        list(draw(st.permutations(case.nodes))),
        list(draw(st.permutations(case.failures))),
        current,
    )


@PROFILE
@given(st.data())
def test_deterministic_and_independent_of_input_order(data: st.DataObject) -> None:
    case = data.draw(cases(data.draw(st.sampled_from(["generic", "cliques", "free"]))))
    first = case.run()
    assert case.run() == first
    assert data.draw(permuted(case)).run() == first


@PROFILE
@given(cases())
def test_every_rule_holds_for_every_placed_group(case: Case) -> None:
    result = case.run()
    by_name = {g.name: g for g in case.groups}
    assert set(result) == set(by_name)
    for name, placement in result.items():
        group = by_name[name]
        assert placement.reason
        node = placement.runs_on
        if not group.enabled:
            assert placement.status is DecisionStatus.UNPLACED
        if node is None:
            continue
        # never on a dead, standby, fencing, excluded or banned node
        assert eligible(case, group, node), placement
        # dependencies are placed (anywhere) before a dependent is
        for dep in group.depends_on:
            event("placed group with a dependency")
            assert result[dep].runs_on is not None, (name, dep)
        # colocation targets run on the same node
        for target in group.colocate:
            event("placed colocated group")
            assert result[target].runs_on == node, (name, target)


@PROFILE
@given(cases())
def test_groups_on_a_lost_unfenced_node_never_start_elsewhere(case: Case) -> None:
    result = case.run()
    for name, placement in result.items():
        lost = lost_node(case, name)
        if lost is not None:
            event("group on a lost unfenced node")
            assert placement.runs_on is None
            assert placement.node in (None, lost)
            if placement.status is DecisionStatus.AWAITING_FENCING:
                assert placement.reason == f"not moved: waiting until {lost} is declared lost"


def _free_standing(case: Case, group: Group) -> bool:
    return not (
        group.colocate
        or group.anti_colocate
        or any(group.name in g.colocate or group.name in g.anti_colocate for g in case.groups)
    )


@PROFILE
@given(cases("free"))
def test_sticky_groups_stay_unless_outscored(case: Case) -> None:
    result = case.run()
    for group in case.groups:
        here = case.current.get(group.name)
        move = group.move_to
        if (
            not group.enabled
            or group.stickiness == 0
            or here is None
            or not eligible(case, group, here)
            or (move is not None and move.active(NOW))
            or not _free_standing(case, group)
            or any(result[dep].runs_on is None for dep in group.depends_on)
        ):
            continue
        best_elsewhere = max(
            (group.score_on(s.name) for s in case.nodes if eligible(case, group, s.name)),
            default=0,
        )
        if group.score_on(here) + group.stickiness >= best_elsewhere:
            event(
                "sticky group checked"
                + (" (stickiness decisive)" if group.score_on(here) < best_elsewhere else "")
            )
            assert result[group.name].runs_on == here, result[group.name]


@PROFILE
@given(cases("free"))
def test_a_free_standing_group_with_an_eligible_node_is_placed(case: Case) -> None:
    result = case.run()
    for group in case.groups:
        if (
            group.enabled
            and _free_standing(case, group)
            and not group.depends_on
            and lost_node(case, group.name) is None
            and any(eligible(case, group, s.name) for s in case.nodes)
        ):
            event("free-standing placeable group checked")
            assert result[group.name].runs_on is not None, result[group.name]


@PROFILE
@given(cases("cliques"))
def test_anti_colocated_groups_never_share_while_nodes_suffice(case: Case) -> None:
    result = case.run()
    by_name = {g.name: g for g in case.groups}
    seen: set[str] = set()
    for group in case.groups:
        if group.name in seen:
            continue
        clique = {group.name, *group.anti_colocate}
        clique |= {g.name for g in case.groups if clique & set(g.anti_colocate)}
        seen |= clique
        common = [
            s.name for s in case.nodes if all(eligible(case, by_name[m], s.name) for m in clique)
        ]
        if len(common) < len(clique):
            continue
        hosts = [result[m].runs_on for m in sorted(clique) if result[m].runs_on is not None]
        if len(hosts) > 1:
            event("anti-colocated clique with 2+ placed members checked")
        assert len(hosts) == len(set(hosts)), {m: result[m] for m in clique}


@PROFILE
@given(st.data())
def test_placement_is_a_fixed_point(data: st.DataObject) -> None:
    # Applying the result and scheduling again moves nothing: no flapping between cycles.
    case = data.draw(cases(data.draw(st.sampled_from(["generic", "cliques", "free"]))))
    first = case.run()
    again = replace(case, current={name: p.node for name, p in first.items()}).run()
    assert {n: p.node for n, p in again.items()} == {n: p.node for n, p in first.items()}
