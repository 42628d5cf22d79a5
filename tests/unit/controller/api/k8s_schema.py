"""What the Kubernetes API server does with a CRD schema, for tests without an API server.

``structural_problems`` follows apiextensions-apiserver's structural-schema rules
(pkg/apiserver/schema/validation.go); ``validate`` checks a value the way the
server does (unknown fields refused as with field validation Strict); ``apply_defaults``
fills defaults as the server does before validation.
"""

from __future__ import annotations

import re
from typing import Any

Schema = dict[str, Any]

# JSONSchemaProps fields of apiextensions.k8s.io/v1 that we allow ourselves to use.
KNOWN_KEYS = frozenset(
    {
        "type",
        "format",
        "description",
        "default",
        "enum",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "multipleOf",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-list-type",
    }
)
# Inside anyOf/oneOf/allOf/not only value validations may appear.
NESTED_FORBIDDEN = frozenset(
    {
        "type",
        "description",
        "default",
        "title",
        "nullable",
        "additionalProperties",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-list-type",
    }
)
JUNCTORS = ("anyOf", "oneOf", "allOf")
RE2_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\\[1-9]")
TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})


def structural_problems(schema: Schema, path: str = "", root: bool = True) -> list[str]:
    problems: list[str] = []
    where = path or "<root>"
    for key in schema:
        if key not in KNOWN_KEYS:
            problems.append(f"{where}: key {key!r} is not allowed in a CRD schema")
    kind = schema.get("type")
    if kind is not None and kind not in TYPES:
        problems.append(f"{where}: unknown type {kind!r}")
    if root and kind != "object":
        problems.append(f"{where}: must be type object at the root")
    if not (
        kind
        or schema.get("x-kubernetes-int-or-string")
        or schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        problems.append(f"{where}: has no type")
    if schema.get("x-kubernetes-int-or-string") and schema.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        problems.append(f"{where}: int-or-string cannot preserve unknown fields")
    if kind == "array" and not isinstance(schema.get("items"), dict):
        problems.append(f"{where}: an array needs items")
    ap = schema.get("additionalProperties")
    if ap is not None:
        if root:
            problems.append(f"{where}: additionalProperties is not allowed at the root")
        if not isinstance(ap, dict):
            problems.append(f"{where}: additionalProperties must be a schema, not {ap!r}")
        if "properties" in schema:
            problems.append(f"{where}: properties and additionalProperties exclude each other")
    for name in schema.get("required", []):
        if name not in schema.get("properties", {}):
            problems.append(f"{where}: required {name!r} is not a property")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error as exc:
            problems.append(f"{where}: bad pattern: {exc}")
        if RE2_UNSUPPORTED.search(schema["pattern"]):
            problems.append(f"{where}: pattern uses lookaround or backreferences (not RE2)")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in schema and not isinstance(schema[key], bool):
            problems.append(f"{where}: {key} must be a boolean in OpenAPI v3.0")
    if schema.get("x-kubernetes-list-type") == "set" and schema.get("items", {}).get("type") in (
        "object",
        "array",
    ):
        problems.append(f"{where}: a list of type set must hold scalars")
    for value in schema.get("enum", []):
        if not type_ok(value, schema):
            problems.append(f"{where}: enum value {value!r} does not match the type")
    if "default" in schema:
        problems += [f"{where}: default: {p}" for p in validate(schema["default"], schema, where)]
    for junctor in JUNCTORS:
        for i, branch in enumerate(schema.get(junctor, [])):
            problems += _nested_problems(branch, f"{where}.{junctor}[{i}]")
    if "not" in schema:
        problems += _nested_problems(schema["not"], f"{where}.not")
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        if root and name == "metadata":
            if child != {"type": "object"}:
                problems.append("metadata: at the root only `type: object` is allowed")
            continue
        if not str(child.get("description", "")).strip():
            problems.append(f"{child_path}: no description")
        problems += structural_problems(child, child_path, root=False)
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}[]", root=False)
    if isinstance(ap, dict):
        problems += structural_problems(ap, f"{path}.*", root=False)
    return problems


def _nested_problems(branch: Schema, where: str) -> list[str]:
    problems = [
        f"{where}: {key!r} must not appear in a value validation"
        for key in branch
        if key in NESTED_FORBIDDEN
    ]
    if "metadata" in branch.get("properties", {}):
        problems.append(f"{where}: metadata must not be specified in a nested context")
    for junctor in JUNCTORS:
        for i, sub in enumerate(branch.get(junctor, [])):
            problems += _nested_problems(sub, f"{where}.{junctor}[{i}]")
    return problems


def type_ok(value: Any, schema: Schema) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    kind = schema.get("type")
    if kind is None:
        return True
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = {"string": str, "boolean": bool, "object": dict, "array": list}[kind]
    return isinstance(value, expected)


def _value_problems(value: Any, schema: Schema, where: str) -> list[str]:
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)):
            problems.append(f"{where}: longer than {schema['maxLength']}")
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{where}: shorter than {schema['minLength']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and (value <= low if schema.get("exclusiveMinimum") else value < low):
            problems.append(f"{where}: {value} is below the minimum {low}")
        if high is not None and (value >= high if schema.get("exclusiveMaximum") else value > high):
            problems.append(f"{where}: {value} is above the maximum {high}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        if len(value) > schema.get("maxItems", len(value)):
            problems.append(f"{where}: more than {schema['maxItems']} items")
        if schema.get("x-kubernetes-list-type") == "set" and len(set(map(repr, value))) != len(
            value
        ):
            problems.append(f"{where}: duplicate items in a set")
    if isinstance(value, dict):
        problems += [
            f"{where}: {r} is required" for r in schema.get("required", []) if r not in value
        ]
    for branch_key, needed in (("anyOf", "any"), ("oneOf", "one")):
        branches = schema.get(branch_key)
        if branches:
            passing = sum(not _value_problems(value, b, where) for b in branches)
            if (needed == "any" and passing == 0) or (needed == "one" and passing != 1):
                problems.append(
                    f"{where}: {value!r} matches {passing} of the {branch_key} branches"
                )
    return problems


def validate(value: Any, schema: Schema, where: str = "") -> list[str]:
    """Problems with ``value`` under ``schema``; empty when the server would accept it."""
    where = where or "<root>"
    if not type_ok(value, schema):
        return [f"{where}: {value!r} is not of type {schema.get('type', 'int-or-string')}"]
    problems = _value_problems(value, schema, where)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            child = f"{where}.{key}"
            if where == "<root>" and key == "metadata" and props.get(key) == {"type": "object"}:
                # The server validates ObjectMeta itself; the CRD may not describe it.
                problems += [] if isinstance(item, dict) else [f"{child}: not an object"]
            elif key in props:
                problems += validate(item, props[key], child)
            elif isinstance(extra, dict):
                problems += validate(item, extra, child)
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                problems.append(f"{child}: unknown field")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], f"{where}[{i}]")
    return problems


def apply_defaults(value: Any, schema: Schema) -> Any:
    """The value with missing fields defaulted, as the API server stores it."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out = {}
        for key, item in value.items():
            sub = props.get(key) or schema.get("additionalProperties")
            out[key] = apply_defaults(item, sub) if isinstance(sub, dict) else item
        for key, sub in props.items():
            if key not in out and "default" in sub:
                out[key] = apply_defaults(sub["default"], sub)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value
