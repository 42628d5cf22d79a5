"""The events' reasons are a closed vocabulary (controller/api/events.py): make_event
refuses any other, every reason written anywhere in the code is in it, and docs/events.md
documents exactly those."""

from __future__ import annotations

import ast
import re

import pytest

from controller.api.events import REASONS, unknown_reasons
from controller.store.objects import make_event
from tests.paths import REPO


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="'Moved' is not in controller/api/events.py"):
        make_event("ResourceGroup", "web", "Moved", "")
    assert unknown_reasons(["Placed", "Moved"]) == ["Moved"]


def _literal_reasons() -> set[str]:
    """Reasons passed as string literals to make_event (third argument), and the string
    constants of conditional expressions there (`"Placed" if ... else "NotPlaced"`)."""
    found: set[str] = set()
    for folder in ("controller", "nodeagent", "blockrepl", "lab"):
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call) and getattr(node.func, "id", "") == "make_event"
                ):
                    continue
                if len(node.args) < 3:
                    continue
                for sub in ast.walk(node.args[2]):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        found.add(sub.value)
    return found


def test_every_reason_written_in_the_code_is_in_the_vocabulary() -> None:
    found = _literal_reasons()
    assert {"Placed", "FenceVerified", "FailuresCleared"} <= found  # the walk finds them
    assert unknown_reasons(sorted(found)) == []


def test_docs_events_md_documents_exactly_the_vocabulary() -> None:
    text = (REPO / "docs" / "events.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE))
    assert documented == set(REASONS)
