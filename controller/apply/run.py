"""Carrying out an apply or a delete against the store: read, plan, validate, commit once.

Every spec write also moves a guard key with a compare-and-swap. Validation
looks at the whole state (is the volume a group mounts still there? is the VIP
still free?), so two applies that each pass alone must not both land unless
one saw the other: the guard makes the later one re-read and re-validate. A
retry happens only when none of its own objects changed; an object changed by
someone else since it was read is a conflict for the user to look at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.api.availability import unavailable
from controller.api.decode import decode
from controller.api.errors import ConflictingChangeError
from controller.apply.plan import (
    Applied,
    Change,
    Plan,
    describe_findings,
    new_findings,
    plan_apply,
    plan_delete,
)
from controller.apply.validation import Finding, ObjectKey
from controller.store import keys
from controller.store.base import Delete, Op, Put, Store
from controller.store.errors import ConflictError
from controller.store.objects import Event, ObjectStore, StoredObject, make_event

GUARD_KEY = keys.SPECS_GUARD
_Planner = Callable[[dict[ObjectKey, StoredObject]], Plan]
MAX_ATTEMPTS = 8

_REASONS = {"create": "Created", "configure": "Updated", "delete": "Deleted"}


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    revision: int | None  # store revision of the commit; None when nothing was written
    attempts: int


async def read_state(objects: ObjectStore) -> tuple[dict[ObjectKey, StoredObject], int]:
    """Every stored object, and the guard's revision read before them."""
    guard = await objects.store.get(GUARD_KEY)
    items, _ = await objects.list_objects()
    return {item.key: item for item in items}, guard.mod_revision if guard else 0


def _spec_ops(change: Change) -> list[Op]:
    spec_key = keys.spec_key(change.kind, change.name)
    if change.after is None:
        # The status goes with the object; it has no meaning without a spec.
        return [
            Delete(spec_key, expect_revision=change.expect_revision),
            Delete(keys.status_key(change.kind, change.name)),
        ]
    return [Put(spec_key, change.after, expect_revision=change.expect_revision)]


def _event(change: Change, actor: str) -> Event:
    generation = (change.after or change.before or {}).get("metadata", {}).get("generation")
    detail = f" (generation {generation})" if change.action != "delete" and generation else ""
    return make_event(
        change.kind,
        change.name,
        _REASONS[change.action],
        f"{change.kind} {change.name} {_REASONS[change.action].lower()} by {actor}{detail}",
    )


async def _commit(objects: ObjectStore, plan: Plan, guard_revision: int, actor: str) -> int:
    ops: list[Op] = []
    for change in plan.writes:
        ops.extend(_spec_ops(change))
    ops.append(
        Put(
            GUARD_KEY,
            {"by": actor, "time": datetime.now(UTC).isoformat(), "changes": len(plan.writes)},
            expect_revision=guard_revision,
        )
    )
    return await objects.commit_with_events(ops, [_event(c, actor) for c in plan.writes])


def _unavailable(plan: Plan) -> list[Finding]:
    """What the objects this apply creates or changes ask for and no node can do yet."""
    found = []
    for change in plan.writes:
        if change.after is not None:
            obj = decode(change.after)
            found += [Finding(obj.KIND, obj.name, problem) for problem in unavailable(obj)]
    return found


def _own_conflicts(exc: ConflictError) -> list[str]:
    return [c.describe() for c in exc.conflicts if c.key != GUARD_KEY]


async def _run(
    objects: ObjectStore,
    make_plan: _Planner,
    applied: Sequence[Applied],
    *,
    dry_run: bool,
    actor: str,
) -> ApplyResult:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        current, guard_revision = await read_state(objects)
        plan = make_plan(current)
        findings = new_findings(plan, current) + _unavailable(plan)
        if findings:
            raise describe_findings(findings, applied)
        if dry_run or not plan.writes:
            return ApplyResult(plan, None, attempt)
        try:
            revision = await _commit(objects, plan, guard_revision, actor)
        except ConflictError as exc:
            own = _own_conflicts(exc)
            if own:
                raise ConflictingChangeError(
                    "someone else changed these objects while this command ran; nothing was "
                    "changed. Look at the new state (ha get / ha diff) and run the command again:",
                    own,
                ) from None
            continue
        return ApplyResult(plan, revision, attempt)
    raise ConflictingChangeError(
        f"the cluster's specs changed under this command {MAX_ATTEMPTS} times in a row; "
        "nothing was changed: run it again"
    )


async def apply_objects(
    store: Store,
    applied: Sequence[Applied],
    *,
    cluster: str,
    dry_run: bool = False,
    actor: str = "ha apply",
) -> ApplyResult:
    objects = ObjectStore(store)

    def make_plan(current: dict[ObjectKey, StoredObject]) -> Plan:
        return plan_apply(applied, current, cluster=cluster, now=datetime.now(UTC))

    return await _run(objects, make_plan, applied, dry_run=dry_run, actor=actor)


async def delete_objects(
    store: Store,
    targets: Sequence[ObjectKey],
    *,
    dry_run: bool = False,
    missing_ok: bool = False,
    actor: str = "ha delete",
) -> ApplyResult:
    objects = ObjectStore(store)

    def make_plan(current: dict[ObjectKey, StoredObject]) -> Plan:
        return plan_delete(targets, current, missing_ok=missing_ok)

    return await _run(objects, make_plan, [], dry_run=dry_run, actor=actor)
