"""Pacemaker's times (`20s`, `60`, `1min`, `2m`, `500ms`, ISO 8601 `PT1M`) as Vigil durations."""

from __future__ import annotations

import re

from controller.importers.result import Where

_UNITS = {
    "ms": 1,
    "msec": 1,
    "s": 1000,
    "sec": 1000,
    "": 1000,
    "m": 60_000,
    "min": 60_000,
    "h": 3_600_000,
    "hr": 3_600_000,
}
_TIME = re.compile(r"^(\d+)\s*([a-z]*)$")
_ISO = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")


def to_ms(value: str, where: Where, what: str) -> int:
    text = value.strip().lower()
    match = _TIME.match(text)
    if match and match.group(2) in _UNITS:
        return int(match.group(1)) * _UNITS[match.group(2)]
    iso = _ISO.match(value.strip().upper())
    if iso and any(iso.groups()):
        h, m, s = (int(g or 0) for g in iso.groups())
        return ((h * 60 + m) * 60 + s) * 1000
    raise where.fail(f"{what} {value!r} is not a time (e.g. 20s, 60, 1min, 500ms)")


def duration(ms: int) -> str:
    return f"{ms}ms" if ms % 1000 else f"{ms // 1000}s"
