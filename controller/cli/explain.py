"""``ha explain KIND[.field.path]``: the documentation of a field, like ``kubectl explain``.

It reads the same structural schema the CRDs are generated from, so what
``ha explain`` says and what Kubernetes enforces cannot drift apart.
"""

from __future__ import annotations

import difflib
import json
import textwrap
from dataclasses import dataclass
from typing import Any

from controller.api.crdgen import Schema, kind_schema
from controller.api.meta import API_VERSION
from controller.api.registry import resolve_kind
from controller.api.units import DURATION_PATTERN, SIZE_PATTERN

WIDTH = 80
INDENT = "    "


class UnknownFieldError(ValueError):
    """A path part names no field at its level."""

    def __init__(self, path: str, part: str, valid: list[str], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.part = part
        self.valid = valid


@dataclass(frozen=True)
class Located:
    """A field found by its path: where it is and its schema."""

    kind: str
    path: tuple[str, ...]
    schema: Schema


def type_name(schema: Schema) -> str:
    """kubectl-style type: ``string``, ``[]Object``, ``map[string]string``, ``duration``."""
    if schema.get("x-kubernetes-int-or-string"):
        return "size" if schema.get("pattern") == SIZE_PATTERN else "IntOrString"
    kind = schema.get("type")
    if kind == "string" and schema.get("pattern") == DURATION_PATTERN:
        return "duration"
    if kind == "array":
        return "[]" + type_name(schema.get("items", {}))
    if kind == "object" or kind is None:
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and "properties" not in schema:
            return "map[string]" + type_name(values)
        return "Object"
    return str(kind)


def _container(schema: Schema) -> Schema:
    """The node whose properties are a field's children: through list items and map values."""
    while True:
        if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
            schema = schema["items"]
        elif "properties" not in schema and isinstance(schema.get("additionalProperties"), dict):
            schema = schema["additionalProperties"]
        else:
            return schema


def _children(schema: Schema) -> dict[str, Schema]:
    props: dict[str, Schema] = _container(schema).get("properties", {})
    return props


def _required(schema: Schema) -> set[str]:
    return set(_container(schema).get("required", []))


def _match(part: str, names: list[str]) -> str | None:
    if part in names:
        return part
    # afterSB0Pri is easy to mistype in case; accept any spelling that is not ambiguous.
    folded = [n for n in names if n.lower() == part.lower()]
    return folded[0] if len(folded) == 1 else None


def locate(path: str) -> Located:
    """``rg.spec.placement`` -> the ResourceGroup model's schema of spec.placement."""
    parts = path.strip().split(".")
    if not parts[0]:
        raise ValueError("nothing to explain: give a kind, e.g. `ha explain resourcegroup`")
    model = resolve_kind(parts[0])
    schema = kind_schema(model)
    walked: list[str] = []
    for part in parts[1:]:
        where = ".".join([model.KIND, *walked])
        names = list(_children(schema))
        if not part:
            raise UnknownFieldError(
                path, part, names, f"empty field name after {where!r} in {path!r}"
            )
        if not names:
            raise UnknownFieldError(
                path,
                part,
                names,
                f"{where} is a <{type_name(schema)}> and has no fields; {part!r} cannot follow it",
            )
        found = _match(part, names)
        if found is None:
            close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
            if not close:
                lowered = {n.lower(): n for n in names}
                close = [
                    lowered[c] for c in difflib.get_close_matches(part.lower(), list(lowered), n=1)
                ]
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownFieldError(
                path,
                part,
                names,
                f"field {part!r} does not exist in {where}.{hint} "
                f"Fields of {where}: {', '.join(names)}",
            )
        walked.append(found)
        schema = _children(schema)[found]
    return Located(model.KIND, tuple(walked), schema)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _allowed(schema: Schema) -> list[str]:
    if "enum" in schema:
        return [_value(v) for v in schema["enum"]]
    alternatives: list[str] = []
    for branch in schema.get("anyOf", []):
        if "enum" in branch:
            alternatives.extend(_value(v) for v in branch["enum"])
        elif "pattern" in branch:
            alternatives.append(f"a value matching {branch['pattern']}")
    return alternatives


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(
        " ".join(text.split()), WIDTH, initial_indent=indent, subsequent_indent=indent
    )


def _constraints(schema: Schema) -> list[str]:
    lines = []
    if "default" in schema:
        lines.append(f"DEFAULT: {_value(schema['default'])}")
    one_of = [b["required"] for b in schema.get("oneOf", []) if set(b) == {"required"}]
    if one_of and all(len(names) == 1 for names in one_of):
        lines.append(f"EXACTLY ONE OF: {', '.join(names[0] for names in one_of)}")
    allowed = _allowed(schema)
    if allowed:
        lines.append(f"ALLOWED VALUES: {', '.join(allowed)}")
    bounds = []
    if "minimum" in schema:
        bounds.append(
            f"{'above' if schema.get('exclusiveMinimum') else 'from'} {schema['minimum']}"
        )
    if "maximum" in schema:
        bounds.append(f"{'below' if schema.get('exclusiveMaximum') else 'to'} {schema['maximum']}")
    if bounds:
        lines.append(f"RANGE: {' '.join(bounds)}")
    if "minItems" in schema or "maxItems" in schema:
        lines.append(f"ITEMS: {schema.get('minItems', 0)} to {schema.get('maxItems', 'any')}")
    if type_name(schema) == "duration":
        lines.append("FORMAT: a number with a unit ms, s, m, h or d, e.g. 200ms, 1s, 1m30s")
    elif type_name(schema) == "size":
        lines.append("FORMAT: bytes, or a number with a binary unit K, M, G, T, P, e.g. 200M")
    elif schema.get("type") == "string" and "pattern" in schema:
        lines.append(f"PATTERN: {schema['pattern']}")
    return lines


def _field_line(name: str, schema: Schema, required: bool, indent: str) -> str:
    marker = " -required-" if required else ""
    return f"{indent}{name}\t<{type_name(schema)}>{marker}"


def _fields_flat(schema: Schema) -> list[str]:
    lines = []
    required = _required(schema)
    for name, child in _children(schema).items():
        lines.append(_field_line(name, child, name in required, "  "))
        description = child.get("description", "").strip().splitlines()
        if description:
            lines.append(_wrap(description[0], INDENT))
        lines.append("")
    return lines


def _fields_tree(schema: Schema, depth: int) -> list[str]:
    lines = []
    required = _required(schema)
    for name, child in _children(schema).items():
        lines.append(_field_line(name, child, name in required, "  " * depth))
        lines.extend(_fields_tree(child, depth + 1))
    return lines


def explain(path: str, recursive: bool = False) -> str:
    """The text ``ha explain`` prints for ``KIND[.field.path]``.

    Raises ``UnknownKindError`` or ``UnknownFieldError`` (both ValueError) with the
    valid names, so the CLI can print the message and exit 1.
    """
    found = locate(path)
    schema = found.schema
    lines = [f"KIND:     {found.kind}", f"VERSION:  {API_VERSION}", ""]
    if found.path:
        lines += [f"FIELD:    {'.'.join(found.path)} <{type_name(schema)}>", ""]
    lines.append("DESCRIPTION:")
    lines.append(_wrap(schema.get("description", "(no description)"), INDENT))
    constraints = _constraints(schema)
    if constraints:
        lines += ["", *constraints]
    if _children(schema):
        lines += ["", "FIELDS:"]
        if recursive:
            lines += _fields_tree(schema, 1)
        else:
            lines += _fields_flat(schema)
    return "\n".join(lines).rstrip() + "\n"
