"""`ha move` and `ha standby` survive an apply of a manifest that does not mention them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controller.api.decode import decode
from controller.api.group import MoveTo, ResourceGroup
from controller.api.meta import Object
from controller.api.node import Node
from controller.apply.intent import keep_intent

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def group(placement: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "ha.vigil.dev/v1alpha1",
        "kind": "ResourceGroup",
        "metadata": {"name": "pg"},
        "spec": {"placement": placement, "resources": [{"ip": {"address": "10.0.0.9/24"}}]},
    }


def moved(until: datetime | None) -> Object:
    obj = decode(group({"nodes": [{"name": "a", "score": 10}]}))
    assert isinstance(obj, ResourceGroup)
    placement = obj.spec.placement.model_copy(update={"move_to": MoveTo(node="b", until=until)})
    return obj.model_copy(update={"spec": obj.spec.model_copy(update={"placement": placement})})


def test_a_move_the_file_does_not_mention_is_kept_and_said() -> None:
    document = group({"nodes": [{"name": "a", "score": 20}]})
    obj, kept = keep_intent(decode(document), document, moved(NOW + timedelta(hours=1)), NOW)
    assert isinstance(obj, ResourceGroup) and obj.spec.placement.move_to is not None
    assert obj.spec.placement.move_to.node == "b" and obj.spec.placement.nodes[0].score == 20
    assert kept == ["ha move to b until 2026-12-04T13:00:00+00:00"]


def test_a_file_that_sets_the_move_decides_and_an_expired_move_is_dropped() -> None:
    document = group({"nodes": [], "moveTo": None})
    obj, kept = keep_intent(decode(document), document, moved(None), NOW)
    assert isinstance(obj, ResourceGroup) and obj.spec.placement.move_to is None and kept == []
    plain = group({"nodes": []})
    obj, kept = keep_intent(decode(plain), plain, moved(NOW - timedelta(seconds=1)), NOW)
    assert isinstance(obj, ResourceGroup) and obj.spec.placement.move_to is None and kept == []


def test_standby_is_kept_unless_the_file_says_standby() -> None:
    def node(spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "ha.vigil.dev/v1alpha1", "kind": "Node", "metadata": {"name": "a"},
                "spec": spec}  # fmt: skip

    stored = decode(node({"standby": True}))
    obj, kept = keep_intent(decode(node({})), node({}), stored, NOW)
    assert isinstance(obj, Node) and obj.spec.standby and kept == ["ha standby"]
    said = node({"standby": False})
    obj, kept = keep_intent(decode(said), said, stored, NOW)
    assert isinstance(obj, Node) and not obj.spec.standby and kept == []
