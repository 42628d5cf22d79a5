"""Legacy time values: Heartbeat's seconds or `ms`, DRBD's tenths of seconds."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from controller.importers.result import ImportFailed, Where

_HB_TIME = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


def heartbeat_time(value: str, where: Where, directive: str) -> str:
    """ha.cf times: a number of seconds, or milliseconds with `ms`; as a Vigil duration."""
    match = _HB_TIME.match(value)
    if not match:
        raise ImportFailed(
            f"{where}: {directive} {value!r} is not a time: write seconds (e.g. 2) or "
            "milliseconds (e.g. 500ms)"
        )
    number, unit = match.groups()
    try:
        ms = Decimal(number) * (1 if unit == "ms" else 1000)
    except InvalidOperation:
        raise ImportFailed(f"{where}: {directive} {value!r} is not a number") from None
    if ms != ms.to_integral_value():
        raise ImportFailed(f"{where}: {directive} {value!r} is finer than a millisecond")
    return f"{int(ms)}ms" if int(ms) % 1000 else f"{int(ms) // 1000}s"


def tenths(value: str, where: Where, option: str) -> str:
    """DRBD's timeouts in tenths of a second (timeout 60 = 6 s)."""
    if not value.isdigit():
        raise ImportFailed(f"{where}: {option} {value!r} is not a whole number of tenths")
    ms = int(value) * 100
    return f"{ms}ms" if ms % 1000 else f"{ms // 1000}s"
