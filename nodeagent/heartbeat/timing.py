"""Heartbeat timings in float seconds, and the safety constants derived from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

RHO = 1.01
"""Bound on the rate ratio of two nodes' monotonic clocks (docs/safety.md)."""


class _SpecTiming(Protocol):
    keepalive: timedelta
    warntime: timedelta
    deadtime: timedelta
    initdead: timedelta


@dataclass(frozen=True)
class HeartbeatTiming:
    keepalive: float
    warntime: float
    deadtime: float
    initdead: float

    def __post_init__(self) -> None:
        if self.keepalive <= 0:
            raise ValueError(f"timing.keepalive={self.keepalive}s: must be > 0")
        if not self.keepalive < self.warntime < self.deadtime:
            raise ValueError(
                f"timing: need keepalive ({self.keepalive}s) < warntime ({self.warntime}s) "
                f"< deadtime ({self.deadtime}s), as in ha.cf"
            )
        if self.initdead < self.deadtime:
            raise ValueError(
                f"timing.initdead={self.initdead}s is shorter than deadtime={self.deadtime}s; "
                "set initdead >= deadtime"
            )

    @property
    def lease(self) -> float:
        """LEASE = deadtime / RHO: how long a majority's acknowledgement lets a node serve."""
        return self.deadtime / RHO

    @property
    def stop_margin(self) -> float:
        """STOP_MARGIN = min(deadtime / 10, 200 ms): stop this long before the lease ends."""
        return min(self.deadtime / 10, 0.2)

    @classmethod
    def from_spec(cls, spec: _SpecTiming) -> HeartbeatTiming:
        """From the Cluster spec's `timing` (timedeltas)."""
        return cls(
            keepalive=spec.keepalive.total_seconds(),
            warntime=spec.warntime.total_seconds(),
            deadtime=spec.deadtime.total_seconds(),
            initdead=spec.initdead.total_seconds(),
        )


DEFAULT = HeartbeatTiming(keepalive=0.2, warntime=0.6, deadtime=1.0, initdead=30.0)
TUNED = HeartbeatTiming(keepalive=0.05, warntime=0.15, deadtime=0.25, initdead=5.0)
