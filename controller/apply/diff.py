"""Text diffs of a plan, as ``ha diff`` and ``ha apply --dry-run -o diff`` print them."""

from __future__ import annotations

import difflib
from typing import Any

import yaml

from controller.apply.plan import Change, Plan

# Fields Vigil manages: a diff shows what the user changes, not bookkeeping.
_MANAGED = ("uid", "generation", "creationTimestamp", "resourceVersion")


def _comparable(doc: dict[str, Any] | None) -> list[str]:
    if doc is None:
        return []
    data = dict(doc)
    data["metadata"] = {k: v for k, v in doc["metadata"].items() if k not in _MANAGED}
    return yaml.safe_dump(data, sort_keys=False).splitlines(keepends=True)


def change_diff(change: Change) -> str:
    # Headers as git writes them: an object created or deleted diffs against /dev/null.
    name = f"{change.kind}/{change.name}"
    before = f"a/{name}" if change.before is not None else "/dev/null"
    after = f"b/{name}" if change.after is not None else "/dev/null"
    lines = difflib.unified_diff(
        _comparable(change.before), _comparable(change.after), before, after
    )
    return "".join(lines)


def plan_diff(plan: Plan) -> str:
    return "".join(change_diff(c) for c in plan.writes)
