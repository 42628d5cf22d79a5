"""What the controller needs to know about membership, whatever computes it.

The node agent's heartbeat service provides it (nodeagent/heartbeat); unit tests provide
a table. Keeping the controller on this small interface keeps it testable without
sockets, and lets two-node mode or a witness change how liveness is computed.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from controller.decide import Liveness


class LivenessSource(Protocol):
    def serving(self) -> bool:
        """Whether this node holds its serving lease (docs/safety.md) right now."""

    def liveness(self) -> dict[str, Liveness]:
        """Every member (this node included) as this node's heartbeat view sees it."""

    def subscribe(self) -> asyncio.Event:
        """An event set whenever serving() or any member's liveness changes."""


class StaticLiveness:
    """A fixed view, changed by hand: for unit tests and single-node clusters."""

    def __init__(self, view: dict[str, Liveness], serving: bool = True) -> None:
        self.view = dict(view)
        self._serving = serving
        self._listeners: list[asyncio.Event] = []

    def serving(self) -> bool:
        return self._serving

    def liveness(self) -> dict[str, Liveness]:
        return dict(self.view)

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    def set(self, node: str, liveness: Liveness) -> None:
        self.view[node] = liveness
        self._fire()

    def set_serving(self, serving: bool) -> None:
        self._serving = serving
        self._fire()

    def _fire(self) -> None:
        for event in self._listeners:
            event.set()
