"""Pure planning of an apply or a delete: what changes, with which preconditions.

Nothing here touches the store; given what was read and what the user sent, it
returns the writes and their compare-and-swap revisions, or the reasons why the
change must be refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from controller.api.cluster import Cluster
from controller.api.decode import Problem, SchemaError, decode
from controller.api.errors import ConflictingChangeError, InputError
from controller.api.manifest import Document
from controller.api.meta import Object
from controller.api.node import Node
from controller.api.registry import kind_order
from controller.apply.intent import keep_intent
from controller.apply.validation import Finding, ObjectKey, validate_state
from controller.store.objects import StoredObject, spec_document

Action = Literal["create", "configure", "unchanged", "delete"]


@dataclass(frozen=True)
class Applied:
    """One object the user sent, and where it came from (None when built by a command)."""

    obj: Object
    document: Document | None = None

    @property
    def key(self) -> ObjectKey:
        return (self.obj.KIND, self.obj.name)

    def where(self, path: tuple[str | int, ...] = ()) -> str:
        label = f"({self.obj.KIND} {self.obj.name})"
        return f"{self.document.where(path)} {label}" if self.document else label


@dataclass(frozen=True)
class Change:
    action: Action
    kind: str
    name: str
    before: dict[str, Any] | None  # spec document as stored, None when absent
    after: dict[str, Any] | None  # spec document to store, None for a delete
    expect_revision: int  # 0: must not exist yet
    kept: tuple[str, ...] = ()  # operator intent the apply kept (controller/apply/intent.py)

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)

    @property
    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.action != "unchanged"]


def _strip_meta(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc["metadata"]
    return {"labels": meta.get("labels", {}), "annotations": meta.get("annotations", {})}


def decode_documents(documents: Sequence[Document]) -> list[Applied]:
    """Typed objects from documents; every schema problem of every document, or nothing."""
    applied: list[Applied] = []
    messages: list[str] = []
    for document in documents:
        data = dict(document.data)
        # As with kubectl, status in a manifest is ignored: agents own it. This lets
        # `ha get -o yaml > f; ha apply -f f` round-trip.
        data.pop("status", None)
        try:
            obj = decode(data)
        except SchemaError as exc:
            label = _label(data)
            for problem in exc.problems:
                messages.append(
                    f"{document.where(problem.path)}{label}: {problem.dotted}: {problem.message}"
                )
            continue
        applied.append(Applied(obj, document))
    if messages:
        raise InputError(_summary(messages), messages)
    return applied


def _label(data: Mapping[str, Any]) -> str:
    kind = data.get("kind")
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(kind, str) and isinstance(name, str):
        return f" ({kind} {name})"
    return ""


def _summary(messages: list[str]) -> str:
    count = len(messages)
    return f"{count} problem{'s' if count > 1 else ''} found; nothing was changed:"


def _check_duplicates(applied: Sequence[Applied]) -> None:
    first: dict[ObjectKey, Applied] = {}
    messages = []
    for item in applied:
        if item.key in first:
            messages.append(
                f"{item.where(('metadata', 'name'))}: {item.obj.KIND} {item.obj.name!r} is "
                f"given twice in this apply (first at {first[item.key].where()}); keep one"
            )
        first.setdefault(item.key, item)
    if messages:
        raise InputError(_summary(messages), messages)


def _check_cluster_name(applied: Sequence[Applied], cluster: str) -> None:
    for item in applied:
        if isinstance(item.obj, Cluster) and item.obj.name != cluster:
            raise InputError(
                f"{item.where(('metadata', 'name'))}: this Cluster is named "
                f"{item.obj.name!r} but the store is for cluster {cluster!r}; point ha at the "
                f"right cluster with --cluster {item.obj.name} (or VIGIL_CLUSTER, or `cluster:` "
                "in the client config)"
            )


def _check_preconditions(item: Applied, current: StoredObject | None) -> None:
    wanted = item.obj.metadata.resource_version
    if wanted is not None:
        if current is None:
            raise ConflictingChangeError(
                f"{item.where()}: resourceVersion {wanted} was given but the object no longer "
                "exists; drop resourceVersion to create it anew"
            )
        if int(wanted) != current.spec_revision:
            raise ConflictingChangeError(
                f"{item.where()}: changed since resourceVersion {wanted} (now "
                f"{current.spec_revision}); fetch it again with `ha get "
                f"{item.obj.KIND.lower()} {item.obj.name} -o yaml` and redo your edit"
            )
    uid = item.obj.metadata.uid
    if uid is not None and current is not None and current.obj.metadata.uid != uid:
        raise ConflictingChangeError(
            f"{item.where()}: uid {uid} was given but the stored object is "
            f"{current.obj.metadata.uid} (deleted and created again); drop uid to apply anyway"
        )


def plan_apply(
    applied: Sequence[Applied],
    current: Mapping[ObjectKey, StoredObject],
    *,
    cluster: str,
    now: datetime,
    new_uid: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Plan:
    _check_duplicates(applied)
    _check_cluster_name(applied, cluster)
    plan = Plan()
    for item in sorted(applied, key=lambda a: (kind_order(a.obj.KIND), a.obj.name)):
        stored = current.get(item.key)
        _check_preconditions(item, stored)
        meta = item.obj.metadata
        if stored is None:
            updated = meta.model_copy(
                update={
                    "uid": new_uid(),
                    "generation": 1,
                    "creation_timestamp": now,
                    "resource_version": None,
                }
            )
            after = spec_document(item.obj.model_copy(update={"metadata": updated}))
            plan.changes.append(Change("create", item.obj.KIND, item.obj.name, None, after, 0))
            continue
        before = spec_document(stored.obj)
        old_meta = stored.obj.metadata
        document = item.document.data if item.document is not None else None
        obj, kept = (
            keep_intent(item.obj, document, stored.obj, now)
            if item.document is not None
            else (item.obj, [])  # a command (ha move, ha standby) says what it wants
        )
        candidate = spec_document(obj)
        spec_changed = candidate.get("spec") != before.get("spec")
        generation = (old_meta.generation or 1) + (1 if spec_changed else 0)
        updated = meta.model_copy(
            update={
                "uid": old_meta.uid,
                "generation": generation,
                "creation_timestamp": old_meta.creation_timestamp,
                "resource_version": None,
            }
        )
        after = spec_document(obj.model_copy(update={"metadata": updated}))
        unchanged = not spec_changed and _strip_meta(after) == _strip_meta(before)
        plan.changes.append(
            Change(
                "unchanged" if unchanged else "configure",
                item.obj.KIND,
                item.obj.name,
                before,
                before if unchanged else after,
                stored.spec_revision,
                tuple(kept),
            )
        )
    plan.changes.extend(_former_members(applied, current))
    return plan


def _former_members(
    applied: Sequence[Applied], current: Mapping[ObjectKey, StoredObject]
) -> list[Change]:
    """A Cluster change that drops members deletes their Node objects too (each agent
    registers its own): they would otherwise name nodes the cluster no longer has. A Node
    that carries an operator's intent (standby) is left for the user, and validation says so."""
    clusters = [a.obj for a in applied if isinstance(a.obj, Cluster)]
    if not clusters:
        return []
    members = {n.name for n in clusters[0].spec.nodes}
    named = {a.key for a in applied}
    return [
        Change("delete", "Node", name, spec_document(stored.obj), None, stored.spec_revision)
        for (kind, name), stored in sorted(current.items())
        if kind == "Node"
        and name not in members
        and (kind, name) not in named
        and isinstance(stored.obj, Node)
        and not stored.obj.spec.standby
    ]


def plan_delete(
    targets: Sequence[ObjectKey], current: Mapping[ObjectKey, StoredObject], *, missing_ok: bool
) -> Plan:
    plan = Plan()
    missing = [t for t in targets if t not in current]
    if missing and not missing_ok:
        from controller.api.errors import NotFoundError

        names = ", ".join(f"{kind.lower()}/{name}" for kind, name in missing)
        raise NotFoundError(
            f"not found: {names}; nothing was deleted (use --ignore-not-found to skip missing)"
        )
    seen: set[ObjectKey] = set()
    for key in sorted(targets, key=lambda k: (-kind_order(k[0]), k[1])):
        if key in seen or key not in current:
            continue
        seen.add(key)
        stored = current[key]
        plan.changes.append(
            Change("delete", key[0], key[1], spec_document(stored.obj), None, stored.spec_revision)
        )
    return plan


def resulting_state(
    plan: Plan, current: Mapping[ObjectKey, StoredObject]
) -> dict[ObjectKey, Object]:
    state: dict[ObjectKey, Object] = {key: s.obj for key, s in current.items()}
    for change in plan.writes:
        key = (change.kind, change.name)
        if change.after is None:
            state.pop(key, None)
        else:
            state[key] = decode(change.after)
    return state


def new_findings(plan: Plan, current: Mapping[ObjectKey, StoredObject]) -> list[Finding]:
    """Problems the change would introduce; problems already in the store are not its fault."""
    before = set(validate_state({k: s.obj for k, s in current.items()}))
    return [f for f in validate_state(resulting_state(plan, current)) if f not in before]


def describe_findings(findings: Sequence[Finding], applied: Sequence[Applied]) -> InputError:
    by_key = {a.key: a for a in applied}
    messages = []
    # What the user brought first, where their file can show it; stored objects after.
    for finding in sorted(findings, key=lambda f: f.key not in by_key):
        item = by_key.get(finding.key)
        problem: Problem = finding.problem
        where = item.where(problem.path) if item else f"(stored {finding.kind} {finding.name})"
        messages.append(f"{where}: {problem.dotted}: {problem.message}")
    return InputError(_summary(messages), messages)
