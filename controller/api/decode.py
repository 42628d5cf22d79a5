"""Turning plain data into typed objects, and pydantic's errors into sentences for people."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from controller.api.meta import API_VERSION, Object
from controller.api.registry import BY_KIND, KINDS

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an object: where (a field path) and what."""

    path: Loc
    message: str

    @property
    def dotted(self) -> str:
        return format_path(self.path)


class SchemaError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.dotted}: {p.message}" for p in problems))
        self.problems = problems


def format_path(path: Loc) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation may hold (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        found: list[Any] = []
        for arg in typing.get_args(annotation):
            found.extend(_unwrap(arg))
        return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        match = next(
            (f for name, f in current.model_fields.items() if part in (f.alias, name)), None
        )
        if match is None:
            return None if part not in ("__root__",) else current
        candidates = _unwrap(match.annotation)
        current = candidates[0] if candidates else None
    return current


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


_TYPE_WORDS = {
    "int_type": "an integer",
    "bool_type": "true or false",
    "string_type": "a string",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "int_from_float": "an integer",
}


def _message(error: Any, model: type[BaseModel]) -> str:
    kind = error["type"]
    loc: Loc = tuple(error["loc"])
    value = error.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        field = loc[-1]
        if parent is not None:
            known = _field_names(parent)
            close = difflib.get_close_matches(str(field), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"unknown field {field!r}{hint} (known fields: {', '.join(known)})"
        return f"unknown field {field!r}"
    if kind == "missing":
        return f"required field {loc[-1]!r} is missing"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {_describe(value)}"
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}, got {_describe(value)}"
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in ("too_short", "too_long"):
        return (
            str(error["msg"])
            .replace("List should", "the list must")
            .replace("Value should", "the value must")
        )
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {_describe(value)}"


def _clean_loc(loc: Loc) -> Loc:
    # Union branches appear in the location as tags such as "literal['internal']";
    # a user wrote no such field, so they are dropped.
    return tuple(part for part in loc if isinstance(part, int) or not any(c in part for c in "[]("))


def problems_from(exc: ValidationError, model: type[BaseModel]) -> list[Problem]:
    merged: dict[Loc, list[str]] = {}
    for error in exc.errors(include_url=False):
        loc = _clean_loc(tuple(error["loc"]))
        message = _message(error, model)
        bucket = merged.setdefault(loc, [])
        if message not in bucket:
            bucket.append(message)
    return [Problem(loc, " or ".join(messages)) for loc, messages in merged.items()]


def model_for(data: dict[str, Any]) -> type[Object]:
    """The model class for a document, from its apiVersion and kind."""
    problems: list[Problem] = []
    api_version = data.get("apiVersion")
    if api_version is None:
        problems.append(Problem(("apiVersion",), f"required field missing: write {API_VERSION}"))
    elif api_version != API_VERSION:
        problems.append(
            Problem(
                ("apiVersion",),
                f"unknown apiVersion {api_version!r}; this Vigil serves {API_VERSION}",
            )
        )
    kind = data.get("kind")
    if kind is None:
        problems.append(Problem(("kind",), f"required field missing: one of {', '.join(BY_KIND)}"))
    elif not isinstance(kind, str) or kind not in BY_KIND:
        close = difflib.get_close_matches(str(kind), list(BY_KIND), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(
            Problem(
                ("kind",),
                f"unknown kind {kind!r}{hint} (known kinds: {', '.join(m.KIND for m in KINDS)})",
            )
        )
    if problems:
        raise SchemaError(problems)
    return BY_KIND[str(kind)]


def decode(data: dict[str, Any]) -> Object:
    """Validate a document strictly; raises SchemaError listing every problem."""
    model = model_for(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(problems_from(exc, model)) from None
