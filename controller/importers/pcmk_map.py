"""The Pacemaker model to Vigil: groups and lone primitives to ResourceGroups, a DRBD
promotable clone to the `volume` resource of the groups colocated with its master,
constraints to placement scores, dependsOn and colocate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.importers.names import to_name, unique
from controller.importers.pcmk_durations import duration, to_ms
from controller.importers.pcmk_fencing import import_fencing
from controller.importers.pcmk_model import INFINITY, Pacemaker, parse_score
from controller.importers.pcmk_resources import check_class, to_resource
from controller.importers.result import Document, ImportResult, Note, Where, new_document

_PROMOTED = ("master", "promoted")


@dataclass
class _Unit:
    """A future ResourceGroup: a Pacemaker group, or a primitive outside any group."""

    id: str
    members: list[str]
    where: Where
    meta: dict[str, str]
    name: str = ""
    volume: str | None = None
    scores: dict[str, int] = field(default_factory=dict)
    depends: list[str] = field(default_factory=list)
    colocate: list[str] = field(default_factory=list)
    anti: list[str] = field(default_factory=list)
    notes: list[tuple[tuple[str | int, ...], Note]] = field(default_factory=list)


def _drbd_volumes(model: Pacemaker, out: ImportResult) -> dict[str, str]:
    """Promotable clones of a DRBD agent -> volume name (both the clone and its child)."""
    volumes: dict[str, str] = {}
    for clone in model.clones.values():
        child = model.primitives.get(clone.child)
        if child is not None and child.type == "drbd" and clone.promotable:
            resource = child.params.get("drbd_resource")
            if not resource:
                raise child.where.fail(f"primitive {child.id}: no drbd_resource parameter")
            name = to_name(resource)
            if name is None:
                raise child.where.fail(f"drbd_resource {resource!r} cannot be a volume name")
            volumes[clone.id] = volumes[child.id] = name
            out.ok()
            for op in child.ops:
                out.note(
                    Note(
                        "dropped",
                        op.where,
                        f"{child.id} {op.name} {op.role or ''}".strip(),
                        "each replica reports its own state (ha get vol)",
                    )
                )
        else:
            out.note(
                Note(
                    "dropped",
                    clone.where,
                    f"clone {clone.id}",
                    "Vigil runs each group on one node; a clone running everywhere is "
                    "not imported (run it as a systemd service on every node)",
                )
            )
    return volumes


def _units(model: Pacemaker, volumes: Mapping[str, str]) -> tuple[list[_Unit], dict[str, str]]:
    units: list[_Unit] = []
    owner: dict[str, str] = {}  # resource or group id -> unit id
    cloned = {c.child for c in model.clones.values()}
    for group in model.groups.values():
        if group.id in cloned:
            continue
        units.append(_Unit(group.id, list(group.members), group.where, dict(group.meta)))
        owner[group.id] = group.id
        for member in group.members:
            owner[member] = group.id
    for p in model.primitives.values():
        if p.id in owner or p.id in cloned or p.cls == "stonith":
            continue
        units.append(_Unit(p.id, [p.id], p.where, {}))
        owner[p.id] = p.id
    return units, owner


def _constraints(
    model: Pacemaker,
    units: dict[str, _Unit],
    owner: Mapping[str, str],
    volumes: Mapping[str, str],
    nodes: Mapping[str, str],
    out: ImportResult,
) -> None:
    for c in model.colocations:
        a, b = owner.get(c.rsc), owner.get(c.with_rsc)
        vol_a, vol_b = volumes.get(c.rsc), volumes.get(c.with_rsc)
        if (vol_a or vol_b) and (a or b):
            unit = units[a or b or ""]
            role = (c.with_role if vol_b else c.rsc_role) or ""
            if c.score >= INFINITY and role.lower() in _PROMOTED:
                unit.volume = vol_a or vol_b
                out.ok()
            else:
                unit.notes.append(
                    (
                        (),
                        Note(
                            "dropped",
                            c.where,
                            f"colocation {c.id}",
                            "only `INFINITY with the DRBD master` translates "
                            "(the group's volume resource)",
                        ),
                    )
                )
            continue
        if a is None or b is None:
            out.note(Note("dropped", c.where, f"colocation {c.id}", "names a dropped resource"))
            continue
        if a == b:
            out.ok()  # members of one group run together anyway
        elif c.score >= INFINITY:
            units[a].colocate.append(b)
            out.ok()
        elif c.score <= -INFINITY:
            units[a].anti.append(b)
            out.ok()
        else:
            units[a].notes.append(
                (
                    (),
                    Note(
                        "dropped",
                        c.where,
                        f"colocation {c.id} score {c.score}",
                        "Vigil colocates only mandatorily (INFINITY or -INFINITY)",
                    ),
                )
            )
    for o in model.orders:
        first, then = owner.get(o.first), owner.get(o.then)
        if o.first in volumes and then is not None:
            out.ok()  # the volume resource comes first in its group
            continue
        if first is None or then is None:
            out.note(Note("dropped", o.where, f"order {o.id}", "names a dropped resource"))
        elif first == then:
            members = units[first].members
            ok = o.first in members and o.then in members
            if ok and members.index(o.first) < members.index(o.then):
                out.ok()
            else:
                units[first].notes.append(
                    (
                        (),
                        Note(
                            "approximated",
                            o.where,
                            f"order {o.id}",
                            "a group starts in its listed order",
                        ),
                    )
                )
        elif not o.mandatory:
            units[then].notes.append(
                ((), Note("dropped", o.where, f"order {o.id}", "advisory orders are not kept"))
            )
        else:
            units[then].depends.append(first)
            out.ok()
    for loc in model.locations:
        unit_id = owner.get(loc.rsc)
        targets = (
            [unit_id]
            if unit_id
            else [u.id for u in units.values() if u.volume and u.volume == volumes.get(loc.rsc)]
        )
        if not targets:
            out.note(Note("dropped", loc.where, f"location {loc.id}", "names a dropped resource"))
            continue
        if loc.node is None or loc.node not in nodes:
            raise loc.where.fail(f"location {loc.id}: {loc.node!r} is not a node of the cluster")
        for target in targets:
            unit = units[target]
            node = nodes[loc.node]
            unit.scores[node] = max(unit.scores.get(node, -INFINITY), loc.score)
        out.ok()


def _stickiness(model: Pacemaker, unit: _Unit, meta: Mapping[str, str]) -> int:
    value = meta.get("resource-stickiness")
    where = unit.where
    if value is None and "resource-stickiness" in model.rsc_defaults:
        value, where = model.rsc_defaults["resource-stickiness"]
    if value is None and "default-resource-stickiness" in model.properties:
        value, where = model.properties["default-resource-stickiness"]
    if value is None:
        return 0  # Pacemaker's default: fail back to the best node
    return max(0, parse_score(value, where))


def import_resources(
    model: Pacemaker, nodes: Mapping[str, str], devices: Mapping[str, str], out: ImportResult
) -> None:
    for p in model.primitives.values():
        check_class(p)
    import_fencing(model, nodes, out)
    volumes = _drbd_volumes(model, out)
    unit_list, owner = _units(model, volumes)
    units = {u.id: u for u in unit_list}
    _constraints(model, units, owner, volumes, nodes, out)
    taken = {d.name for d in out.documents if d.kind == "ResourceGroup"}
    for unit in unit_list:
        unit.name = unique(to_name(unit.id) or "group", taken)
    for unit in unit_list:
        _emit(model, unit, units, nodes, {**devices}, out)


def _emit(
    model: Pacemaker,
    unit: _Unit,
    units: Mapping[str, _Unit],
    nodes: Mapping[str, str],
    devices: dict[str, str],
    out: ImportResult,
) -> None:
    notes = list(unit.notes)
    resources: list[dict[str, Any]] = []
    if unit.volume:
        resources.append({"volume": {"name": unit.volume}})
    meta = dict(unit.meta)
    for member in unit.members:
        p = model.primitives[member]
        meta = {**p.meta, **meta}
        index = len(resources)
        pending: list[Note] = []
        resource = to_resource(p, unit.volume, devices, pending.append)
        if resource is not None:
            resources.append(resource)
            out.ok()
        for note in pending:
            path: tuple[str | int, ...] = ("spec", "resources", index) if resource else ()
            notes.append((path, note))
    if not resources:
        for _, note in notes:
            out.note(note)
        out.note(Note("dropped", unit.where, unit.id, "nothing in it runs in Vigil"))
        return
    spec: dict[str, Any] = {}
    if meta.get("target-role", "").lower() == "stopped":
        spec["enabled"] = False
    spec["placement"] = {
        "nodes": [
            {"name": n, "score": unit.scores.get(n, 0)}
            for n in nodes.values()
            if unit.scores.get(n, 0) > -INFINITY
        ],
        "restricted": True,
        "stickiness": min(_stickiness(model, unit, meta), INFINITY),
    }
    for key, field_name in (
        ("migration-threshold", "migrationThreshold"),
        ("failure-timeout", "failureTimeout"),
    ):
        if key in meta:
            value = meta[key]
            if field_name == "migrationThreshold":
                number = parse_score(value, unit.where)
                spec[field_name] = max(1, min(number, INFINITY))
            else:
                spec[field_name] = duration(to_ms(value, unit.where, key))
    for kind, refs in (
        ("dependsOn", unit.depends),
        ("colocate", unit.colocate),
        ("antiColocate", unit.anti),
    ):
        if refs:
            spec[kind] = sorted({units[r].name for r in refs})
    spec["resources"] = resources
    for key in sorted(
        set(meta) - {"target-role", "resource-stickiness", "migration-threshold", "failure-timeout"}
    ):
        notes.append(
            (
                ("spec",),
                Note(
                    "dropped",
                    unit.where,
                    f"{unit.id} meta {key}={meta[key]}",
                    "no Vigil counterpart",
                ),
            )
        )
    doc: Document = new_document("ResourceGroup", unit.name, spec, unit.where)
    for path, note in notes:
        doc.comment(path, note)
    out.documents.append(doc)
