"""A membership view set by hand, for tests of the leader and the reconciler."""

from __future__ import annotations

import asyncio

from controller.api.liveness import Liveness


class StaticLiveness:
    """Implements controller.api.liveness.LivenessSource with a table."""

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
