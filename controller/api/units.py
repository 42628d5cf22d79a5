"""Human units in specs: durations (``200ms``, ``1s``, ``2m``) and sizes (``200M``, ``1G``).

Values are stored in their canonical spelling so that a spec read back from the
store compares equal to the one applied, whatever spelling the user chose.
"""

from __future__ import annotations

import re
from datetime import timedelta
from fractions import Fraction
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

_DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"

# Binary multiples, as DRBD (resync-rate 200M) and dd read them.
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?B?)$")
SIZE_PATTERN = r"^\d+(\.\d+)?[KMGTP]?(i?B?)$"


def parse_duration(value: object) -> timedelta:
    """Parse ``1m30s``-style text; a bare number is refused because its unit is a guess."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(
                f"a duration needs a unit: write {value}s or {value}ms, not a bare number"
            )
        raise ValueError(f"expected a duration such as 200ms, 1s or 2m, got {type(value).__name__}")
    text = value.strip()
    pos = 0
    total_ms = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total_ms += float(match.group(1)) * _DURATION_UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"invalid duration {value!r}: expected a number with a unit "
            "(ms, s, m, h, d), e.g. 200ms, 1s, 2m, 1m30s"
        )
    if total_ms != int(total_ms):
        raise ValueError(f"invalid duration {value!r}: finer than a millisecond")
    return timedelta(milliseconds=int(total_ms))


def format_duration(value: timedelta) -> str:
    """Shortest exact spelling: 1500 ms -> ``1500ms``, 90 s -> ``1m30s``, 2 s -> ``2s``."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    if ms % 1000:
        return f"{ms}ms"
    parts = []
    seconds = ms // 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def parse_size(value: object) -> int:
    """Parse ``200M``/``1G``/``4096`` to bytes; units are binary (K = 1024)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 200M or 1G, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative: {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 200M or 1G, got {type(value).__name__}")
    text = value.strip()
    match = _SIZE_RE.match(text)
    if not match:
        hint = ""
        if re.match(r"^\d+(\.\d+)?\s*[kmgtp]b?$", text):
            hint = " (units are upper-case: K, M, G, T)"
        raise ValueError(
            f"invalid size {value!r}: expected a number with an optional binary unit "
            f"K, M, G, T, P (also Ki/KiB), e.g. 200M or 1G{hint}"
        )
    number, unit, suffix = match.groups()
    if suffix == "B" and unit:
        raise ValueError(
            f"ambiguous size {value!r}: {unit}B may mean decimal or binary; "
            f"write {number}{unit} or {number}{unit}iB (both mean binary)"
        )
    # Fraction, not float: sizes near 2**53 bytes must stay exact.
    amount = Fraction(number) * _SIZE_UNITS[unit]
    if amount.denominator != 1:
        raise ValueError(f"invalid size {value!r}: not a whole number of bytes")
    return int(amount)


def format_size(value: int) -> str:
    """Largest binary unit that divides exactly: 209715200 -> ``200M``."""
    for unit in ("P", "T", "G", "M", "K"):
        size = _SIZE_UNITS[unit]
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


Duration = Annotated[
    timedelta,
    PlainValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]

Size = Annotated[
    int,
    PlainValidator(parse_size),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": SIZE_PATTERN}),
]
