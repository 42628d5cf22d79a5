"""Every field of every model is documented: `ha explain` and the CRDs show these texts."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from controller.api.crdgen import kind_schema
from controller.api.registry import KINDS


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """Models inside a field's type: X, X | None, list[X], dict[str, X], Annotated[X, ...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _all_models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = list(KINDS)
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            pending.extend(_models_in(field.annotation))
    return sorted(seen, key=lambda m: m.__name__)


MODELS = _all_models()


def test_the_walk_reaches_nested_models() -> None:
    names = {m.__name__ for m in MODELS}
    # Reached only through Optional, list[...] and nested models respectively.
    assert {"MoveTo", "HeartbeatLink", "SplitBrainPolicy", "Condition", "ObjectMeta"} <= names
    assert len(MODELS) > len(KINDS) * 3


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_has_a_description(model: type[BaseModel]) -> None:
    missing = [
        name
        for name, field in model.model_fields.items()
        if not (field.description and field.description.strip())
    ]
    assert missing == [], f"{model.__name__}: add Field(description=...) to {missing}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_descriptions_are_sentences(model: type[BaseModel]) -> None:
    # `ha explain` prints the first line of each child's description: keep it one sentence-ish.
    for name, field in model.model_fields.items():
        text = field.description or ""
        assert text.rstrip().endswith("."), f"{model.__name__}.{name}: end with a period"
        assert "\n" not in text.strip(), f"{model.__name__}.{name}: keep it on one line"


def _schema_paths(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, child in schema.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from _schema_paths(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _schema_paths(schema[key], path)


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.KIND)
def test_every_schema_property_has_a_description(model: Any) -> None:
    # The schema path catches fields whose description a $ref or union could lose.
    schema = kind_schema(model)
    assert schema["description"]
    bare = [path for path, node in _schema_paths(schema, model.KIND) if not node.get("description")]
    assert bare == []
