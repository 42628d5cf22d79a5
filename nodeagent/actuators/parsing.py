"""Validation helpers shared by the actuator config parsers.

The configs arrive as plain mappings (the YAML shapes of the resource spec); every
error names the offending field and says how to fix it, because the operator sees
these messages in `ha status`, far from the YAML they wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any


class ConfigError(ValueError):
    """A resource spec that cannot be run; the message names the field and the fix."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object, field: str) -> float:
    """Seconds from `200ms`, `10s`, `1.5m`, `1h`, a bare number (seconds) or a timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ConfigError(f"{field}: expected a duration like '10s' or '200ms', got {value!r}")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ConfigError(
                f"{field}: cannot read duration {value!r}; write a number with a unit "
                "ms, s, m or h, e.g. '200ms' or '10s'"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ConfigError(f"{field}: expected a duration like '10s', got {type(value).__name__}")
    if seconds < 0:
        raise ConfigError(f"{field}: duration must not be negative, got {value!r}")
    return seconds


def require_mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{field}: expected a mapping, got {type(value).__name__} {value!r}")
    return value


def reject_unknown(spec: Mapping[str, Any], allowed: set[str], field: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(
            f"{field}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def require_str(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def require_positive_int(value: object, field: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{field}: expected an integer >= {minimum}, got {value!r}")
    return value


def require_argv(value: object, field: str) -> tuple[str, ...]:
    """A command as an argv list; a single string is refused so no shell parsing is guessed."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError(
            f'{field}: expected a non-empty list of arguments, e.g. ["/usr/bin/app", "--flag"]; '
            f"got {value!r}"
        )
    argv = tuple(value)
    for i, arg in enumerate(argv):
        if not isinstance(arg, str):
            raise ConfigError(f"{field}[{i}]: expected a string, got {arg!r}")
    return argv


def require_str_map(value: object, field: str) -> dict[str, str]:
    mapping = require_mapping(value, field)
    result: dict[str, str] = {}
    for key, item in mapping.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{field}: keys must be non-empty strings, got {key!r}")
        if isinstance(item, bool):
            result[key] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            result[key] = str(item)
        else:
            raise ConfigError(f"{field}.{key}: expected a scalar value, got {item!r}")
    return result
