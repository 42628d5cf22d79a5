"""Vigil names from legacy ones (node, resource and group names allow `_`, capitals, dots)."""

from __future__ import annotations

import re

from controller.api.fields import NAME_PATTERN

_NAME_RE = re.compile(NAME_PATTERN)


def is_name(value: str) -> bool:
    return len(value) <= 63 and bool(_NAME_RE.match(value))


def to_name(value: str) -> str | None:
    """The Vigil name closest to ``value``, or None when nothing of it is usable."""
    slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:63].rstrip("-")
    return slug or None


def unique(base: str, taken: set[str]) -> str:
    name = base
    n = 2
    while name in taken:
        suffix = f"-{n}"
        name = base[: 63 - len(suffix)].rstrip("-") + suffix
        n += 1
    taken.add(name)
    return name
