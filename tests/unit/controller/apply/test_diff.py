"""`ha diff`: what the user changes, as a unified diff, without Vigil's bookkeeping."""

from __future__ import annotations

from typing import Any

from controller.apply.diff import change_diff, plan_diff
from controller.apply.plan import Change, Plan


def doc(stickiness: int, generation: int) -> dict[str, Any]:
    return {
        "apiVersion": "ha.vigil.dev/v1alpha1",
        "kind": "ResourceGroup",
        "metadata": {"name": "pg", "uid": "u-1", "generation": generation},
        "spec": {"placement": {"stickiness": stickiness}},
    }


def test_a_configure_shows_only_the_changed_field() -> None:
    change = Change("configure", "ResourceGroup", "pg", doc(100, 1), doc(0, 2), 7)
    text = change_diff(change)
    assert text.startswith("--- a/ResourceGroup/pg\n+++ b/ResourceGroup/pg\n")
    changed = [line for line in text.splitlines() if line[:1] in "+-" and line[:3] not in "---+++"]
    assert changed == ["-    stickiness: 100", "+    stickiness: 0"]
    assert "generation" not in text and "uid" not in text


def test_create_and_delete_diff_against_nothing() -> None:
    created = change_diff(Change("create", "ResourceGroup", "pg", None, doc(100, 1), 0))
    assert created.startswith("--- /dev/null\n+++ b/ResourceGroup/pg\n")
    assert "+  name: pg" in created
    deleted = change_diff(Change("delete", "ResourceGroup", "pg", doc(100, 1), None, 3))
    assert deleted.startswith("--- a/ResourceGroup/pg\n+++ /dev/null\n")
    assert "-  name: pg" in deleted


def test_an_unchanged_object_is_not_in_the_plans_diff() -> None:
    same = Change("unchanged", "ResourceGroup", "pg", doc(100, 1), doc(100, 1), 3)
    assert plan_diff(Plan([same])) == ""
