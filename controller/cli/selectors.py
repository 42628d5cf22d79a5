"""Label selectors as kubectl reads them: ``app=pg,tier!=web,env in (a,b),!legacy``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from controller.api.errors import InputError

Matcher = Callable[[Mapping[str, str]], bool]

_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def _term(text: str) -> Matcher:
    if match := _SET_RE.match(text):
        key, op, values = match.groups()
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if match := _EQ_RE.match(text):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS_RE.match(text):
        negate, key = match.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise InputError(
        f"invalid label selector term {text.strip()!r}: expected key=value, key!=value, "
        "key in (a,b), key notin (a,b), key or !key"
    )


def parse_selector(text: str) -> Matcher:
    terms = [_term(part) for part in _split(text)]
    if not terms:
        raise InputError("empty label selector: give e.g. -l app=pg")
    return lambda labels: all(term(labels) for term in terms)
