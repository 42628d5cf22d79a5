"""What an actuator sees of one resource: its state and a sentence saying why.

Shared by the actuators, which observe, and the reconciler's plan, which decides from the
observations (pure, so it lives apart from the actuators' I/O).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Observation:
    state: State
    detail: str

    @classmethod
    def running(cls, detail: str) -> Observation:
        return cls(State.RUNNING, detail)

    @classmethod
    def stopped(cls, detail: str) -> Observation:
        return cls(State.STOPPED, detail)

    @classmethod
    def failed(cls, detail: str) -> Observation:
        return cls(State.FAILED, detail)

    @classmethod
    def unknown(cls, detail: str) -> Observation:
        return cls(State.UNKNOWN, detail)
